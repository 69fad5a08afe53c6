/**
 * Redis targets: a live server backed up without touching its disk (a point-in-time RDB streamed
 * over the replication protocol by `redis-cli --rdb -`, checked by redis-check-rdb as it is
 * stored); restored in place (stop hook, the RDB put at the server's dir/dbfilename keeping the
 * old one as a safety copy, start hook, a key-count check, rollback) or as a file (--into);
 * drilled on a scratch redis-server. The steps are in workflows/kinds/redis.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { defineTargetKind, type ResolvedTargetBase } from '../contract.js';
import { redisTargetSchema, type RedisTargetConfig } from './config.js';
import { redisManifest } from './manifest.js';

export interface ResolvedRedisTarget extends ResolvedTargetBase {
  type: 'redis';
  /** References only: passwordEnv names a variable; the TLS fields are file paths. */
  connection: RedisTargetConfig['connection'];
  checkOnBackup: boolean;
  /** rdbPath is absolute when set. */
  restore: RedisTargetConfig['restore'];
  hooks?: RedisTargetConfig['hooks'];
  /** scratchDir is absolute when set. */
  drill: RedisTargetConfig['drill'];
}

export const redisKind = defineTargetKind({
  type: 'redis',
  configSchema: redisTargetSchema,
  methods: [],
  manifests: [redisManifest],
  absolutePaths(config, absolute) {
    const tls = config.connection.tls;
    if (tls?.caCert) tls.caCert = absolute(tls.caCert);
    if (tls?.cert) tls.cert = absolute(tls.cert);
    if (tls?.key) tls.key = absolute(tls.key);
    if (config.restore.rdbPath) config.restore.rdbPath = absolute(config.restore.rdbPath);
    if (config.drill.scratchDir) config.drill.scratchDir = absolute(config.drill.scratchDir);
  },
  resolve(config, common): ResolvedRedisTarget {
    return {
      ...common,
      type: 'redis',
      connection: config.connection,
      checkOnBackup: config.checkOnBackup,
      restore: config.restore,
      ...(config.hooks ? { hooks: config.hooks } : {}),
      drill: config.drill,
    };
  },
  preflight: async (name, config, context) => (await import('./preflight.js')).preflightRedis(name, config, context),
  activities: async (dependencies) => (await import('./activities.js')).redisActivities(dependencies),
  cli: {
    restore(options, target) {
      if (options.into) return { input: { into: resolvePath(options.into) } };
      const { host, port } = target.config.connection;
      return {
        input: {},
        replaces: `the dataset of the Redis server at ${host}:${port} (its RDB file${target.config.restore.rdbPath ? ` ${target.config.restore.rdbPath}` : ''}; the server is stopped and started by the target's hooks)`,
      };
    },
    restored: (r) =>
      r.safetyCopy
        ? `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}; the server loaded it; the previous data is kept at ${r.safetyCopy}`
        : `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}`,
  },
});
