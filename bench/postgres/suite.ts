/**
 * The PostgreSQL part of `npm run bench`: Lifeboat's runbooks on a pgbench cluster of about 2 GiB
 * against pgBackRest, plain pg_basebackup and pg_dump / pg_restore with the same compression.
 *
 *   logical backup   vs  pg_dump -Fd -j2 -Z0; zstd -T2 -3 every file          lifeboat <= 1.1x
 *   logical restore  vs  zstd -d every file; createdb; pg_restore -j2          lifeboat <= 1.1x
 *   base backup      vs  pgbackrest backup --type=full (zst, process-max=2)         lifeboat <= 0.5x
 *   base restore     vs  pgbackrest restore (into a new directory)                 lifeboat <= 1.0x
 *   (references: pgBackRest at Lifeboat's zstd level 1, pg_basebackup -z, pg_basebackup | zstd)
 *   wal-push / wal-fetch vs pgbackrest archive-push / archive-get, one process per segment (bench/postgres/wal.ts; informational)
 */
import type { Client } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { RunbookKind, RunbookTypes, TemporalSettings } from '../../src/client.js';
import type { RunningCluster } from '../../src/postgres/cluster.js';
import { backupDirKey } from '../../src/repository/repository.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { runLifeboat, runShell, type CpuAccounting, type Execution, type ShellStep } from '../measure.js';
import type { Comparison, Variant } from '../report.js';
import { startWorkerProcess, type BenchStack, type WorkerProcess } from '../stack.js';
import {
  baselineEnv,
  basebackupGzip,
  basebackupGzipRestore,
  basebackupZstd,
  basebackupZstdRestore,
  dumpZstd,
  dumpZstdRestore,
  pgbackrestBackup,
  pgbackrestBackupLevel1,
  pgbackrestRepositoryIn,
  pgbackrestRestore,
  pgbackrestSetup,
  writePgbackrestConfig,
} from './baselines.js';
import { ensureBenchCluster, startBenchCluster, type BenchCluster } from './dataset.js';
import { prepareWalBench, walSegments } from './wal.js';

/** What every PostgreSQL bench suite (postgres, wal, pitr) is given. */
export interface PostgresBenchOptions {
  workDir: string;
  benchRoot: string;
  /** The bench cluster's size. */
  sizeMiB: number;
  runs: number;
  /** Waits for a quiet machine and warms the page cache with these paths. */
  settle: (paths: string[]) => Promise<void>;
  say: (line: string) => void;
}

/** The suites that run Lifeboat's runbooks also get the stack and a client. */
export interface PostgresSuiteOptions extends PostgresBenchOptions {
  stack: BenchStack;
  client: Client;
}

export interface PostgresSuiteResult {
  cluster: BenchCluster;
  comparisons: Comparison[];
  backups: Execution[];
  restores: Execution[];
}

const target = 'pgbench';

