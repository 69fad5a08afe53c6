/**
 * The `pitr` suite of `npm run bench` (issue 18 §5): point-in-time recovery end to end, replaying
 * at least `--pitr-wal-mib` (default 1024) of archived WAL, against pgBackRest.
 *
 *   lifeboat pitr <target> --lsn X --exclusive (the runbook as an operator starts it: choose the
 *   base backup, fetch + sha256 + zstd -d | tar -x + pg_verifybackup, start PostgreSQL with
 *   restore_command = bin/lifeboat-wal-fetch with prefetch (8 ahead), wait until it promoted)
 *     vs
 *   pgbackrest restore --type=lsn --target=X --target-exclusive --target-action=promote with
 *   archive-get async (archive-async=y, process-max=2), then pg_ctl start and wait until the server
 *   promoted                                                                       lifeboat <= 1.0x
 *
 * One cluster (a copy of the bench cluster, so the cached dataset stays as it was) archives every
 * WAL segment into both archives: archive_command = `lifeboat wal-push %p && pgbackrest
 * archive-push %p`. Both sides so recover exactly the same WAL, written once by the same load; a
 * workload run twice would give each side different WAL (different full-page images, different
 * checkpoints). Archiving is not timed. Both base backups are taken back to back before the load
 * (Lifeboat's first), so each replays the same WAL within a segment or two.
 *
 * The load: pgbench (TPC-B-like, 4 clients, synchronous_commit off) in 5-second rounds until the
 * WAL since the backups reaches --pitr-wal-mib; the target is the WAL insert position then (no
 * transaction in flight), with the count of pgbench_history; then a few more seconds of load, so
 * the archive goes on past the target as it does in a real PITR. Each recovered cluster must hold
 * exactly that count and must not have replayed past the target, else the suite fails.
 *
 * The source cluster is stopped before the recoveries are timed; before each, both archives and
 * both backups are read once into the page cache (the same state for both sides), and the order
 * alternates by run (bench/run.ts inTurn).
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { buildCliBundle, freshCliBundle } from '../../bin/cli-bundle.js';
import type { RunbookTypes, TemporalSettings } from '../../src/client.js';
import { archiveCommandLine } from '../../src/postgres/archive-commands.js';
import { startCluster, stopCluster, type RunningCluster } from '../../src/postgres/cluster.js';
import { removeRecoveredCluster } from '../../src/postgres/recovery.js';
import { chownToServerUser, pgBinary } from '../../src/postgres/tools.js';
import { backupDirKey } from '../../src/repository/repository.js';
import { busySecondsBetween, machineCpuTicks } from '../procfs.js';
import { runLifeboat, runShell, type Execution, type ShellStep } from '../measure.js';
import type { Comparison, Variant } from '../report.js';
import { startWorkerProcess, type WorkerProcess } from '../stack.js';
import { baselineEnv, pgbackrestCommand, pgbackrestRepositoryIn, pgbackrestSetup, writePgbackrestConfig } from './baselines.js';
import { ensureBenchCluster, query } from './dataset.js';
import { mib, pgbackrestNewestStartLsn, recoveredMismatch, walBytesBetween, type RecoveredState } from './figures.js';
import type { PostgresSuiteOptions } from './suite.js';

const target = 'pgbench';
const segmentBytes = 16 << 20;
const loadRoundSeconds = 5;

export interface PitrSuiteOptions extends PostgresSuiteOptions {
  /** WAL the load writes after the base backups (what the recoveries replay), MiB. */
  walMiB: number;
}

interface SideFigures {
  side: string;
  run: number;
  wallMs: number;
  machineCpuSeconds: number;
  walBytes: number;
  state: RecoveredState;
  walFiles?: number;
}

