/**
 * `npm run bench`: Lifeboat's backup and restore runbooks on a ~1 GiB SQLite database against the
 * shell procedures they replace, on this machine, with the acceptance targets:
 *
 *   backup to S3        vs  sqlite3 .backup; gzip; gunzip -t; sha256sum; aws s3 cp   lifeboat <= 0.1x
 *   backup to fs        vs  zstd -T2 -3 -c db > out.zst                              lifeboat <= 1.5x
 *   restore from fs     vs  zstd -d -T2 < object > out.db; sqlite3 integrity_check     lifeboat <= 1.2x
 *   restore from S3     vs  aws s3 cp; then the same                                   lifeboat <= 1.2x
 *   worker peak RSS while backing up or restoring                                      <= 300 MB
 *   verify --read-data  vs  sha256sum of the same stored object                        lifeboat <= 1.2x
 *   retention plan over 1,000 backups (fs and S3)                                       <= 2 s, requests per backup, not per object
 *   (reference: zstd -T2 -3 -c db | aws s3 cp - against the seed procedure, the floor of any backup to S3)
 *   pitr: lifeboat pitr replaying --pitr-wal-mib of archived WAL  vs  pgbackrest restore --type=lsn
 *         with archive-get async, started until promoted (bench/postgres/pitr.ts)           lifeboat <= 1.0x
 *   fan-out: 100 small SQLite targets whose schedules fire in the same minute, one worker: all
 *   complete, worker peak RSS <= 400 MB, the worker's concurrency limits hold (bench/fanout.ts)
 *
 * Usage: npm run bench -- [--size-mib 1024] [--runs 2] [--skip-encrypted] [--keep] [--no-write]
 *                         [--quiet-share 0.3] [--quiet-wait 120] [--suites sqlite,postgres,wal,pitr,fanout,verify,retention] [--pg-size-mib 2048] [--wal-segments 64] [--wal-sustained-seconds 120]
 *                         [--pitr-wal-mib 1024]
 *                         [--fanout-targets 100] [--retention-backups 1000]
 *
 * The PostgreSQL suite (bench/postgres/suite.ts) compares logical dumps and restores with pg_dump /
 * pg_restore, and measures pgBackRest and pg_basebackup on a pgbench cluster as references.
 *
 * It starts its own Temporal dev server (headless), versitygw S3 server and Lifeboat worker child
 * processes under .lifeboat/bench/work (removed at the end unless --keep), generates the database
 * once under .lifeboat/bench/ (reused by later runs), and writes bench/RESULTS.md.
 */
import type { Client } from '@temporalio/client';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { payloadName } from '../src/kinds/sqlite/backup.js';
import { attemptObjectName, backupObjectKey } from '../src/repository/repository.js';
import { connectClient, type RunbookKind, type RunbookTypes, type TemporalSettings } from '../src/client.js';
import { projectRoot, toolPath } from '../src/dev/tools.js';
import { ensureBenchDatabase, type BenchDatabase } from './dataset.js';
import { fanoutLines, fanoutVerdicts, measureFanout, type FanoutResult } from './fanout.js';
import { measurePostgres, type PostgresBenchOptions } from './postgres/suite.js';
import { measurePitr } from './postgres/pitr.js';
import { measureWalSpeed } from './postgres/wal-async.js';
import { measureRetentionPlan } from './retention/suite.js';
import { runLifeboat, runShell, type CpuAccounting, type Execution, type ShellStep } from './measure.js';
import { waitForQuiet } from './procfs.js';
import { best, breakdownLines, markdown, ratio, resultsTable, targetsTable, type Comparison, type Report, type Variant } from './report.js';
import {
  benchTargets,
  defaultChecks,
  otherChecks,
  startBenchStack,
  startWorkerProcess,
  writeBenchConfig,
  type BenchStack,
  type WorkerProcess,
} from './stack.js';

const WORKER_MEMORY_LIMIT_BYTES = 300e6;
const RESULTS_FILE = join(projectRoot, 'bench', 'RESULTS.md');
/** RESULTS.md keeps whatever follows this line (hand-written analysis) when it is regenerated. */
const ANALYSIS_MARKER = '<!-- analysis: kept when bench/run.ts regenerates the part above -->';

const say = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

interface Options {
  sizeMiB: number;
  runs: number;
  encrypted: boolean;
  keep: boolean;
  write: boolean;
  quietShare: number;
  quietWaitMs: number;
  suites: Set<Suite>;
  pgSizeMiB: number;
  fanoutTargets: number;
  retentionBackups: number;
  walSegments: number;
  walSustainedSeconds: number;
  pitrWalMiB: number;
}

