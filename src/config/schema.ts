import { z } from 'zod';

/**
 * The one definition of lifeboat.config.yaml. Validation, defaults and the configuration
 * reference (npm run docs:config) all come from here: add an option here and nowhere else.
 *
 * Secrets never appear in this file's values: it holds references (environment variable names,
 * file paths) that activities resolve when they need the value.
 */

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, "-" or "_", starting with a letter or digit');

const envVarName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the NAME of an environment variable (not its value)');

export const fsRepositorySchema = z
  .object({
    type: z.literal('fs').describe('A directory on a local or mounted disk.'),
    path: z.string().min(1).describe('Directory that holds the repository; created when missing.'),
  })
  .strict();

export const s3RepositorySchema = z
  .object({
    type: z.literal('s3').describe('An S3 or S3-compatible bucket.'),
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional().describe('S3 endpoint URL; omit for AWS.'),
    bucket: z.string().min(3).describe('Bucket name; must exist.'),
    prefix: z.string().default('').describe('Key prefix inside the bucket, e.g. "lifeboat/".'),
    region: z.string().default('us-east-1').describe('Region to sign requests for.'),
    forcePathStyle: z.boolean().default(true).describe('Path-style addressing (needed by most S3-compatible servers).'),
    accessKeyIdEnv: envVarName.describe('Name of the environment variable holding the access key id.'),
    secretAccessKeyEnv: envVarName.describe('Name of the environment variable holding the secret access key.'),
    partSizeMiB: z.number().int().min(5).max(512).default(8).describe('Multipart part size; larger payloads upload in parts. About three parts are buffered per upload; grown automatically when a payload of known size would need more than 9,000 parts.'),
  })
  .strict();

export const repositorySchema = z.discriminatedUnion('type', [fsRepositorySchema, s3RepositorySchema]);

const hooksSchema = z
  .object({
    stop: z.string().optional().describe('Shell command run before a restore swaps the database (stop the application).'),
    start: z.string().optional().describe('Shell command run after the swap (start the application).'),
    healthUrl: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional().describe('HTTP URL that must answer 2xx after the start hook.'),
    healthTimeoutSeconds: z.number().int().positive().default(60).describe('How long the health URL may take to answer 2xx before the restore rolls back.'),
    timeoutSeconds: z.number().int().positive().default(120).describe('Time limit for each hook command.'),
  })
  .strict();

const smokeCheckSchema = z
  .object({
    name: z.string().min(1).describe('Shown in drill results and reports.'),
    sql: z.string().min(1).describe('A read-only query run against the restored database.'),
    expect: z
      .union([z.string(), z.number(), z.null()], { error: 'expected a string, a number or null' })
      .optional()
      .describe('Expected value of the first column of the first row; omit to only require that the query runs.'),
    minRows: z.number().int().nonnegative().optional().describe('The query must return at least this many rows.'),
  })
  .strict();

const checkKind = z.enum(['integrity_check', 'quick_check']);

const drillSchema = z
  .object({
    rtoTargetSeconds: z.number().positive().optional().describe('Recovery time objective the drill is measured against.'),
    rpoTargetSeconds: z.number().positive().optional().describe('Recovery point objective the drill is measured against.'),
    smokeChecks: z.array(smokeCheckSchema).default([]).describe('Queries a restored copy must pass for the drill to pass.'),
    scratchDir: z.string().optional().describe('Where the drill restores its scratch copy; default: the system temp dir.'),
  })
  .strict();

export const sqliteTargetSchema = z
  .object({
    type: z.literal('sqlite').describe('A SQLite database file (WAL or rollback journal).'),
    path: z.string().min(1).describe('Path of the live SQLite database file.'),
    repositories: z.array(name).min(1).describe('Names of the repositories every backup is written to.'),
    hooks: hooksSchema.optional().describe('Commands and checks around the swap of a restore.'),
    drill: drillSchema.default({ smokeChecks: [] }).describe('What a restore drill checks and measures.'),
    checks: z
      .object({
        backup: checkKind.default('quick_check').describe('The check of every backup\'s snapshot, while it streams.'),
        restore: checkKind.default('integrity_check').describe('The check of a restored copy before it goes live (restore) or is smoke-tested (drill).'),
      })
      .strict()
      .default({ backup: 'quick_check', restore: 'integrity_check' })
      .describe(
        'SQLite checks. quick_check verifies every page and b-tree (about 1.5 s per GiB here); integrity_check also cross-checks ' +
          'every index against its table (about 12 s per GiB with one index).',
      ),
  })
  .strict();

const postgresConnectionSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('Host name, IP address, or the directory of the Unix socket.'),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1).default('postgres'),
    user: z.string().min(1).default('postgres'),
    passwordEnv: envVarName.optional().describe('Name of the environment variable holding the password.'),
    passfile: z.string().optional().describe('A pgpass file (used when passwordEnv is not set).'),
    maintenanceDatabase: z
      .string()
      .min(1)
      .default('postgres')
      .describe('Database Lifeboat connects to for CREATE / DROP / ALTER DATABASE (restores and verification of dumps).'),
  })
  .strict();

const postgresDumpSchema = z
  .object({
    jobs: z
      .number()
      .int()
      .min(1)
      .max(32)
      .default(2)
      .describe(
        'Parallel pg_dump / pg_restore jobs. 1: custom format, streamed from pg_dump straight into the repositories (no local copy); ' +
          'more: directory format, spooled to local disk first (needs room for the uncompressed dump).',
      ),
    spoolDir: z.string().optional().describe('Where directory-format dumps and every restore are spooled (private 0700 directories, removed afterwards); default: the system temp dir.'),
    verify: z
      .boolean()
      .default(false)
      .describe(
        'After each dump, restore it into a scratch database on the same server and compare every table\'s row count and checksum with ' +
          'what was dumped; the scratch database is always dropped. A backup that fails this never gets a manifest. Off by default: ' +
          'it doubles the cost of every dump, and `lifeboat drill` does the same check on the newest dump on its own schedule.',
      ),
    approvalTimeoutSeconds: z
      .number()
      .int()
      .positive()
      .default(3600)
      .describe('How long a restore that would replace an existing database waits for approval (`lifeboat approve`) before it ends, dropping what it restored.'),
  })
  .strict();

const postgresBaseSchema = z
  .object({
    partSizeMiB: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .default(64)
      .describe('The compressed tar stream is stored in parts of this many MiB, each with its own sha256; a restore holds a few parts in memory.'),
    compressionLevel: z
      .number()
      .int()
      .min(1)
      .max(19)
      .default(1)
      .describe(
        'zstd level of base backups (pg_basebackup compresses with compression.threads workers). Level 1, not compression.level: ' +
          'on a pgbench cluster it halved the time of level 3 for a 2% larger backup.',
      ),
    checkpoint: z
      .enum(['fast', 'spread'])
      .default('fast')
      .describe('"fast": pg_basebackup asks for an immediate checkpoint; "spread": it waits for a paced one (less I/O at once, minutes longer).'),
    compressAt: z
      .enum(['server', 'client'])
      .default('server')
      .describe(
        '"server": the server compresses (zstd in its backend, compression.threads workers), so only compressed bytes cross the connection ' +
          '(2 GiB pgbench cluster: 1.8-2.1 s vs 2.4-2.7 s); "client": pg_basebackup compresses, sparing the database host\'s CPU.',
      ),
    spoolDir: z
      .string()
      .optional()
      .describe(
        'Where pg_basebackup writes the compressed tar while it is uploaded (a private directory, removed afterwards; what is uploaded is ' +
          'freed as it goes, so it holds about two parts); default: the system temp dir.',
      ),
  })
  .strict();

const postgresRecoverySchema = z
  .object({
    dir: z
      .string()
      .optional()
      .describe(
        'Directory under which recovered clusters are created, one new data directory per run (<dir>/<target>-<run>); ' +
          'the server user must be able to reach it. Default: <system temp dir>/lifeboat-recovery.',
      ),
    timeoutSeconds: z.number().int().positive().default(3600).describe('How long WAL replay may take before the recovery is stopped and reported as failed.'),
    cutover: z
      .object({
        dataDir: z.string().min(1).describe('The live cluster\'s data directory, which `lifeboat pitr --cutover` replaces (it must be on the same file system as recovery.dir).'),
        startCommand: z
          .string()
          .min(1)
          .describe('Shell command that starts the live cluster from dataDir (e.g. "systemctl start postgresql@15-main"), run after the swap and again on rollback.'),
        stopCommand: z
          .string()
          .optional()
          .describe('Shell command that stops the live cluster; default: `pg_ctl stop -m fast` on dataDir, as the server user.'),
        approvalTimeoutSeconds: z
          .number()
          .int()
          .positive()
          .default(3600)
          .describe('How long a cutover waits for approval (`lifeboat approve`) before it ends, removing the recovered cluster and leaving the live one alone.'),
        healthTimeoutSeconds: z.number().int().positive().default(60).describe('How long the started cluster may take to accept connections and pass the smoke checks before the cutover rolls back.'),
      })
      .strict()
      .optional()
      .describe('Replacing the live cluster by a recovered one (pitr with cutover): only after an approval; the live data directory is kept whole as a safety copy.'),
  })
  .strict();

