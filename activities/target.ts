import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { loadConfig, targetNamed } from '../src/config/load.js';
import type { Config, NotificationEventType, PostgresTargetConfig, RepositoryConfig, SqliteTargetConfig } from '../src/config/schema.js';
import { LifeboatError } from '../src/errors.js';
import { keyId, loadKeyFile } from '../src/pipeline/encrypt.js';

/** What every resolved target has: where its backups go and how they are transformed. */
interface ResolvedTargetBase {
  name: string;
  repositories: Array<{ name: string; location: string; config: RepositoryConfig }>;
  compression: { level: number; threads: number };
  encryption: { keyFile: string; keyId: string } | null;
  /**
   * The notification channels that get this target's events (names only: URLs and secrets stay in
   * the environment), and how long a run retries one; absent in results of older runs.
   */
  notifications?: { channels: Array<{ name: string; events: NotificationEventType[] }>; deliveryTimeoutSeconds: number };
}

export interface ResolvedSqliteTarget extends ResolvedTargetBase {
  type: 'sqlite';
  path: string;
  checks: SqliteTargetConfig['checks'];
  hooks?: SqliteTargetConfig['hooks'];
  drill: SqliteTargetConfig['drill'];
}

export interface ResolvedPostgresTarget extends ResolvedTargetBase {
  type: 'postgres';
  method: PostgresTargetConfig['method'];
  /** References only: passwordEnv names a variable and passfile a file; the activities read them. */
  connection: PostgresTargetConfig['connection'];
  /** spoolDir is absolute (relative paths in the config are relative to the config file). */
  dump: PostgresTargetConfig['dump'];
  base: PostgresTargetConfig['base'];
  /** dir is absolute and always set (default: <system temp dir>/lifeboat-recovery). */
  recovery: PostgresTargetConfig['recovery'] & { dir: string };
  /** scratchDir is absolute when set. */
  drill: PostgresTargetConfig['drill'];
}

/**
 * Everything a runbook needs to know about a target, resolved once from the worker's config in the
 * first step so that history records the exact settings a run used. Holds references only
 * (env var names, file paths), never secret values. Runbooks dispatch on `type`.
 */
export type ResolvedTarget = ResolvedSqliteTarget | ResolvedPostgresTarget;

function describeLocation(config: RepositoryConfig): string {
  return config.type === 'fs'
    ? `fs:${config.path}`
    : `s3://${config.bucket}/${config.prefix}${config.endpoint ? ` at ${config.endpoint}` : ''}`;
}

export async function resolveTarget(configPath: string, input: { target: string }): Promise<ResolvedTarget> {
  if (!input || typeof input.target !== 'string' || input.target.length === 0) {
    throw new LifeboatError('InvalidInput', 'the runbook input needs a "target" field, e.g. {"target": "orders"}');
  }
  const config = loadConfig(configPath);
  const target = targetNamed(config.targets, input.target, configPath);
  const base = await resolveBase(config, input.target, target.repositories);
  if (target.type === 'postgres') {
    const spoolDir = target.dump.spoolDir;
    const scratchDir = target.drill.scratchDir;
    const absolute = (path: string): string => (isAbsolute(path) ? path : resolve(dirname(configPath), path));
    return {
      ...base,
      type: 'postgres',
      method: target.method,
      connection: target.connection,
      dump: { ...target.dump, ...(spoolDir ? { spoolDir: absolute(spoolDir) } : {}) },
      base: target.base,
      recovery: {
        ...target.recovery,
        dir: absolute(target.recovery.dir ?? join(tmpdir(), 'lifeboat-recovery')),
        ...(target.recovery.cutover ? { cutover: { ...target.recovery.cutover, dataDir: absolute(target.recovery.cutover.dataDir) } } : {}),
      },
      drill: { ...target.drill, ...(scratchDir ? { scratchDir: absolute(scratchDir) } : {}) },
    };
  }
  return {
    name: base.name,
    type: target.type,
    path: target.path,
    checks: target.checks,
    repositories: base.repositories,
    ...(target.hooks ? { hooks: target.hooks } : {}),
    drill: target.drill,
    compression: base.compression,
    encryption: base.encryption,
    notifications: base.notifications,
  };
}

async function resolveBase(config: Config, name: string, repositories: string[]): Promise<ResolvedTargetBase> {
  const encryption = config.encryption
    ? { keyFile: config.encryption.keyFile, keyId: keyId(await loadKeyFile(config.encryption.keyFile)) }
    : null;
  return {
    name,
    repositories: repositories.map((repositoryName) => {
      const repository = config.repositories[repositoryName]!;
      return { name: repositoryName, location: describeLocation(repository), config: repository };
    }),
    compression: config.compression,
    encryption,
    notifications: {
      channels: Object.entries(config.notifications?.channels ?? {})
        .filter(([, channel]) => channel.targets === undefined || channel.targets.includes(name))
        .map(([channelName, channel]) => ({ name: channelName, events: channel.events })),
      deliveryTimeoutSeconds: config.notifications?.deliveryTimeoutSeconds ?? 300,
    },
  };
}