const suiteNames = ['sqlite', 'postgres', 'wal', 'pitr', 'fanout', 'verify', 'retention'] as const;
type Suite = (typeof suiteNames)[number];

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string', default: '1024' },
      runs: { type: 'string', default: '2' },
      'skip-encrypted': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      'quiet-share': { type: 'string', default: '0.3' },
      'quiet-wait': { type: 'string', default: '120' },
      suites: { type: 'string', default: suiteNames.join(',') },
      'pg-size-mib': { type: 'string', default: '2048' },
      'fanout-targets': { type: 'string', default: '100' },
      'retention-backups': { type: 'string', default: '1000' },
      'wal-segments': { type: 'string', default: '64' },
      'wal-sustained-seconds': { type: 'string', default: '120' },
      'pitr-wal-mib': { type: 'string', default: '1024' },
    },
  });
  const number = (name: string, value: string | undefined, min: number): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min) throw new Error(`--${name} must be a number >= ${min}, got ${String(value)}`);
    return parsed;
  };
  return {
    sizeMiB: Math.round(number('size-mib', values['size-mib'], 1)),
    runs: Math.round(number('runs', values.runs, 1)),
    encrypted: !values['skip-encrypted'],
    keep: values.keep ?? false,
    write: !values['no-write'],
    quietShare: number('quiet-share', values['quiet-share'], 0),
    quietWaitMs: number('quiet-wait', values['quiet-wait'], 0) * 1000,
    suites: parseSuites(values.suites ?? ''),
    pgSizeMiB: Math.round(number('pg-size-mib', values['pg-size-mib'], 16)),
    fanoutTargets: Math.round(number('fanout-targets', values['fanout-targets'], 1)),
    retentionBackups: Math.round(number('retention-backups', values['retention-backups'], 10)),
    walSegments: Math.round(number('wal-segments', values['wal-segments'], 2)),
    walSustainedSeconds: Math.round(number('wal-sustained-seconds', values['wal-sustained-seconds'], 0)),
    pitrWalMiB: Math.round(number('pitr-wal-mib', values['pitr-wal-mib'], 16)),
  };
}

function parseSuites(list: string): Set<Suite> {
  const suites = new Set<Suite>();
  for (const name of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(suiteNames as readonly string[]).includes(name)) throw new Error(`--suites takes ${suiteNames.join(', ')} (comma-separated), got ${name}`);
    suites.add(name as Suite);
  }
  if (suites.size === 0) throw new Error(`--suites needs at least one of ${suiteNames.join(', ')}`);
  return suites;
}

/** Everything one execution needs to know about the installation under test. */
interface Installation {
  stack: BenchStack;
  client: Client;
  database: BenchDatabase;
  workDir: string;
  fsRepositoryPath: string;
  s3Prefix: string;
  settings: TemporalSettings;
  worker: WorkerProcess;
  accounting: CpuAccounting;
  awsEnv: Record<string, string>;
}