export async function measurePostgres(options: PostgresSuiteOptions): Promise<PostgresSuiteResult> {
  const { say, workDir } = options;
  const dataset = await ensureBenchCluster(options.benchRoot, options.sizeMiB, say);
  const pgWork = join(workDir, 'postgres');
  await mkdir(join(pgWork, 'out'), { recursive: true });
  await mkdir(join(pgWork, 'spool'), { recursive: true });
  await chownToServerUser(pgWork, { recursive: true });
  const cluster = await startBenchCluster(dataset.dir, dataset.dataDir);
  let worker: WorkerProcess | undefined;
  try {
    const taskQueue = `bench-postgres-${randomBytes(3).toString('hex')}`;
    const settings: TemporalSettings = { address: options.stack.temporal.address, namespace: 'default', taskQueue };
    const configPath = join(pgWork, 'lifeboat.yaml');
    await writePostgresConfig(configPath, cluster, join(pgWork, 'repository'), join(pgWork, 'spool'), settings);
    worker = await startWorkerProcess({
      configPath,
      taskQueue,
      temporalAddress: settings.address,
      bundlePath: options.stack.bundlePath,
      s3: options.stack.s3,
      logFile: join(pgWork, 'worker.log'),
    });
    const accounting: CpuAccounting = { serverPids: [options.stack.temporal.pid, cluster.pid] };
    const lifeboat = <K extends RunbookKind>(kind: K, input: RunbookTypes[K]['input']) =>
      runLifeboat({ client: options.client, settings, kind, input, workerPid: worker!.pid, accounting });
    const out = join(pgWork, 'out');
    const pgbackrestDir = join(pgWork, 'pgbackrest');
    const pgbackrestRepository = pgbackrestRepositoryIn(pgbackrestDir);
    const env = { ...process.env, ...baselineEnv(cluster, out, await writePgbackrestConfig(pgbackrestDir, cluster)) } as Record<string, string>;
    const shell = async (steps: ShellStep[]) => runShell({ steps, env, scratchDir: pgWork, accounting: { serverPids: [cluster.pid] } });
    const emptyOut = async () => {
      await rm(out, { recursive: true, force: true });
      await mkdir(out, { recursive: true });
      await chownToServerUser(out);
    };
    await shell(pgbackrestSetup);
    say(`postgres: ${walSegments} WAL segments for the archive commands`);
    const walBench = await prepareWalBench(cluster, join(pgWork, 'wal'), pgbackrestRepository);
    Object.assign(env, walBench.env);
    // This VM's host reclaims the guest's page cache within minutes, idle or not (measured: a cached
    // 1 GiB table file lost ~3 MB/s), so after the long dump and restore runs the first base backup
    // would read the cluster from disk and the next ones from the cache it warmed. Every variant
    // that reads the cluster starts with its files read once, like the SQLite suite's database.
    const settleCluster = async () => options.settle(await filesUnder(cluster.dataDir, ['pg_wal']));
    // Restores start with what they read in the page cache too: the backup in Lifeboat's repository, pgBackRest's repository, the baselines' output.
    const repositoryDir = join(pgWork, 'repository');
    const settleReading = async (dir: string) => options.settle(await filesUnder(dir));
    const settleBackup = async (backupId: string) => settleReading(join(repositoryDir, backupDirKey(target, backupId)));

    say('postgres: warm-up dump (not measured)');
    await lifeboat('backup', { target });

    const variant = (label: string): Variant => ({ label, executions: [] });
    const dumpBackup = { lifeboat: variant('lifeboat backup (pg_dump -Fd -j2, zstd, sha256, manifest, read-back)'), baseline: variant('pg_dump -Fd -j2 -Z0; zstd -T2 -3 every file') };
    const dumpRestore = { lifeboat: variant('lifeboat restore into a new database (verify, pg_restore -j2)'), baseline: variant('zstd -d every file; createdb; pg_restore -j2') };
    const pgbackrest = {
      backup: variant('pgbackrest backup --type=full (zst level 3, process-max=2)'),
      backupLevel1: variant('pgbackrest backup --type=full (zst level 1, process-max=2)'),
      restore: variant('pgbackrest restore'),
    };
    const baseBackup = variant('lifeboat backup --method base (pg_basebackup server-zstd level 1, parts with sha256, manifest, read-back)');
    const baseRestore = variant('lifeboat restore --method base (fetch, sha256, zstd -d | tar -x, pg_verifybackup)');
    const basebackup = {
      gzip: variant('pg_basebackup -Ft -z'),
      gzipRestore: variant('tar -xzf base.tar.gz'),
      zstd: variant('pg_basebackup -D - -Ft piped to zstd -T2 -3'),
      zstdRestore: variant('zstd -d piped to tar -x'),
    };
    const wal = {
      push: variant(`lifeboat wal-push, ${walSegments} segments, one process each (prebuilt CLI)`),
      pushFromSources: variant(`lifeboat wal-push, ${walSegments} segments, one process each (sources through tsx)`),
      fetch: variant(`lifeboat wal-fetch, ${walSegments} segments, one process each (prebuilt CLI)`),
      pgbackrestPush: variant(`pgbackrest archive-push, ${walSegments} segments, one process each`),
      pgbackrestFetch: variant(`pgbackrest archive-get, ${walSegments} segments, one process each`),
    };
    const restoredDatabases: string[] = [];
    for (let run = 1; run <= options.runs; run++) {
      say(`postgres: run ${run}/${options.runs}`);
      await settleCluster();
      const backup = await lifeboat('backup', { target });
      dumpBackup.lifeboat.executions.push(backup.execution);
      await emptyOut();
      await settleCluster();
      dumpBackup.baseline.executions.push(await shell(dumpZstd));

      await settleBackup(backup.result.backupId);
      const restore = await lifeboat('restore', { target });
      dumpRestore.lifeboat.executions.push(restore.execution);
      if (restore.result.restoredTo) restoredDatabases.push(restore.result.restoredTo);
      await settleReading(out);
      dumpRestore.baseline.executions.push(await shell(dumpZstdRestore));
      await dropDatabases(cluster, [...restoredDatabases.splice(0), 'bench_baseline_restore']);

      // Every base backup variant starts from a checkpointed cluster (otherwise the first one pays
      // for flushing what the restores above dirtied, in its own immediate checkpoint) whose files
      // are in the page cache.
      const settleBase = async () => {
        await checkpoint(cluster);
        await settleCluster();
      };
      // Lifeboat and pgBackRest in turn, the order alternating by run (bench/run.ts inTurn: on this
      // VM the first to write after memory was freed pays for it), backups first, then restores.
      let baseBackupId: string | undefined;
      const inTurn = async (lifeboatSide: () => Promise<void>, pgbackrestSide: () => Promise<void>) => {
        for (const side of run % 2 === 1 ? [lifeboatSide, pgbackrestSide] : [pgbackrestSide, lifeboatSide]) await side();
      };
      await inTurn(
        async () => {
          await settleBase();
          const base = await lifeboat('backup', { target, method: 'base' });
          baseBackup.executions.push(base.execution);
          baseBackupId = base.result.backupId;
        },
        async () => {
          await settleBase();
          pgbackrest.backup.executions.push(await shell(pgbackrestBackup));
        },
      );
      await inTurn(
        async () => {
          await emptyOut();
          await settleBackup(baseBackupId!);
          baseRestore.executions.push((await lifeboat('restore', { target, method: 'base', into: join(out, 'lifeboat-restore') })).execution);
        },
        async () => {
          await emptyOut();
          await settleReading(pgbackrestRepository);
          pgbackrest.restore.executions.push(await shell(pgbackrestRestore));
        },
      );
      await emptyOut();
      await settleBase();
      pgbackrest.backupLevel1.executions.push(await shell(pgbackrestBackupLevel1));
      await settleBase();
      basebackup.gzip.executions.push(await shell(basebackupGzip));
      await settleReading(out);
      basebackup.gzipRestore.executions.push(await shell(basebackupGzipRestore));
      await emptyOut();
      await settleBase();
      basebackup.zstd.executions.push(await shell(basebackupZstd));
      await settleReading(out);
      basebackup.zstdRestore.executions.push(await shell(basebackupZstdRestore));
      await emptyOut();

      await shell(walBench.reset);
      wal.push.executions.push(await shell(walBench.lifeboatPush));
      wal.fetch.executions.push(await shell(walBench.lifeboatFetch));
      wal.pgbackrestPush.executions.push(await shell(walBench.pgbackrestPush));
      wal.pgbackrestFetch.executions.push(await shell(walBench.pgbackrestFetch));
      await shell(walBench.reset);
      wal.pushFromSources.executions.push(await shell(walBench.lifeboatPushFromSources));
    }
    const bytes = dataset.databaseBytes;
    const clusterBytes = dataset.clusterBytes;
    return {
      cluster: dataset,
      comparisons: [
        { id: 'pg-dump', title: 'PostgreSQL logical backup', ...dumpBackup, maxRatio: 1.1, databaseBytes: bytes },
        { id: 'pg-dump-restore', title: 'PostgreSQL logical restore', ...dumpRestore, maxRatio: 1.1, databaseBytes: bytes },
        { id: 'pg-base', title: 'PostgreSQL base backup vs pgBackRest', lifeboat: baseBackup, baseline: pgbackrest.backup, maxRatio: 0.5, databaseBytes: clusterBytes },
        { id: 'pg-base-restore', title: 'PostgreSQL base restore vs pgBackRest', lifeboat: baseRestore, baseline: pgbackrest.restore, maxRatio: 1.0, databaseBytes: clusterBytes },
        { id: 'pg-base-level1-reference', title: 'PostgreSQL base backup vs pgBackRest at the same zstd level 1 (reference)', lifeboat: baseBackup, baseline: pgbackrest.backupLevel1, databaseBytes: clusterBytes },
        { id: 'pg-base-reference', title: 'PostgreSQL base backup: pg_basebackup piped to zstd vs pgBackRest (reference)', lifeboat: basebackup.zstd, baseline: pgbackrest.backup, databaseBytes: clusterBytes },
        { id: 'pg-base-restore-reference', title: 'PostgreSQL base restore: zstd -d piped to tar -x vs pgBackRest (reference)', lifeboat: basebackup.zstdRestore, baseline: pgbackrest.restore, databaseBytes: clusterBytes },
        { id: 'pg-basebackup-gzip-reference', title: 'PostgreSQL base backup: pg_basebackup -Ft -z vs pgBackRest (reference)', lifeboat: basebackup.gzip, baseline: pgbackrest.backup, databaseBytes: clusterBytes },
        { id: 'pg-wal-push', title: 'WAL archiving: lifeboat wal-push vs pgbackrest archive-push (archive_command)', lifeboat: wal.push, baseline: wal.pgbackrestPush, databaseBytes: walBench.bytes },
        { id: 'pg-wal-fetch', title: 'WAL restore: lifeboat wal-fetch vs pgbackrest archive-get (restore_command)', lifeboat: wal.fetch, baseline: wal.pgbackrestFetch, databaseBytes: walBench.bytes },
        { id: 'pg-wal-push-sources-reference', title: 'WAL archiving: lifeboat wal-push prebuilt vs through tsx (reference)', lifeboat: wal.push, baseline: wal.pushFromSources, databaseBytes: walBench.bytes },
        { id: 'pg-basebackup-gzip-restore-reference', title: 'PostgreSQL base restore: tar -xzf vs pgBackRest (reference)', lifeboat: basebackup.gzipRestore, baseline: pgbackrest.restore, databaseBytes: clusterBytes },
      ],
      backups: [...dumpBackup.lifeboat.executions, ...baseBackup.executions],
      restores: [...dumpRestore.lifeboat.executions, ...baseRestore.executions],
    };
  } finally {
    await worker?.stop();
    await cluster.stop();
  }
}

