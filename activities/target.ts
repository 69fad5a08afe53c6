import { loadConfig } from '../src/config/load.js';
import type { RepositoryConfig, SqliteTargetConfig } from '../src/config/schema.js';
import { LifeboatError } from '../src/errors.js';
import { keyId, loadKeyFile } from '../src/pipeline/encrypt.js';

/**
 * Everything a runbook needs to know about a target, resolved once from the worker's config in the
 * first step so that history records the exact settings a run used. Holds references only
 * (env var names, file paths), never secret values.
 */
export interface ResolvedTarget {
  name: string;
  type: 'sqlite';
  path: string;
  checks: SqliteTargetConfig['checks'];
  repositories: Array<{ name: string; location: string; config: RepositoryConfig }>;
  hooks?: SqliteTargetConfig['hooks'];
  drill: SqliteTargetConfig['drill'];
  compression: { level: number; threads: number };
  encryption: { keyFile: string; keyId: string } | null;
}

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
  const target = config.targets[input.target];
  if (!target) {
    const known = Object.keys(config.targets);
    throw new LifeboatError(
      'TargetNotFound',
      `no target named "${input.target}" in ${configPath}`,
      known.length ? `Known targets: ${known.join(', ')}` : 'Define it under targets:',
    );
  }
  if (target.type !== 'sqlite') {
    throw new LifeboatError(
      'InvalidInput',
      `target "${input.target}" is a ${target.type} target; the backup, restore and drill runbooks handle sqlite targets so far`,
      'For PostgreSQL, archive WAL with `lifeboat wal-push` (see README)',
    );
  }
  const encryption = config.encryption
    ? { keyFile: config.encryption.keyFile, keyId: keyId(await loadKeyFile(config.encryption.keyFile)) }
    : null;
  return {
    name: input.target,
    type: target.type,
    path: target.path,
    checks: target.checks,
    repositories: target.repositories.map((name) => {
      const repository = config.repositories[name]!;
      return { name, location: describeLocation(repository), config: repository };
    }),
    ...(target.hooks ? { hooks: target.hooks } : {}),
    drill: target.drill,
    compression: config.compression,
    encryption,
  };
}