/** Reads files once so every execution starts with them in the page cache (see the method notes). */
async function warm(paths: string[]): Promise<void> {
  for (const path of paths) {
    try {
      await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), new Writable({ write: (_chunk, _encoding, done) => done() }));
    } catch (error) {
      // A server's short-lived file (statistics, a removed segment) may go between listing and reading.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

/** Before each execution: flush earlier writes, warm the inputs, and wait for the machine to be quiet. */
async function settle(options: Options, warmPaths: string[]): Promise<void> {
  await execa('sync');
  await warm(warmPaths);
  const quiet = await waitForQuiet(options.quietShare, options.quietWaitMs);
  if (quiet.busyShare > options.quietShare) {
    say(`warning: the machine is still ${(quiet.busyShare * 100).toFixed(0)}% busy with other work after ${(quiet.waitedMs / 1000).toFixed(0)} s; measuring anyway`);
  }
}

async function lifeboat<K extends RunbookKind>(
  installation: Installation,
  kind: K,
  input: RunbookTypes[K]['input'],
): Promise<{ execution: Execution; result: RunbookTypes[K]['result'] }> {
  const measured = await runLifeboat({
    client: installation.client,
    settings: installation.settings,
    kind,
    input,
    workerPid: installation.worker.pid,
    accounting: installation.accounting,
  });
  say(`  lifeboat ${kind} ${input.target}: ${(measured.execution.wallMs / 1000).toFixed(2)} s, worker peak ${((measured.execution.workerPeakKb ?? 0) / 1024).toFixed(0)} MiB`);
  return measured;
}

async function shell(installation: Installation, label: string, steps: ShellStep[], env: Record<string, string>, scratch: string): Promise<Execution> {
  await mkdir(scratch, { recursive: true });
  try {
    const execution = await runShell({
      steps,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, OUT: scratch, DB: installation.database.path, ...installation.awsEnv, ...env },
      scratchDir: installation.workDir,
      accounting: installation.accounting,
    });
    say(`  ${label}: ${(execution.wallMs / 1000).toFixed(2)} s`);
    return execution;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

const aws = (): string => join(projectRoot, '.tools', 'bin', 'aws');

function seedBackupSteps(bucket: string, key: string): ShellStep[] {
  return [
    { name: 'sqlite3 .backup', script: `sqlite3 "$DB" ".backup '$OUT/tmp.db'"` },
    { name: 'gzip', script: 'gzip "$OUT/tmp.db"' },
    { name: 'gunzip -t', script: 'gunzip -t "$OUT/tmp.db.gz"' },
    { name: 'sha256sum', script: 'sha256sum "$OUT/tmp.db.gz" > "$OUT/tmp.db.gz.sha256"' },
    { name: 'aws s3 cp (upload)', script: `"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "$OUT/tmp.db.gz" "s3://${bucket}/${key}"` },
  ];
}

/**
 * The least any tool can do for a backup to this S3 server: compress at Lifeboat's default level
 * and stream the result to the seed's uploader, with no snapshot, check, hash or read-back. Its
 * ratio to the seed procedure shows how far the 0.1× goal is within reach on this machine.
 */
function bareUploadSteps(bucket: string, key: string): ShellStep[] {
  return [{ name: 'zstd -T2 -3 | aws s3 cp -', script: `zstd -q -T2 -3 -c "$DB" | "$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors - "s3://${bucket}/${key}"` }];
}

const decompressAndCheckSteps: ShellStep[] = [
  { name: 'zstd -d -T2', script: 'zstd -q -d -T2 < "$OBJECT" > "$OUT/out.db"' },
  { name: 'sqlite3 integrity_check', script: 'test "$(sqlite3 "$OUT/out.db" "PRAGMA integrity_check")" = ok' },
];

// What the first attempt of a backup step stores (a step the benchmark sees retried would store attempt-2/...).
const objectName = attemptObjectName(1, payloadName(false));

/** Runs the interleaved measurements of one installation (one worker config). */
async function measureMain(options: Options, installation: Installation): Promise<{ comparisons: Comparison[]; backups: Execution[]; restores: Execution[] }> {
  const { database, stack } = installation;
  const bucket = stack.s3.bucket;
  const variant = (label: string): Variant => ({ label, executions: [] });
  const backupS3 = { lifeboat: variant('lifeboat backup → S3'), baseline: variant('seed: sqlite3 .backup; gzip; gunzip -t; sha256sum; aws s3 cp') };
  const bareUpload = variant('zstd -T2 -3 -c db | aws s3 cp - (no snapshot, check, hash or read-back)');
  const backupFs = { lifeboat: variant('lifeboat backup → fs'), baseline: variant('zstd -T2 -3 -c db > out.zst') };
  const restoreFs = { lifeboat: variant('lifeboat restore --into ← fs'), baseline: variant('zstd -d -T2 < object > out.db; sqlite3 integrity_check') };
  const restoreS3 = { lifeboat: variant('lifeboat restore --into ← S3'), baseline: variant('aws s3 cp (download); zstd -d -T2; sqlite3 integrity_check') };
  // Informational: the same backups and restores with the other SQLite check, against the same baselines.
  const alternative = otherChecks();
  const backupS3Other = { lifeboat: variant(`lifeboat backup → S3, ${alternative.backup}`), baseline: { ...backupS3.baseline, label: `${backupS3.baseline.label} (same as above)` } };
  const backupFsOther = { lifeboat: variant(`lifeboat backup → fs, ${alternative.backup}`), baseline: { ...backupFs.baseline, label: `${backupFs.baseline.label} (same as above)` } };
  const restoreFsOther = { lifeboat: variant(`lifeboat restore --into ← fs, ${alternative.restore}`), baseline: { ...restoreFs.baseline, label: `${restoreFs.baseline.label} (same as above)` } };
  const restoreDir = join(installation.workDir, 'restored');
  await mkdir(restoreDir, { recursive: true });

  for (let run = 1; run <= options.runs; run++) {
    say(`run ${run}/${options.runs}`);

    /** A Lifeboat backup of `target` and its shell baseline, in turn; returns the backup. */
    const backupPair = async (target: string, pair: { lifeboat: Variant; baseline: Variant }, baselineLabel: string, baselineSteps: ShellStep[]): Promise<Measured<'backup'>> => {
      let backup: Measured<'backup'> | undefined;
      await inTurn(
        run,
        async () => {
          await settle(options, [database.path]);
          backup = await lifeboat(installation, 'backup', { target });
          pair.lifeboat.executions.push(backup.execution);
        },
        async () => {
          await settle(options, [database.path]);
          pair.baseline.executions.push(await shell(installation, baselineLabel, baselineSteps, {}, join(installation.workDir, 'baseline')));
        },
      );
      return backup!;
    };
    const fsBackup = await backupPair(benchTargets.fs, backupFs, 'zstd -T2 -3', [{ name: 'zstd -T2 -3', script: 'zstd -q -T2 -3 -c "$DB" > "$OUT/raw.zst"' }]);
    const s3Backup = await backupPair(benchTargets.s3, backupS3, 'seed procedure', seedBackupSteps(bucket, `seed/run-${run}/tmp.db.gz`));
    await settle(options, [database.path]);
    bareUpload.executions.push(await shell(installation, 'zstd -T2 -3 | aws s3 cp -', bareUploadSteps(bucket, `bare/run-${run}/raw.zst`), {}, join(installation.workDir, 'baseline')));

    await settle(options, [database.path]);
    const fsOtherBackup = await lifeboat(installation, 'backup', { target: benchTargets.fsOtherCheck });
    backupFsOther.lifeboat.executions.push(fsOtherBackup.execution);
    await settle(options, [database.path]);
    backupS3Other.lifeboat.executions.push((await lifeboat(installation, 'backup', { target: benchTargets.s3OtherCheck })).execution);

    // Restores read the newest backup of each target: the one the backups above just made. Lifeboat
    // and its baseline start with the same stored object read once (see warm).
    /** Restores the backup just made into a new file (removed afterwards), from the stored object warmed once. */
    const restoreOf = (backup: Measured<'backup'>, target: string, storedObject: string, variant: Variant) => async (): Promise<void> => {
      const into = join(restoreDir, `${target}-${run}.db`);
      await settle(options, [storedObject]);
      const restored = await lifeboat(installation, 'restore', { target, into });
      variant.executions.push(restored.execution);
      sameBackup(restored.result.backupId, backup.result.backupId);
      await rm(into, { force: true });
    };
    const fsObject = fsObjectPath(installation, benchTargets.fs, fsBackup.result.backupId, objectName);
    await inTurn(
      run,
      restoreOf(fsBackup, benchTargets.fs, fsObject, restoreFs.lifeboat),
      async () => {
        await settle(options, [fsObject]);
        restoreFs.baseline.executions.push(await shell(installation, 'zstd -d + integrity_check', decompressAndCheckSteps, { OBJECT: fsObject }, join(installation.workDir, 'baseline')));
      },
    );

    const s3Key = `${installation.s3Prefix}${backupObjectKey(benchTargets.s3, s3Backup.result.backupId, objectName)}`;
    const s3Object = join(installation.workDir, 'stack', 's3', 'buckets', bucket, s3Key);
    await inTurn(
      run,
      restoreOf(s3Backup, benchTargets.s3, s3Object, restoreS3.lifeboat),
      async () => {
        await settle(options, [s3Object]);
        restoreS3.baseline.executions.push(
          await shell(
            installation,
            'aws s3 cp + zstd -d + integrity_check',
            [
              { name: 'aws s3 cp (download)', script: `"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "s3://${bucket}/${s3Key}" "$OUT/object.zst"` },
              ...decompressAndCheckSteps,
            ],
            { OBJECT: join(installation.workDir, 'baseline', 'object.zst') },
            join(installation.workDir, 'baseline'),
          ),
        );
      },
    );

    await restoreOf(fsOtherBackup, benchTargets.fsOtherCheck, fsObjectPath(installation, benchTargets.fsOtherCheck, fsOtherBackup.result.backupId, objectName), restoreFsOther.lifeboat)();
  }

  const bytes = database.sizeBytes;
  const comparisons: Comparison[] = [
    { id: 'backup-s3', title: 'backup to S3', ...backupS3, maxRatio: 0.1, databaseBytes: bytes },
    { id: 'backup-fs', title: 'backup to fs', ...backupFs, maxRatio: 1.5, databaseBytes: bytes },
    { id: 'restore-fs', title: 'restore from fs', ...restoreFs, maxRatio: 1.2, databaseBytes: bytes },
    { id: 'restore-s3', title: 'restore from S3', ...restoreS3, maxRatio: 1.2, databaseBytes: bytes },
    { id: 'backup-s3-bare-reference', title: 'backup to S3: bare zstd piped to aws s3 cp vs the seed procedure (reference)', lifeboat: bareUpload, baseline: backupS3.baseline, databaseBytes: bytes },
    { id: 'backup-s3-other-check', title: `backup to S3 with ${alternative.backup}`, ...backupS3Other, databaseBytes: bytes },
    { id: 'backup-fs-other-check', title: `backup to fs with ${alternative.backup}`, ...backupFsOther, databaseBytes: bytes },
    { id: 'restore-fs-other-check', title: `restore from fs with ${alternative.restore}`, ...restoreFsOther, databaseBytes: bytes },
  ];
  return {
    comparisons,
    backups: [...backupS3.lifeboat.executions, ...backupFs.lifeboat.executions, ...backupS3Other.lifeboat.executions, ...backupFsOther.lifeboat.executions],
    restores: [...restoreFs.lifeboat.executions, ...restoreS3.lifeboat.executions, ...restoreFsOther.lifeboat.executions],
  };
}

type Measured<K extends RunbookKind> = Awaited<ReturnType<typeof lifeboat<K>>>;

/**
 * Measures a pair with Lifeboat first in odd runs and the baseline first in even runs. On this VM
 * whoever writes a gigabyte first after memory was freed pays for the host handing the freed pages
 * back (a profile of such a slow restore: 64% of zstd's time in the kernel copying into fresh page
 * cache pages), so neither side should always take that slot.
 */
async function inTurn(run: number, lifeboatSide: () => Promise<void>, baselineSide: () => Promise<void>): Promise<void> {
  for (const side of run % 2 === 1 ? [lifeboatSide, baselineSide] : [baselineSide, lifeboatSide]) await side();
}

/** The file of a stored object in the benchmark's fs repository. */
function fsObjectPath(installation: Installation, target: string, backupId: string, name: string): string {
  return join(installation.fsRepositoryPath, backupObjectKey(target, backupId, name));
}

/** The restores are measured against the object warmed beforehand: the backup just made. */
function sameBackup(restored: string, backedUp: string): void {
  if (restored !== backedUp) throw new Error(`the restore read backup ${restored}, not ${backedUp} made just before it: another process wrote to the benchmark's repository`);
}

/** One encrypted backup to fs and one restore from it, against the unencrypted baselines. */
async function measureEncrypted(options: Options, installation: Installation, baselines: Comparison[]): Promise<{ comparisons: Comparison[]; backups: Execution[]; restores: Execution[] }> {
  const baselineOf = (id: string): Variant => {
    const found = baselines.find((c) => c.id === id);
    if (!found) throw new Error(`no baseline ${id}`);
    return { label: `${found.baseline.label} (same as above)`, executions: found.baseline.executions };
  };
  say('encrypted run');
  await settle(options, [installation.database.path]);
  const backup = await lifeboat(installation, 'backup', { target: benchTargets.fs });
  const into = join(installation.workDir, 'restored', 'encrypted.db');
  const encryptedObject = fsObjectPath(installation, benchTargets.fs, backup.result.backupId, attemptObjectName(1, payloadName(true)));
  await settle(options, [encryptedObject]);
  const restore = await lifeboat(installation, 'restore', { target: benchTargets.fs, into });
  sameBackup(restore.result.backupId, backup.result.backupId);
  await rm(into, { force: true });
  const bytes = installation.database.sizeBytes;
  return {
    comparisons: [
      { id: 'backup-fs-encrypted', title: 'backup to fs, encrypted (1 run)', lifeboat: { label: 'lifeboat backup → fs, AES-256-GCM', executions: [backup.execution] }, baseline: baselineOf('backup-fs'), databaseBytes: bytes },
      { id: 'restore-fs-encrypted', title: 'restore from fs, encrypted (1 run)', lifeboat: { label: 'lifeboat restore --into ← fs, AES-256-GCM', executions: [restore.execution] }, baseline: baselineOf('restore-fs'), databaseBytes: bytes },
    ],
    backups: [backup.execution],
    restores: [restore.execution],
  };
}

/**
 * `lifeboat verify --read-data` of the fs backup of the benchmark database (one stored object of
 * about the compressed size) against `sha256sum` of the same stored object, in turn, both from a
 * warm page cache: what verification adds to reading and hashing the bytes.
 */
async function measureVerify(options: Options, installation: Installation): Promise<{ comparisons: Comparison[]; executions: Execution[] }> {
  say('verify suite: one backup to fs, then verify --read-data against sha256sum of its object');
  const backup = await lifeboat(installation, 'backup', { target: benchTargets.fs });
  const object = fsObjectPath(installation, benchTargets.fs, backup.result.backupId, objectName);
  const verify: Variant = { label: 'lifeboat verify --read-data (fs)', executions: [] };
  const sha256sum: Variant = { label: 'sha256sum <stored object>', executions: [] };
  for (let run = 1; run <= options.runs; run++) {
    await inTurn(
      run,
      async () => {
        await settle(options, [object]);
        const verified = await lifeboat(installation, 'verify', { target: benchTargets.fs, readData: 'full' });
        if (!verified.result.valid || verified.result.repositories[0]?.objectsRead !== 1) throw new Error(`verify did not read the one object back valid: ${JSON.stringify(verified.result.repositories[0])}`);
        verify.executions.push(verified.execution);
      },
      async () => {
        await settle(options, [object]);
        sha256sum.executions.push(await shell(installation, 'sha256sum', [{ name: 'sha256sum', script: 'sha256sum "$OBJECT" > /dev/null' }], { OBJECT: object }, join(installation.workDir, 'baseline')));
      },
    );
  }
  return {
    comparisons: [{ id: 'verify-read-data-fs', title: 'verify --read-data of the fs backup', lifeboat: verify, baseline: sha256sum, maxRatio: 1.2, databaseBytes: installation.database.sizeBytes }],
    executions: verify.executions,
  };
}

async function version(command: string, args: string[]): Promise<string> {
  const result = await execa(command, args, { reject: false, stdin: 'ignore' });
  return `${String(result.stdout)} ${String(result.stderr)}`.trim().split('\n')[0] ?? '?';
}

/** The commit measured, and whether the work tree had changes outside bench/ (other people's work in progress). */
async function gitState(): Promise<string> {
  const head = await execa('git', ['rev-parse', '--short', 'HEAD'], { cwd: projectRoot, reject: false });
  const status = await execa('git', ['status', '--porcelain'], { cwd: projectRoot, reject: false });
  const changed = String(status.stdout)
    .split('\n')
    .map((line) => line.slice(3))
    .filter((path) => path && !path.startsWith('bench/'));
  return `${String(head.stdout).trim() || '?'}${changed.length ? ` with uncommitted changes to ${changed.join(', ')}` : ''}`;
}

/** versitygw built from source prints "Version: git"; the pin it was built from is in its bootstrap stamp. */
async function versitygwPin(): Promise<string> {
  const stamp = join(projectRoot, '.tools', 'stamps', 'versitygw');
  return existsSync(stamp) ? ((await readFile(stamp, 'utf8')).trim().split('@').at(-1) ?? '?') : '?';
}

async function describeMachine(database: BenchDatabase | undefined, workDir: string): Promise<string[]> {
  const cpu = cpus();
  const df = await execa('df', ['-h', '--output=source,fstype,size,avail', workDir], { reject: false });
  const osRelease = existsSync('/etc/os-release') ? (/^PRETTY_NAME="?([^"\n]+)/m.exec(await readFile('/etc/os-release', 'utf8'))?.[1] ?? '?') : '?';
  return [
    `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${osRelease}, Linux ${release()}`,
    `disk (database, repositories, scratch): ${String(df.stdout).split('\n')[1]?.trim().replace(/\s+/g, ' ') ?? '?'}`,
    `Node ${process.version}; zstd CLI ${await version('zstd', ['-qV'])}; sqlite3 CLI ${await version('sqlite3', ['--version']).then((v) => v.split(' ')[0])}; gzip ${await version('gzip', ['--version']).then((v) => v.split(' ').at(-1))}; ${await version(aws(), ['--version'])}`,
    `${await version(toolPath('temporal'), ['--version'])}; versitygw ${await versitygwPin()}`,
    ...(database
      ? [`database: ${database.path.replace(`${projectRoot}/`, '')}, ${(database.sizeBytes / 2 ** 20).toFixed(0)} MiB (${database.sizeBytes} bytes), ${database.rows} rows, WAL mode, one table with a secondary index`]
      : []),
  ];
}