async function writePostgresConfig(path: string, cluster: RunningCluster, repositoryPath: string, spoolDir: string, settings: TemporalSettings): Promise<void> {
  const config = {
    repositories: { fs: { type: 'fs', path: repositoryPath } },
    targets: {
      [target]: {
        type: 'postgres',
        repositories: ['fs'],
        connection: { host: cluster.socketDir, port: cluster.port, database: 'postgres', user: cluster.user },
        method: 'dump',
        dump: { spoolDir },
        // The benchmark's cluster archives into pgBackRest's repository, not into this target's.
        archive: { mode: 'off' },
      },
    },
    temporal: { address: settings.address, namespace: settings.namespace, taskQueue: settings.taskQueue },
  };
  await writeFile(path, stringify(config));
}

/**
 * Every file under dir but those under the excluded subdirectories (the cluster's pg_wal holds
 * gigabytes of recycled segments after the restores, of which a base backup reads one or two).
 */
async function filesUnder(dir: string, exclude: string[] = []): Promise<string[]> {
  const excluded = exclude.map((name) => join(dir, name) + '/');
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .filter((path) => !excluded.some((prefix) => path.startsWith(prefix)));
}

async function checkpoint(cluster: RunningCluster): Promise<void> {
  const client = await cluster.connect();
  try {
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

async function dropDatabases(cluster: RunningCluster, names: string[]): Promise<void> {
  const client = await cluster.connect();
  try {
    for (const name of names) await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
