import { z } from 'zod';
import { drillObjectives, envVarName, hooksSchema, targetObjectives, targetRepositories, targetMinCopies } from '../../config/common.js';
import { targetRetention } from '../../config/retention.js';
import { targetSchedules } from '../../config/schedules.js';

export const redisConnectionSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('Host name or IP address of the Redis server.'),
    port: z.number().int().min(1).max(65535).default(6379),
    user: z.string().min(1).optional().describe('ACL user (AUTH <user> <password>); default: the default user. It needs +ping +info +sync +replconf +config|get +dbsize.'),
    passwordEnv: envVarName
      .optional()
      .describe('Name of the environment variable holding the password (of `user`, or requirepass). Handed to redis-cli as REDISCLI_AUTH, never on a command line.'),
    tls: z
      .object({
        caCert: z.string().optional().describe('CA certificate (PEM) the server\'s certificate must chain to; default: the system\'s trust store.'),
        cert: z.string().optional().describe('Client certificate (PEM), when the server asks for one (tls-auth-clients).'),
        key: z.string().optional().describe('The client certificate\'s private key (PEM).'),
        serverName: z.string().optional().describe('Name the server\'s certificate must carry (SNI); default: host.'),
        insecure: z.boolean().default(false).describe('Skip the server certificate\'s verification (tests only).'),
      })
      .strict()
      .optional()
      .describe('Connect over TLS (the server\'s tls-port) with these files; absent: plain TCP.'),
    connectTimeoutSeconds: z.number().positive().default(10).describe('How long connecting (and each command) may take before the step fails with RedisConnectionFailed.'),
  })
  .strict();

/** One smoke check of a drill's scratch server: exactly one of dbsizeAtLeast, keyExists, get. */
export const redisSmokeCheckSchema = z
  .object({
    name: z.string().min(1).describe('Shown in drill results and reports.'),
    db: z.number().int().min(0).default(0).describe('The database the check reads (SELECT).'),
    dbsizeAtLeast: z.number().int().nonnegative().optional().describe('DBSIZE of `db` must be at least this.'),
    keyExists: z.string().min(1).optional().describe('This key must exist in `db`.'),
    get: z.string().min(1).optional().describe('GET this key of `db` (with `equals`: its value must be exactly that; without: it must exist and be a string).'),
    equals: z.string().optional().describe('The value `get` must return.'),
  })
  .strict()
  .superRefine((check, context) => {
    const kinds = [check.dbsizeAtLeast !== undefined, check.keyExists !== undefined, check.get !== undefined].filter(Boolean).length;
    if (kinds !== 1) context.addIssue({ code: 'custom', message: 'a Redis smoke check has exactly one of dbsizeAtLeast, keyExists, get', path: [] });
    if (check.equals !== undefined && check.get === undefined) context.addIssue({ code: 'custom', message: 'equals goes with get', path: ['equals'] });
  });

/** A target of type redis in lifeboat.config.yaml. */
export const redisTargetSchema = z
  .object({
    type: z
      .literal('redis')
      .describe('A live Redis server: a point-in-time RDB streamed over the replication protocol (redis-cli --rdb -), restored in place or drilled on a scratch redis-server.'),
    repositories: targetRepositories.describe('Names of the repositories every backup is written to.'),
    minCopies: targetMinCopies,
    connection: redisConnectionSchema
      .default({ host: '127.0.0.1', port: 6379, connectTimeoutSeconds: 10 })
      .describe('Where the server is and who Lifeboat connects as. The password is never in the config: name an environment variable.'),
    checkOnBackup: z
      .boolean()
      .default(false)
      .describe(
        'Also run redis-check-rdb over the RDB while it streams (a tee into the checker through a pipe, no copy on disk): a backup it finds damaged is discarded, and the ' +
          'manifest records the key count it read from the snapshot and the RDB\'s sha256. The RDB then passes through the worker instead of going from redis-cli straight ' +
          'into zstd, and the checker takes about one more core-second per GiB beside zstd (docs/redis.md). Off: the check runs on every restore and drill before the RDB ' +
          'is used, and the manifest\'s key count is INFO keyspace just before the fork.',
      ),
    restore: z
      .object({
        rdbPath: z
          .string()
          .optional()
          .describe('The server\'s RDB file (its dir/dbfilename); default: asked from the running server (CONFIG GET dir, dbfilename). Set it when CONFIG is renamed or denied.'),
        loadTimeoutSeconds: z.number().int().positive().default(600).describe('How long the restarted server may take to load the RDB and answer before the restore rolls back.'),
      })
      .strict()
      .default({ loadTimeoutSeconds: 600 })
      .describe('Restore in place: the worker must run on the Redis host (it writes the RDB file), and hooks.stop / hooks.start stop and start the server.'),
    hooks: hooksSchema.optional().describe('Stop and start the server around an in-place restore (both needed), and an optional health URL.'),
    drill: z
      .object({
        ...drillObjectives,
        smokeChecks: z.array(redisSmokeCheckSchema).default([]).describe('Checks the scratch server must pass for the drill to pass.'),
        scratchDir: z.string().optional().describe('Where the drill puts the RDB and runs the scratch server; default: the system temp dir.'),
        serverUser: z
          .string()
          .min(1)
          .default('redis')
          .describe('The OS user the scratch redis-server runs as when the worker runs as root (Debian\'s package makes `redis`); otherwise it runs as the worker\'s user.'),
        loadTimeoutSeconds: z.number().int().positive().default(600).describe('How long the scratch server may take to load the RDB.'),
      })
      .strict()
      .default({ smokeChecks: [], serverUser: 'redis', loadTimeoutSeconds: 600 })
      .describe('A drill: the newest backup fetched and checked (redis-check-rdb), loaded by a scratch redis-server on a free loopback port, smoke-checked, always stopped and removed.'),
    objectives: targetObjectives,
    schedules: targetSchedules,
    retention: targetRetention,
  })
  .strict();

export type RedisTargetConfig = z.output<typeof redisTargetSchema>;
export type RedisSmokeCheck = z.output<typeof redisSmokeCheckSchema>;