export async function measurePitr(options: PitrSuiteOptions): Promise<{ comparisons: Comparison[]; notes: string[]; sections: Array<{ title: string; lines: string[] }> }> {
  const { say } = options;
  if (!freshCliBundle()) await buildCliBundle();
  const dataset = await ensureBenchCluster(options.benchRoot, options.sizeMiB, say);
  const work = join(options.workDir, 'pitr');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await chownToServerUser(work);
  say(`pitr suite: copying the bench cluster (scale ${dataset.scale}) to ${work}/source`);
  const sourceDir = join(work, 'source');
  await execa('cp', ['-a', dataset.dataDir, sourceDir]);
  await rm(join(sourceDir, 'postmaster.pid'), { force: true });

  const repositoryDir = join(work, 'repository');
  // wal-push runs as the server user, backups as the worker (root): the WAL folder is the server user's.
  await mkdir(join(repositoryDir, target, 'wal'), { recursive: true });
  await chownToServerUser(repositoryDir, { recursive: true });
  const recoveryDir = join(work, 'recovered');
  await mkdir(recoveryDir, { recursive: true });
  await chownToServerUser(recoveryDir);
  const configPath = join(work, 'lifeboat.yaml');
  const pgbackrestDir = join(work, 'pgbackrest');

  let source: RunningCluster | undefined;
  let worker: WorkerProcess | undefined;
  try {
    // The config names the socket and port of the running source, so it is written once the source runs,
    // but the archive_command that the source runs with names the config: fix the socket dir and port first.
    const socketDir = join(work, 'run');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const pgbackrestConfig = await writePgbackrestConfig(pgbackrestDir, { dataDir: sourceDir, socketDir, port, user: 'postgres' });
    // Backups check that their WAL arrived (archive-check, the default); the restores fetch asynchronously.
    await writeFile(pgbackrestConfig, (await readFile(pgbackrestConfig, 'utf8')).replace('archive-check=n\n', ''));
    const asyncConfig = join(pgbackrestDir, 'pgbackrest-async.conf');
    await writeFile(
      asyncConfig,
      (await readFile(pgbackrestConfig, 'utf8')).replace('[global]\n', `[global]\narchive-async=y\nspool-path=${join(pgbackrestDir, 'spool')}\narchive-get-queue-max=${8 * segmentBytes}\n`),
    );
    await mkdir(join(pgbackrestDir, 'spool'), { recursive: true });
    await chownToServerUser(pgbackrestDir, { recursive: true });
    const taskQueue = `bench-pitr-${randomBytes(3).toString('hex')}`;
    const settings: TemporalSettings = { address: options.stack.temporal.address, namespace: 'default', taskQueue };
    await writeFile(
      configPath,
      stringify({
        repositories: { fs: { type: 'fs', path: repositoryDir } },
        targets: {
          [target]: {
            type: 'postgres',
            repositories: ['fs'],
            connection: { host: socketDir, port, database: 'postgres', user: 'postgres' },
            method: 'base',
            archive: { mode: 'on' },
            recovery: { dir: recoveryDir, prefetchSegments: 8 },
          },
        },
        // The WAL archive at pgBackRest's level (3); base backups keep their own default (server zstd level 1).
        compression: { level: 3, threads: 1 },
        temporal: { address: settings.address, namespace: settings.namespace, taskQueue },
      }),
    );
    const pgbackrest = `pgbackrest --config=${pgbackrestConfig} --stanza=bench`;
    const archiveCommand = `${archiveCommandLine(target, configPath)} && ${pgbackrest} archive-push %p`;
    source = await startCluster({
      dataDir: sourceDir,
      socketDir,
      port,
      logFile: join(work, 'source.log'),
      timeoutSeconds: 120,
      settings: { archive_mode: 'on', archive_command: archiveCommand, max_wal_size: '4GB' },
      env: { LIFEBOAT_PREBUILT: '1' },
    });
    const cluster = source;
    const env = { ...process.env, ...baselineEnv(cluster, join(work, 'out'), pgbackrestConfig), ASYNC_CONFIG: asyncConfig, W: work } as Record<string, string>;
    const shell = (steps: ShellStep[]): Promise<Execution> => runShell({ steps, env, scratchDir: work, accounting: { serverPids: [] } });
    await shell(pgbackrestSetup);

    worker = await startWorkerProcess({
      configPath,
      taskQueue,
      temporalAddress: settings.address,
      bundlePath: options.stack.bundlePath,
      s3: options.stack.s3,
      logFile: join(work, 'worker.log'),
    });
    const workerPid = worker.pid;
    const lifeboatRun = <K extends 'backup' | 'pitr'>(kind: K, input: RunbookTypes[K]['input']) =>
      runLifeboat({ client: options.client, settings, kind, input, workerPid, accounting: { serverPids: [options.stack.temporal.pid] } });

    say('pitr suite: base backups (Lifeboat, then pgBackRest)');
    await query(cluster, 'CHECKPOINT');
    const base = await lifeboatRun('backup', { target, method: 'base' });
    const lifeboatManifest = JSON.parse(await readFile(join(repositoryDir, backupDirKey(target, base.result.backupId), 'manifest.json'), 'utf8')) as { base: { startLsn: string } };
    await shell([{ name: 'pgbackrest backup (full)', script: `runuser -u postgres -- ${pgbackrest} --type=full backup` }]);
    await shell([{ name: 'pgbackrest info', script: `runuser -u postgres -- ${pgbackrest} --output=json info > "$W/pgbackrest-info.json"` }]);
    const pgbackrestStart = pgbackrestNewestStartLsn(await readFile(join(work, 'pgbackrest-info.json'), 'utf8'), 'bench');
    const lifeboatStart = lifeboatManifest.base.startLsn;

    say(`pitr suite: pgbench load until ${options.walMiB} MiB of WAL after the backups`);
    const loadStarted = performance.now();
    const pgbench = (seconds: number) =>
      execa(pgBinary('pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(seconds), '-h', cluster.socketDir, '-p', String(cluster.port), '-U', cluster.user, 'postgres'], {
        stdin: 'ignore',
        env: { PGOPTIONS: '-c synchronous_commit=off' },
      });
    for (;;) {
      await pgbench(loadRoundSeconds);
      const written = walBytesBetween(lifeboatStart, await query(cluster, 'SELECT pg_current_wal_lsn()::text AS v'));
      say(`  ${mib(written).toFixed(0)} MiB of WAL`);
      if (mib(written) >= options.walMiB) break;
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    // No transaction is in flight: the insert position (not the write position, which lags behind
    // asynchronous commits) is the point both recoveries must reach.
    const targetLsn = await query(cluster, 'SELECT pg_current_wal_insert_lsn()::text AS v');
    const historyRows = Number(await query(cluster, 'SELECT count(*)::text AS v FROM pgbench_history'));
    await pgbench(3);
    const lastSegment = await query(cluster, 'SELECT pg_walfile_name(pg_switch_wal()) AS v');
    say(`pitr suite: target ${targetLsn} (${historyRows} rows of pgbench_history); waiting until both archives hold ${lastSegment}`);
    await waitForArchive(cluster, lastSegment, say);
    await source.stop();
    source = undefined;

    const lifeboatWal = walBytesBetween(lifeboatStart, targetLsn);
    const pgbackrestWal = walBytesBetween(pgbackrestStart, targetLsn);
    // The WAL both replay: from the later backup's start. The earlier one's side also fetches the
    // segments between the two starts, nearly empty (each backup's start and stop switch segments).
    const commonWal = Math.min(lifeboatWal, pgbackrestWal);
    const expected = { historyRows, targetLsn };
    const pgbackrestRecovered = join(work, 'pgbackrest-recovered');
    const pgbackrestSocket = join(work, 'pgbackrest-run');
    const recoveryPort = port + 1;
    const pgbackrestAsync = pgbackrestCommand.replace('--config="$PGBACKREST_CONFIG"', '--config="$ASYNC_CONFIG"');
    Object.assign(env, { PGBR_DIR: pgbackrestRecovered, PGBR_SOCK: pgbackrestSocket, PGBR_PORT: String(recoveryPort), TARGET_LSN: targetLsn });
    const pgbackrestSteps: ShellStep[] = [
      {
        name: 'pgbackrest restore --type=lsn (archive-get async, process-max 2)',
        script: `rm -rf "$PGBR_DIR" "$W/pgbackrest/spool/archive/bench/in"; install -d -m 700 -o postgres -g postgres "$PGBR_DIR"
${pgbackrestAsync} --pg1-path="$PGBR_DIR" --type=lsn --target="$TARGET_LSN" --target-exclusive --target-action=promote \\
  --recovery-option="restore_command=pgbackrest --config=$ASYNC_CONFIG --stanza=bench --pg1-path=$PGBR_DIR archive-get %f \\"%p\\"" restore`,
      },
      {
        name: 'pg_ctl start, replay to the target, promoted',
        script: `rm -rf "$PGBR_SOCK"; install -d -m 700 -o postgres -g postgres "$PGBR_SOCK"
runuser -u postgres -- "$PGBIN/pg_ctl" start -D "$PGBR_DIR" -l "$W/pgbackrest-recovery.log" -w -t 3600 -s \\
  -o "-c port=$PGBR_PORT -c listen_addresses='' -c unix_socket_directories=$PGBR_SOCK -c archive_mode=off -c hot_standby=on"
for i in $(seq 14400); do
  state=$("$PGBIN/psql" -h "$PGBR_SOCK" -p "$PGBR_PORT" -U "$PGUSER" -d postgres -Atc "SELECT pg_is_in_recovery()" 2>/dev/null || true)
  [ "$state" = f ] && exit 0
  runuser -u postgres -- "$PGBIN/pg_ctl" status -D "$PGBR_DIR" > /dev/null || { tail -n 20 "$W/pgbackrest-recovery.log" >&2; exit 1; }
  sleep 0.25
done
echo "no promotion within an hour" >&2; exit 1`,
      },
    ];

    const lifeboatVariant: Variant = { label: `lifeboat pitr --lsn (exclusive): restore-base-backup + recover with prefetch (8 ahead), until promoted`, executions: [] };
    const pgbackrestVariant: Variant = { label: 'pgbackrest restore --type=lsn --target-exclusive, archive-get async process-max 2; pg_ctl start until promoted', executions: [] };
    const figures: SideFigures[] = [];
    const settleBoth = async () => options.settle([...(await filesUnder(repositoryDir)), ...(await filesUnder(pgbackrestRepositoryIn(pgbackrestDir)))]);
    for (let run = 1; run <= options.runs; run++) {
      say(`pitr suite: run ${run}/${options.runs}`);
      const lifeboatSide = async () => {
        await settleBoth();
        const before = machineCpuTicks();
        const measured = await lifeboatRun('pitr', { target, recoveryTarget: { kind: 'lsn', lsn: targetLsn, inclusive: false } });
        const machineCpuSeconds = busySecondsBetween(before, machineCpuTicks());
        const recovered = measured.result.cluster;
        try {
          const state = await recoveredState({ socketDir: recovered.socketDir, port: recovered.port, user: recovered.user });
          state.replayLsn = measured.result.reached.lsn;
          const mismatch = recoveredMismatch('lifeboat pitr', state, expected);
          if (mismatch) throw new Error(mismatch);
          lifeboatVariant.executions.push(measured.execution);
          figures.push({ side: 'lifeboat', run, wallMs: measured.execution.wallMs, machineCpuSeconds, walBytes: lifeboatWal, state, walFiles: measured.result.walFilesRestored });
          say(`  lifeboat pitr: ${(measured.execution.wallMs / 1000).toFixed(2)} s, reached ${state.replayLsn}, ${measured.result.walFilesRestored} WAL files`);
        } finally {
          await removeRecoveredCluster({ dataDir: recovered.dataDir, socketDir: recovered.socketDir });
        }
      };
      const pgbackrestSide = async () => {
        await settleBoth();
        const before = machineCpuTicks();
        try {
          const execution = await shell(pgbackrestSteps);
          const machineCpuSeconds = busySecondsBetween(before, machineCpuTicks());
          const state = await recoveredState({ socketDir: pgbackrestSocket, port: recoveryPort, user: 'postgres' });
          const mismatch = recoveredMismatch('pgbackrest restore', state, expected);
          if (mismatch) throw new Error(mismatch);
          pgbackrestVariant.executions.push(execution);
          figures.push({ side: 'pgbackrest', run, wallMs: execution.wallMs, machineCpuSeconds, walBytes: pgbackrestWal, state });
          say(`  pgbackrest restore + recovery: ${(execution.wallMs / 1000).toFixed(2)} s, reached ${state.replayLsn}`);
        } finally {
          await stopCluster(pgbackrestRecovered, { mode: 'immediate' }).catch(() => undefined);
          await rm(pgbackrestRecovered, { recursive: true, force: true });
          await rm(pgbackrestSocket, { recursive: true, force: true });
        }
      };
      for (const side of run % 2 === 1 ? [lifeboatSide, pgbackrestSide] : [pgbackrestSide, lifeboatSide]) await side();
    }

    const lines = [
      `Load: pgbench -c 4 -j 2 (synchronous_commit off) for ${loadSeconds.toFixed(0)} s on a copy of the bench cluster (scale ${dataset.scale}); target LSN ${targetLsn} (exclusive), ${historyRows} rows of pgbench_history. ` +
        `WAL from each base backup's start to the target: Lifeboat ${mib(lifeboatWal).toFixed(0)} MiB (from ${lifeboatStart}), pgBackRest ${mib(pgbackrestWal).toFixed(0)} MiB (from ${pgbackrestStart}); ` +
        `Lifeboat's backup was taken first, so it also fetches the ${((lifeboatWal - commonWal) / segmentBytes).toFixed(0)} nearly empty segment(s) between the two starts (each backup starts and stops with a segment switch). ` +
        `MB/s = the ${mib(commonWal).toFixed(0)} MiB both replay / wall.`,
      '',
      '| run | side | wall s | machine CPU s | WAL from its backup MiB | MB/s | reached LSN | pgbench_history rows | WAL files fetched |',
      '|---|---|---|---|---|---|---|---|---|',
      ...figures.map((f) =>
        `| ${f.run} | ${f.side} | ${(f.wallMs / 1000).toFixed(2)} | ${f.machineCpuSeconds.toFixed(1)} | ${mib(f.walBytes).toFixed(0)} | ${(commonWal / 1e6 / (f.wallMs / 1000)).toFixed(1)} | ${f.state.replayLsn} | ${f.state.historyRows} | ${f.walFiles ?? '—'} |`,
      ),
    ];
    return {
      comparisons: [
        {
          id: 'pg-pitr',
          title: `PostgreSQL PITR end to end (${mib(commonWal).toFixed(0)} MiB of WAL replayed) vs pgBackRest restore + archive-get async`,
          lifeboat: lifeboatVariant,
          baseline: pgbackrestVariant,
          maxRatio: 1.0,
          databaseBytes: commonWal,
        },
      ],
      notes: [
        'pitr suite: one copy of the bench cluster archives every WAL segment into both archives (archive_command = lifeboat wal-push && pgbackrest archive-push, not timed); both base backups are taken back to back before a pgbench load (4 clients, synchronous_commit off) writes --pitr-wal-mib of WAL; the target is an exclusive LSN with no transaction in flight, and the load runs 3 s more past it. The source is stopped before the recoveries; before each, both repositories are read into the page cache. Lifeboat: the pitr runbook through the client (choose base backup, restore-base-backup with pg_verifybackup, recover with bin/lifeboat-wal-fetch prefetching 8 segments, report), until the recovered server promoted; pgBackRest: restore --type=lsn --target-exclusive --target-action=promote with archive-async=y process-max=2 (queue 8 segments), pg_ctl start -w, then polling pg_is_in_recovery() every 250 ms (as Lifeboat polls). Both recovered clusters must hold exactly the rows of pgbench_history the source had at the target. MB/s = WAL replayed / wall. "machine CPU s" in the PITR section is every busy CPU second of the machine during the execution (the recovering server, its restore_command processes and the prefetchers are children of neither side\'s measured process), so it counts other load too',
      ],
      sections: [{ title: 'PITR end to end (bench/postgres/pitr.ts)', lines }],
    };
  } finally {
    await worker?.stop();
    await source?.stop({ mode: 'immediate' }).catch(() => undefined);
  }
}

/** Waits until the archiver archived `segment` (both archives: archive_command runs both), failing on a stuck archiver. */
async function waitForArchive(cluster: RunningCluster, segment: string, say: (line: string) => void): Promise<void> {
  const deadline = Date.now() + 3_600_000;
  let lastSaid = 0;
  for (;;) {
    const row = JSON.parse(await query(cluster, 'SELECT json_build_object(\'last\', last_archived_wal, \'failed\', failed_count, \'lastFailed\', last_failed_wal)::text AS v FROM pg_stat_archiver')) as {
      last: string | null;
      failed: number;
      lastFailed: string | null;
    };
    if (row.last !== null && row.last >= segment) return;
    if (Date.now() - lastSaid > 15_000) {
      say(`  archived up to ${row.last ?? 'nothing yet'} (${row.failed} failures${row.lastFailed ? `, last ${row.lastFailed}` : ''})`);
      lastSaid = Date.now();
    }
    if (Date.now() > deadline) throw new Error(`the archive did not reach ${segment} within an hour; pg_stat_archiver: ${JSON.stringify(row)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function recoveredState(site: { socketDir: string; port: number; user: string }): Promise<RecoveredState> {
  const client = new pg.Client({ host: site.socketDir, port: site.port, user: site.user, database: 'postgres' });
  await client.connect();
  try {
    const { rows } = await client.query<{ replay: string; rows: string }>('SELECT pg_last_wal_replay_lsn()::text AS replay, (SELECT count(*) FROM pgbench_history)::text AS rows');
    return { replayLsn: rows[0]!.replay, historyRows: Number(rows[0]!.rows) };
  } finally {
    await client.end();
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}