export const postgresTargetSchema = z
  .object({
    type: z.literal('postgres').describe('A PostgreSQL database: logical backups (pg_dump), base backups (pg_basebackup), WAL archiving and point-in-time recovery.'),
    repositories: z.array(name).min(1).describe('Names of the repositories backups and archived WAL go to; wal-fetch prefers the first.'),
    connection: postgresConnectionSchema
      .default({ host: '127.0.0.1', port: 5432, database: 'postgres', user: 'postgres', maintenanceDatabase: 'postgres' })
      .describe('Where the database is and who Lifeboat connects as. The password is never in the config: name an environment variable or a pgpass file.'),
    method: z
      .enum(['dump', 'base'])
      .default('dump')
      .describe(
        'How the backup runbook backs the database up: "dump" (pg_dump, a logical backup of connection.database) or "base" ' +
          '(pg_basebackup, a physical backup of the whole cluster: with archived WAL, the start of a point-in-time recovery). ' +
          'A run can override it: {"target": "main", "method": "base"}.',
      ),
    dump: postgresDumpSchema.default({ jobs: 2, verify: false, approvalTimeoutSeconds: 3600 }).describe('Logical backups with pg_dump and restores with pg_restore.'),
    base: postgresBaseSchema.default({ partSizeMiB: 64, compressionLevel: 1, checkpoint: 'fast', compressAt: 'server' }).describe('Physical base backups with pg_basebackup (method "base"). connection.user needs REPLICATION.'),
    recovery: postgresRecoverySchema
      .default({ timeoutSeconds: 3600 })
      .describe('Point-in-time recovery (`lifeboat pitr`) and base-backup drills: where recovered clusters go and how long recovery may take.'),
    drill: drillSchema
      .default({ smokeChecks: [] })
      .describe(
        'What a drill checks and measures. method "base": recovery of the newest base backup plus all archived WAL into a scratch cluster; ' +
          'method "dump": a restore of the newest dump into a scratch database, compared table by table with the dump. ' +
          'Smoke checks run against connection.database of the copy; scratchDir is where a scratch cluster goes (default: recovery.dir).',
      ),
  })
  .strict();

export const targetSchema = z.discriminatedUnion('type', [sqliteTargetSchema, postgresTargetSchema]);

/** What a runbook tells the notification channels about (see src/notify/events.ts for each payload). */
export const notificationEventTypes = ['runbook.failed', 'drill.finished', 'approval.waiting', 'verify.damaged'] as const;

const channelFilters = {
  events: z
    .array(z.enum(notificationEventTypes))
    .min(1)
    .default([...notificationEventTypes])
    .describe(
      'Which events this channel gets: "runbook.failed" (any runbook ended in failure), "drill.finished" (passed or not, with RTO and RPO), ' +
        '"approval.waiting" (a runbook waits for an approval, and how to give it), "verify.damaged" (verification found a damaged backup). Default: all.',
    ),
  targets: z.array(name).min(1).optional().describe('Only runs of these targets; default: every target.'),
};

const slackChannelSchema = z
  .object({
    type: z.literal('slack').describe('A Slack (or Slack-compatible: Mattermost, Rocket.Chat) incoming webhook: a message with the facts and, for approvals, Approve / Reject buttons.'),
    urlEnv: envVarName.describe('Name of the environment variable holding the incoming webhook URL (the URL is a credential: anyone who has it can post).'),
    ...channelFilters,
  })
  .strict();