function methodNotes(options: Options, gitState: string): string[] {
  return [
    `source: git ${gitState}`,
    `each variant ran ${options.runs} time(s), interleaved pair by pair, Lifeboat first in odd runs and its baseline first in even runs (on this VM whoever writes a gigabyte first after memory was freed pays for the host handing the pages back); the tables show the fastest run and list all runs`,
    'warm page cache for every variant: before each execution the benchmark runs `sync` (so earlier writes are not flushed during it) and reads the inputs once (database, or the stored object for the restore baselines; for the PostgreSQL dumps and base backups every file of the data directory but pg_wal, after a CHECKPOINT before each base backup); the inputs fit in RAM many times over, so no variant reads from the disk. This matters on this VM: its host reclaims the guest\'s page cache within minutes, idle or not, so without it the first variant after a long one would read from the virtual disk and warm the cache for the next. Dropping the cache was not used: it would mostly measure the virtual disk',
    `before each execution it waits (up to ${options.quietWaitMs / 1000} s) until the machine's CPU is less than ${(options.quietShare * 100).toFixed(0)}% busy; "other load CPU s" is the busy CPU time during the execution that belongs to none of the measured processes (other people's work on this shared machine): high values mean that row is pessimistic`,
    `Lifeboat wall time: from the client starting the workflow to its result (the client is connected and the worker polling beforehand); the worker is a child process \`node bin/lifeboat.js worker\` started as deployed (MALLOC_ARENA_MAX=2 and node --max-semi-space-size=2, as the Dockerfile and the systemd unit of docs/getting-started.md set them) with a workflow bundle built before timing, config defaults (zstd level 3, 2 threads, checks: backup ${defaultChecks().backup}, restore ${defaultChecks().restore}; no encryption unless noted; S3 part size 8 MiB)`,
    'a Lifeboat backup includes: snapshot pin, the integrity check of the snapshot (in a thread, concurrently with the upload), sha256 of the source and of the stored object, the upload, the manifest, and the read-back verification of every stored copy; a Lifeboat restore includes: locating the newest backup, download, sha256 of the object, zstd -d, rename, and the integrity check of the copy, beside which the sha256 of the database and its fsync run',
    'baselines run as shell commands back to back under GNU time; they do not fsync what they write, Lifeboat does',
    'CPU s: user+system seconds of the worker (including its zstd subprocesses) plus the Temporal and versitygw servers for Lifeboat; of the commands plus versitygw for the baselines',
    'peak RSS: for Lifeboat the worker process VmHWM over that execution (reset with /proc/<pid>/clear_refs just before); in brackets the highest sampled (every 50 ms) anonymous RSS of the worker (VmHWM also counts file-backed pages: the node binary, shared libraries, mmap-ed files) and the highest sampled sum of worker + zstd subprocess RSS; for the baselines the largest peak of any one command',
    `the "with <check>" rows are informational: the same backups and restores with the other SQLite check than the default (\`checks: { backup: ${otherChecks().backup}, restore: ${otherChecks().restore} }\` on the target), against the same baselines; the restore baselines always run the full integrity_check`,
    'the "bare zstd piped to aws s3 cp" row is a reference, not a Lifeboat measurement: the raw compressor streaming into the seed\'s uploader, with no snapshot, check, hash or read-back; its ratio to the seed procedure is about the least any backup to this S3 server can reach on this machine',
    'the worker memory limit is checked against the highest VmHWM of the worker over every Lifeboat backup (all targets) or restore execution of the run; beside it the highest sampled anonymous RSS (RssAnon: what the worker allocated, without file-backed pages such as the node binary, libraries or mmap-ed files)',
    'PostgreSQL suite: a pgbench cluster (scale ≈ size / 15 MiB) on the same disk, fsync on; Lifeboat dump = exported snapshot, pg_dump -Fd -j2 -Z0 into a spool, zstd -3 of every file into the fs repository with per-table fingerprints, pg_restore --list, manifest, read-back; Lifeboat restore = verify every object, zstd -d into a spool, pg_restore -j2 into a new database; the base backup rows compare plain tools with pgBackRest (zst level 3, process-max 2, repository on the same disk, archive-check off) as references for the base backup runbook',
    'verify suite: one Lifeboat backup of the database to fs, then `verify` with readData "full" (lists the backup, reads its manifest, reads the stored object back streamed and recomputes its sha256, writes the verification state and the report) against `sha256sum` of the same stored object; both read it from the page cache (warmed before each execution)',
    'retention suite: small complete backups written straight into a fs and an S3 repository (test/helpers/backup-fixture.ts), then in-process what the plan step does (list the backup folders, read every manifest, the leases, the verification state and the deletion intents; plan keepDaily 7, keepWeekly 4, keepMonthly 12 in Europe/Berlin), against a budget of 2 s; requests are counted at the Backend interface (one list or listFolder call is one request per 1,000 entries), for backups of 1 and of 4 objects',
    'MB = 10^6 bytes; MB/s = database bytes / wall time',
  ];
}

