/**
 * What the PostgreSQL-only commands (archive-status; wal-push and wal-fetch live in
 * src/postgres/wal-archive.ts) need of the config. Not in index.ts: this reads the config loader,
 * which itself is built from the registry of kinds.
 */
import { targetNamed } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { LifeboatError } from '../../errors.js';
import type { PostgresTargetConfig } from './config.js';

/** The postgres target of a command that has no meaning for others: TargetNotFound or InvalidInput otherwise. */
export function postgresTargetNamed(config: Config, name: string, source: string, command: string): PostgresTargetConfig {
  const target = targetNamed(config.targets, name, source, 'postgres');
  if (target.type !== 'postgres') throw new LifeboatError('InvalidInput', `target "${name}" is a ${target.type} target; ${command} is for postgres targets`);
  return target;
}
