import { z } from 'zod';
import { drillSchema, envVarName, targetMinCopies, targetObjectives, targetRepositories } from '../../config/common.js';
import { targetRetention } from '../../config/retention.js';
import { targetSchedules } from '../../config/schedules.js';

export const postgresConnectionSchema = z
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
    prefetchSegments: z
      .number()
      .int()
      .min(0)
      .max(256)
      .default(8)
      .describe(
        'restore_command (`lifeboat wal-fetch`) of a PITR or drill fetches up to this many following WAL segments ahead of replay, two at a time, each checked ' +
          'against its record, into a spool beside the recovered data directory that is removed when the recovery ends; 0: one segment per call, as asked.',
      ),
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

const postgresArchiveSchema = z
  .object({
    mode: z
      .enum(['on', 'async', 'off'])
      .default('on')
      .describe(
        '"on": PostgreSQL archives this target\'s WAL with `lifeboat wal-push` (archive_command), one segment per call, and every base backup checks that it arrives: ' +
          'the backup waits until the WAL segment holding its stop point is in the archive of every repository, else it fails with ArchiveNotWorking. ' +
          '"async": the same guarantee and the same check, but `lifeboat archiver` (a daemon on the database host, as the server\'s OS user) pushes the segments ' +
          'PostgreSQL marks ready, `parallel` at a time, and archive_command is the quick `bin/lifeboat-wal-push`, which only finds its segment done ' +
          '(docs/postgresql-deployment.md). "off": this target does not archive WAL (base backups used on their own); the check is skipped.',
      ),
    checkTimeoutSeconds: z
      .number()
      .int()
      .positive()
      .max(3600)
      .default(60)
      .describe('How long a base backup waits for the WAL segment holding its stop point to reach the archive before it fails with ArchiveNotWorking.'),
    spoolDir: z
      .string()
      .default('/var/spool/lifeboat')
      .describe(
        'mode "async": the archiver\'s spool on the database host (<spoolDir>/<target>/), where it marks each segment it has made durable in every repository; ' +
          'archive_command reads the marks. Local, writable by the server\'s OS user, outside the data directory.',
      ),
    parallel: z.number().int().min(1).max(16).default(2).describe('mode "async": how many segments the archiver pushes at once (each through one zstd thread).'),
    waitSeconds: z
      .number()
      .int()
      .positive()
      .max(3600)
      .default(60)
      .describe(
        'mode "async": how long archive_command waits for the running archiver to finish its segment before it pushes the segment itself (as mode "on" does).',
      ),
    queueMaxBytes: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'mode "async": the most WAL that may wait in pg_wal for an archive that cannot be reached. Past it the archiver DROPS every waiting segment: ' +
          'archive_command reports them archived without storing them, so pg_wal shrinks and the database keeps running, and point-in-time recovery ' +
          'cannot cross the gap until the next base backup (an error in the server log, lifeboat_archiver_dropped_segments_total). ' +
          'Unset (the default): nothing is ever dropped, pg_wal grows until the archive is back (or the disk is full). ' +
          'Like pgBackRest\'s archive-push-queue-max; give a few GiB below the free space of pg_wal\'s disk.',
      ),
  })
  .strict();

export const postgresTargetSchema = z
  .object({
    type: z.literal('postgres').describe('A PostgreSQL database: logical backups (pg_dump), base backups (pg_basebackup), WAL archiving and point-in-time recovery.'),
    repositories: targetRepositories.describe('Names of the repositories backups and archived WAL go to; wal-fetch prefers the first.'),
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
    archive: postgresArchiveSchema
      .default({ mode: 'on', checkTimeoutSeconds: 60, spoolDir: '/var/spool/lifeboat', parallel: 2, waitSeconds: 60 })
      .describe('WAL archiving of this target (archive_command = `lifeboat wal-push %p --target <name>`), and the check every base backup makes of it.'),
    recovery: postgresRecoverySchema
      .default({ timeoutSeconds: 3600, prefetchSegments: 8 })
      .describe('Point-in-time recovery (`lifeboat pitr`) and base-backup drills: where recovered clusters go and how long recovery may take.'),
    drill: drillSchema
      .default({ smokeChecks: [] })
      .describe(
        'What a drill checks and measures. method "base": recovery of the newest base backup plus all archived WAL into a scratch cluster; ' +
          'method "dump": a restore of the newest dump into a scratch database, compared table by table with the dump. ' +
          'Smoke checks run against connection.database of the copy; scratchDir is where a scratch cluster goes (default: recovery.dir).',
      ),
    minCopies: targetMinCopies,
    objectives: targetObjectives,
    schedules: targetSchedules,
    retention: targetRetention,
  })
  .strict();

export type PostgresTargetConfig = z.output<typeof postgresTargetSchema>;
export type PostgresConnectionConfig = z.output<typeof postgresConnectionSchema>;