async function writeResults(report: Report): Promise<void> {
  let analysis = `\n${ANALYSIS_MARKER}\n`;
  if (existsSync(RESULTS_FILE)) {
    const previous = await readFile(RESULTS_FILE, 'utf8');
    const at = previous.indexOf(ANALYSIS_MARKER);
    if (at >= 0) analysis = `\n${previous.slice(at)}`;
  }
  await writeFile(RESULTS_FILE, `${markdown(report)}${analysis.endsWith('\n') ? analysis : `${analysis}\n`}`);
  say(`wrote ${RESULTS_FILE}`);
}

/**
 * The AWS SDK warns once per process that its future releases will need Node 22: a note about the
 * project's runtime, not about this benchmark, so it is kept out of the benchmark's output (the
 * SDK's own switch; the worker children inherit it).
 */
function silenceNodeVersionWarning(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

async function main(): Promise<void> {
  silenceNodeVersionWarning();
  const options = parseOptions();
  // The AWS CLI (--bench) is the SQLite suite's; the 1 GiB database is the SQLite and verify suites'.
  const sqlite = options.suites.has('sqlite');
  say(`bootstrapping tools (scripts/bootstrap.sh${sqlite ? ' --bench' : ''})`);
  await execa('bash', [join(projectRoot, 'scripts', 'bootstrap.sh'), ...(sqlite ? ['--bench'] : [])], { stdio: ['ignore', 'inherit', 'inherit'] });

  const benchRoot = join(projectRoot, '.lifeboat', 'bench');
  // The verify suite reads back a backup of the same database.
  const database = sqlite || options.suites.has('verify') ? await ensureBenchDatabase(benchRoot, options.sizeMiB, say) : undefined;
  const workDir = join(benchRoot, 'work');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const loadBefore = loadavg();
  // Taken before the worker starts: the code it loads is what gets measured.
  const source = await gitState();

  say('starting Temporal dev server, versitygw and bundling workflows');
  const stack = await startBenchStack(join(workDir, 'stack'));
  const workers: WorkerProcess[] = [];
  // Ctrl-C: stop the worker children and the servers too (the workdir is kept for inspection).
  const interrupted = (signal: NodeJS.Signals): void => {
    say(`${signal}: stopping the workers and servers; ${workDir} is kept`);
    void Promise.allSettled([...workers.map((worker) => worker.stop()), stack.close()]).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let client: Client | undefined;
  let succeeded = false;
  try {
    const accounting: CpuAccounting = { serverPids: [stack.temporal.pid, stack.s3.server.pid] };
    const awsEnv = {
      AWS: aws(),
      S3_ENDPOINT: stack.s3.endpoint,
      AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: join(workDir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(workDir, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const install = async (name: string, encryptionKeyFile?: string): Promise<Installation> => {
      if (!database) throw new Error('internal error: the SQLite suite runs without its database');
      const taskQueue = `bench-${name}-${randomBytes(3).toString('hex')}`;
      const settings: TemporalSettings = { address: stack.temporal.address, namespace: 'default', taskQueue };
      const configPath = join(workDir, `lifeboat-${name}.yaml`);
      const fsRepositoryPath = join(workDir, `repository-${name}`);
      const s3Prefix = `${name}/`;
      await writeBenchConfig({
        path: configPath,
        databasePath: database.path,
        fsRepositoryPath,
        s3: stack.s3,
        s3Prefix,
        temporalAddress: stack.temporal.address,
        taskQueue,
        ...(encryptionKeyFile ? { encryptionKeyFile } : {}),
      });
      const worker = await startWorkerProcess({
        configPath,
        taskQueue,
        temporalAddress: stack.temporal.address,
        bundlePath: stack.bundlePath,
        s3: stack.s3,
        logFile: join(workDir, `worker-${name}.log`),
      });
      workers.push(worker);
      client ??= await connectClient(settings);
      return { stack, client, database, workDir, fsRepositoryPath, s3Prefix, settings, worker, accounting, awsEnv };
    };

    const comparisons: Comparison[] = [];
    const backups: Execution[] = [];
    const restores: Execution[] = [];
    const postgresBackups: Execution[] = [];
    const postgresRestores: Execution[] = [];
    if (options.suites.has('sqlite')) {
      const plain = await install('plain');
      say(`worker pid ${plain.worker.pid}; warm-up backup to fs and S3 (not measured)`);
      await lifeboat(plain, 'backup', { target: benchTargets.both });
      const primary = await measureMain(options, plain);
      await plain.worker.stop();

      comparisons.push(...primary.comparisons);
      backups.push(...primary.backups);
      restores.push(...primary.restores);
      if (options.encrypted) {
        const keyFile = join(workDir, 'bench.key');
        await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
        const encrypted = await install('encrypted', keyFile);
        // Warm-up: the first backup of a fresh worker loads the S3 SDK and friends.
        await lifeboat(encrypted, 'backup', { target: benchTargets.fs });
        const measured = await measureEncrypted(options, encrypted, primary.comparisons);
        comparisons.push(...measured.comparisons);
        backups.push(...measured.backups);
        restores.push(...measured.restores);
        await encrypted.worker.stop();
      }
    }
    const verifications: Execution[] = [];
    const sections: Array<{ title: string; lines: string[] }> = [];
    const extraMethod: string[] = [];
    if (options.suites.has('verify')) {
      const installation = await install('verify');
      const measured = await measureVerify(options, installation);
      comparisons.push(...measured.comparisons);
      verifications.push(...measured.executions);
      await installation.worker.stop();
    }
    if (options.suites.has('retention')) {
      say(`retention suite: plans over ${options.retentionBackups} backups in fs and S3`);
      const measured = await measureRetentionPlan({ workDir, s3: stack.s3, backups: options.retentionBackups, runs: options.runs, say });
      comparisons.push(...measured.comparisons);
      extraMethod.push(...measured.notes);
    }
    const postgresBench: PostgresBenchOptions = { workDir, benchRoot, sizeMiB: options.pgSizeMiB, runs: options.runs, settle: (paths) => settle(options, paths), say };
    if (options.suites.has('postgres')) {
      client ??= await connectClient({ address: stack.temporal.address, namespace: 'default', taskQueue: 'unused' });
      const measured = await measurePostgres({ ...postgresBench, stack, client });
      comparisons.push(...measured.comparisons);
      postgresBackups.push(...measured.backups);
      postgresRestores.push(...measured.restores);
    }
    if (options.suites.has('wal')) {
      const measured = await measureWalSpeed({ ...postgresBench, segments: options.walSegments, sustainedSeconds: options.walSustainedSeconds });
      comparisons.push(...measured.comparisons);
      extraMethod.push(...measured.notes);
      sections.push(...measured.sections);
    }
    if (options.suites.has('pitr')) {
      client ??= await connectClient({ address: stack.temporal.address, namespace: 'default', taskQueue: 'unused' });
      const measured = await measurePitr({ ...postgresBench, stack, client, walMiB: options.pitrWalMiB });
      comparisons.push(...measured.comparisons);
      extraMethod.push(...measured.notes);
      sections.push(...measured.sections);
    }
    let fanout: FanoutResult | undefined;
    if (options.suites.has('fanout')) {
      await settle(options, []);
      fanout = await measureFanout({ stack, workDir, targets: options.fanoutTargets, say });
    }

    const memory = (title: string, executions: Execution[]) => ({
      title,
      workerPeakKb: Math.max(...executions.map((e) => e.workerPeakKb ?? 0)),
      workerTreePeakKb: Math.max(...executions.map((e) => e.workerTreePeakKb ?? 0)),
      workerAnonPeakKb: Math.max(...executions.map((e) => e.workerAnonPeakKb ?? 0)),
      limitBytes: WORKER_MEMORY_LIMIT_BYTES,
    });
    const loadAfter = loadavg();
    const report: Report = {
      date: new Date().toISOString(),
      machine: [
        ...(await describeMachine(database, workDir)),
        `load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}; after: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
      ],
      method: [...methodNotes(options, source), ...extraMethod],
      comparisons,
      memory: [
        ...(backups.length ? [memory('worker peak RSS while backing up', backups), memory('worker peak RSS while restoring', restores)] : []),
        ...(postgresBackups.length
          ? [memory('worker peak RSS, PostgreSQL dump and base backups', postgresBackups), memory('worker peak RSS, PostgreSQL restore', postgresRestores)]
          : []),
        ...(verifications.length ? [memory('worker peak RSS while verifying', verifications)] : []),
      ],
      ...(fanout || sections.length ? { sections: [...sections, ...(fanout ? [{ title: 'Fan-out: schedules firing together (bench/fanout.ts)', lines: fanoutLines(fanout) }] : [])] } : {}),
    };

    const print = (lines: string[]) => console.log(lines.join('\n'));
    if (report.comparisons.length || report.memory.length) {
      console.log('\nTargets\n');
      print(targetsTable(report));
      console.log('\nAll measurements\n');
      print(resultsTable(report));
      console.log('\nWhere the time goes\n');
      print(breakdownLines(report));
    }
    for (const section of sections) {
      console.log(`\n${section.title}\n`);
      print(section.lines);
    }
    if (fanout) {
      console.log('\nFan-out\n');
      print(fanoutLines(fanout));
    }
    const missed = [
      ...report.comparisons.filter((c) => c.maxRatio !== undefined && ratio(c) > c.maxRatio).map((c) => c.title),
      ...(fanout ? fanoutVerdicts(fanout).filter(([, , , pass]) => !pass).map(([title]) => title) : []),
    ];
    console.log(`\n${missed.length === 0 ? 'all ratio targets met' : `missed: ${missed.join(', ')}`}${backups.length ? `; fastest Lifeboat SQLite backup ${(best(backups).wallMs / 1000).toFixed(2)} s` : ''}`);
    if (options.write) await writeResults(report);
    succeeded = true;
  } finally {
    await Promise.allSettled(workers.map((worker) => worker.stop()));
    await client?.connection.close();
    await stack.close();
    // After a failure the worker and server logs there are what explains it.
    if (succeeded && !options.keep) await rm(workDir, { recursive: true, force: true });
    else say(`kept ${workDir} (worker logs, server logs, repositories)`);
  }
}

await main();