const webhookChannelSchema = z
  .object({
    type: z.literal('webhook').describe('A generic HTTP receiver: a JSON POST signed per the Standard Webhooks specification (webhook-id, webhook-timestamp, webhook-signature).'),
    url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).describe('Where events are POSTed.'),
    secretEnv: envVarName.describe('Name of the environment variable holding the signing secret, `whsec_` followed by 24 to 64 random bytes in base64 (`echo "whsec_$(head -c 32 /dev/urandom | base64)"`).'),
    ...channelFilters,
  })
  .strict();

export const notificationChannelSchema = z.discriminatedUnion('type', [slackChannelSchema, webhookChannelSchema]);

export const configSchema = z
  .object({
    repositories: z.record(name, repositorySchema).describe('Named storage locations.'),
    targets: z.record(name, targetSchema).describe('Named things to protect.'),
    encryption: z
      .object({
        keyFile: z.string().min(1).describe('File holding a 32-byte key (raw or 64 hex characters); payloads are AES-256-GCM.'),
      })
      .strict()
      .optional()
      .describe('Encrypt every backup payload; manifests record the key id, never the key.'),
    compression: z
      .object({
        level: z.number().int().min(1).max(19).default(3).describe('zstd level.'),
        threads: z.number().int().min(1).max(64).default(2).describe('zstd worker threads.'),
      })
      .strict()
      .default({ level: 3, threads: 2 })
      .describe('zstd settings of the backup stream.'),
    temporal: z
      .object({
        address: z.string().default('localhost:7233').describe('Overridden by TEMPORAL_ADDRESS.'),
        namespace: z.string().default('default').describe('Overridden by TEMPORAL_NAMESPACE.'),
        taskQueue: z.string().default('lifeboat').describe('Overridden by LIFEBOAT_TASK_QUEUE.'),
      })
      .strict()
      .default({ address: 'localhost:7233', namespace: 'default', taskQueue: 'lifeboat' })
      .describe('Where the CLI starts runbooks and the worker polls.'),
    notifications: z
      .object({
        channels: z.record(name, notificationChannelSchema).describe('Named receivers of events.'),
        deliveryTimeoutSeconds: z
          .number()
          .int()
          .min(10)
          .max(3600)
          .default(300)
          .describe(
            'How long a run keeps retrying (with backoff) a receiver that is down or answers 5xx before it gives that notification up. ' +
              'Sending is a step after the run\'s outcome is decided: it never changes the result.',
          ),
        temporalUiUrl: z
          .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
          .optional()
          .describe('Base URL of the Temporal UI (e.g. http://temporal.example.com:8233): messages link to the run.'),
      })
      .strict()
      .optional()
      .describe('Tell people: Slack messages and signed webhooks when a runbook fails, a drill finishes, an approval waits or verification finds damage.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const [channelName, channel] of Object.entries(config.notifications?.channels ?? {})) {
      channel.targets?.forEach((target, index) => {
        if (!(target in config.targets)) {
          ctx.addIssue({
            code: 'custom',
            path: ['notifications', 'channels', channelName, 'targets', index],
            message: `unknown target "${target}"; use one of: ${Object.keys(config.targets).join(', ') || '(none defined)'}`,
          });
        }
      });
    }
    for (const [targetName, target] of Object.entries(config.targets)) {
      target.repositories.forEach((repo, index) => {
        if (!(repo in config.repositories)) {
          ctx.addIssue({
            code: 'custom',
            path: ['targets', targetName, 'repositories', index],
            message: `unknown repository "${repo}"; define it under repositories or use one of: ${Object.keys(config.repositories).join(', ') || '(none defined)'}`,
          });
        }
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type RepositoryConfig = z.output<typeof repositorySchema>;
export type FsRepositoryConfig = z.output<typeof fsRepositorySchema>;
export type S3RepositoryConfig = z.output<typeof s3RepositorySchema>;
export type TargetConfig = z.output<typeof targetSchema>;
export type SqliteTargetConfig = z.output<typeof sqliteTargetSchema>;
export type PostgresTargetConfig = z.output<typeof postgresTargetSchema>;
export type PostgresConnectionConfig = z.output<typeof postgresConnectionSchema>;
export type SmokeCheck = z.output<typeof smokeCheckSchema>;
export type NotificationChannelConfig = z.output<typeof notificationChannelSchema>;
export type NotificationsConfig = NonNullable<Config['notifications']>;
export type NotificationEventType = (typeof notificationEventTypes)[number];
