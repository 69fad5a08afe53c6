/**
 * The `wal` suite of `npm run bench` (issue 18 §5): the WAL archive at pgBackRest's speed.
 *
 *   archive throughput  N segments made ready at once, archive_command called for each in order
 *                       as PostgreSQL does, until all are archived:
 *                       archive.mode async (`lifeboat archiver`, parallel 2, and the quick
 *                       bin/lifeboat-wal-push)  vs  pgbackrest archive-push with archive-async=y,
 *                       process-max=2                                              lifeboat <= 1.0x
 *   per call            the same N segments, one `lifeboat wal-push` per segment (mode "on")
 *                       vs  pgbackrest archive-push (synchronous)                  informational
 *   restore throughput  restore_command called for each of the N segments in order, as a
 *                       recovery does: bin/lifeboat-wal-fetch with prefetch (8 ahead)
 *                       vs  pgbackrest archive-get with archive-async=y, process-max=2
 *                                                                                  lifeboat <= 1.0x
 *
 * Both archives are on the same disk, zstd at level 3 (Lifeboat one thread per segment). The
 * segments are real ones, written by the bench cluster and copied out of its pg_wal; each side
 * archives them from a pg_wal of its own (hard links), with .ready files in archive_status as
 * PostgreSQL leaves them. The archiver is resident (started before the clock, as systemd keeps it
 * running); pgBackRest starts its async process from the first archive-push, inside the clock.
 * Not measured here: a whole PITR replaying the archive (the restore rows are restore_command's
 * share of one, without replay).
 */
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildCliBundle, freshCliBundle } from '../../bin/cli-bundle.js';
import { projectRoot } from '../../src/dev/tools.js';
import { walFetchCommand } from '../../src/postgres/archive-commands.js';
import type { RunningCluster } from '../../src/postgres/cluster.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { nextSegment } from '../../src/postgres/wal-prefetch.js';
import { runShell, type Execution, type ShellStep } from '../measure.js';
import type { Comparison, Variant } from '../report.js';
import { baselineEnv, pgbackrestCommand, pgbackrestRepositoryIn, pgbackrestSetup, writePgbackrestConfig } from './baselines.js';
import { ensureBenchCluster, startBenchCluster } from './dataset.js';
import { measureSustained, sustainedLines } from './wal-sustained.js';
import type { PostgresBenchOptions } from './suite.js';

const target = 'pgbench';
const segmentBytes = 16 << 20;

export interface WalSuiteOptions extends PostgresBenchOptions {
  segments: number;
  /** The sustained pgbench load per archiving mode (0: not measured). */
  sustainedSeconds: number;
}

export async function measureWalSpeed(options: WalSuiteOptions): Promise<{ comparisons: Comparison[]; notes: string[]; sections: Array<{ title: string; lines: string[] }> }> {
  const { say } = options;
  if (!freshCliBundle()) await buildCliBundle();
  const dataset = await ensureBenchCluster(options.benchRoot, options.sizeMiB, say);
  const work = join(options.workDir, 'wal');
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'out'), { recursive: true });
  const cluster = await startBenchCluster(dataset.dir, dataset.dataDir);
  try {
    say(`wal suite: writing ${options.segments} WAL segments in the bench cluster`);
    const names = await writeSegments(cluster, join(work, 'segments'), options.segments);
    const pgbackrestDir = join(work, 'pgbackrest');
    const pgbackrestConfig = await writePgbackrestConfig(pgbackrestDir, cluster);
    const asyncConfig = join(pgbackrestDir, 'pgbackrest-async.conf');
    await writeFile(
      asyncConfig,
      (await readFile(pgbackrestConfig, 'utf8')).replace('[global]\n', `[global]\narchive-async=y\nspool-path=${join(pgbackrestDir, 'spool')}\narchive-get-queue-max=${8 * segmentBytes}\n`),
    );
    await mkdir(join(pgbackrestDir, 'spool'), { recursive: true });
    const lifeboatConfig = join(work, 'lifeboat.yaml');
    await writeFile(
      lifeboatConfig,
      stringify({
        repositories: { fs: { type: 'fs', path: join(work, 'repository') } },
        targets: {
          [target]: {
            type: 'postgres',
            repositories: ['fs'],
            archive: { mode: 'async', spoolDir: join(work, 'archiver-spool'), parallel: 2, waitSeconds: 600 },
            recovery: { prefetchSegments: 8 },
          },
        },
        compression: { level: 3, threads: 1 },
      }),
    );
    const prefetchSpool = join(work, 'recovered.wal-prefetch');
    // As the recovery writes it; %f is put in per call below, %p is relative to the data directory, as PostgreSQL gives it.
    const fetchTemplate = walFetchCommand({ configPath: lifeboatConfig, target, prefetchSpool }).replace(/%p/g, 'pg_wal/RECOVERYXLOG');
    await chownToServerUser(work, { recursive: true });
    await chownToServerUser(pgbackrestDir, { recursive: true });

    const env = {
      ...process.env,
      ...baselineEnv(cluster, join(work, 'out'), pgbackrestConfig),
      W: work,
      NODE: process.execPath,
      LIFEBOAT: join(projectRoot, 'bin', 'lifeboat.js'),
      QUICK_PUSH: join(projectRoot, 'bin', 'lifeboat-wal-push'),
      LB_CONFIG: lifeboatConfig,
      ASYNC_CONFIG: asyncConfig,
      // Not PGBACKREST_*: pgBackRest reads those as its options.
      PGBR_ARCHIVE: join(pgbackrestRepositoryIn(pgbackrestDir), 'archive', 'bench'),
      ARCHIVER_SPOOL: join(work, 'archiver-spool', target),
      PREFETCH_SPOOL: prefetchSpool,
      CLUSTER_DATA: cluster.dataDir,
      LIFEBOAT_PREBUILT: '1',
      FETCH_TEMPLATE: fetchTemplate,
    } as Record<string, string>;
    const shell = (steps: ShellStep[]): Promise<Execution> => runShell({ steps, env, scratchDir: work, accounting: { serverPids: [] } });
    await shell(pgbackrestSetup);

    const asPostgres = 'runuser -u postgres --';
    const lifeboatPlain = '"$NODE" "$LIFEBOAT" --config "$LB_CONFIG"';
    const lifeboat = `${asPostgres} ${lifeboatPlain}`;
    const pgbackrestAsync = pgbackrestCommand.replace('--config="$PGBACKREST_CONFIG"', '--config="$ASYNC_CONFIG"');
    /**
     * A data directory of its own for each side: pg_wal with hard links to the segments, nothing
     * ready yet, and the cluster's pg_control (pgBackRest reads pg1-path/global/pg_control and
     * wants pg_wal under pg1-path).
     */
    const walDir = (side: string): ShellStep => ({
      name: `pg_wal for ${side}`,
      script: `rm -rf "$W/${side}"; ${asPostgres} mkdir -p -m 700 "$W/${side}/pg_wal/archive_status" "$W/${side}/global"
cp "$CLUSTER_DATA/global/pg_control" "$W/${side}/global/"; chown postgres:postgres "$W/${side}/global/pg_control"
for f in "$W/segments"/*; do ln "$f" "$W/${side}/pg_wal/"; done`,
    });
    /** PostgreSQL's archiver: every segment ready at once, then archive_command for each in order, .ready renamed .done after each success. */
    const archiveLoop = (side: string, command: string): string =>
      `cd "$W/${side}"; for f in pg_wal/0*; do ${asPostgres} touch "pg_wal/archive_status/\${f#pg_wal/}.ready"; done
for f in pg_wal/0*; do n=\${f#pg_wal/}; ${command}; mv "pg_wal/archive_status/$n.ready" "pg_wal/archive_status/$n.done"; done`;
    const reset: ShellStep = {
      name: 'empty both WAL archives and spools',
      script: `rm -rf "$W/repository/${target}/wal" "$ARCHIVER_SPOOL"/archived/* "$W/pgbackrest/spool"/archive; find "$PGBR_ARCHIVE" -type f -name "0000*" -delete`,
    };
    const startArchiver: ShellStep = {
      name: 'start lifeboat archiver (resident, not timed)',
      script: `setsid ${lifeboat} archiver --target ${target} --data-dir "$W/lifeboat-async" > "$W/archiver.log" 2>&1 < /dev/null & echo $! > "$W/archiver.pid"
for i in $(seq 600); do [ -f "$ARCHIVER_SPOOL/archiver.heartbeat" ] && break; sleep 0.1; done; [ -f "$ARCHIVER_SPOOL/archiver.heartbeat" ]`,
    };
    const stopArchiver: ShellStep = {
      name: 'stop lifeboat archiver',
      // Its own process group (setsid): runuser and the archiver, nothing else.
      script: `kill -TERM -- "-$(cat "$W/archiver.pid")" 2>/dev/null || true; for i in $(seq 100); do [ -f "$ARCHIVER_SPOOL/archiver.heartbeat" ] || break; sleep 0.1; done`,
    };
    const count = `test "$(find "$W/repository/${target}/wal" -name '0*.json' | wc -l)" -eq ${names.length}`;
    const lifeboatAsync: ShellStep[] = [
      {
        name: `archive_command = bin/lifeboat-wal-push (archiver running), ${names.length} segments ready at once`,
        script: `${archiveLoop('lifeboat-async', `${asPostgres} "$QUICK_PUSH" "$ARCHIVER_SPOOL" "$f" ${lifeboatPlain} wal-push "$f" --target ${target}`)}\n${count}`,
      },
    ];
    const pgbackrestAsyncPush: ShellStep[] = [
      { name: `pgbackrest archive-push, archive-async=y process-max=2, ${names.length} segments ready at once`, script: archiveLoop('pgbackrest-async', `${pgbackrestAsync} --pg1-path="$PWD" archive-push "$PWD/$f"`) },
    ];
    const lifeboatSync: ShellStep[] = [{ name: 'lifeboat wal-push, one process per segment', script: `${archiveLoop('lifeboat-sync', `${lifeboat} wal-push "$PWD/$f" --target ${target}`)}\n${count}` }];
    const pgbackrestSync: ShellStep[] = [{ name: 'pgbackrest archive-push, one process per segment', script: archiveLoop('pgbackrest-sync', `${pgbackrestCommand} --pg1-path="$PWD" archive-push "$PWD/$f"`) }];
    /** A recovery's restore_command for every segment in order, each compared with the archived one. */
    const fetchLoop = (command: string): string =>
      `rm -rf "$W/recovered"; ${asPostgres} mkdir -p "$W/recovered/pg_wal"; cd "$W/recovered"
for f in "$W/segments"/0*; do n=$(basename "$f"); ${command}; cmp -s "$f" pg_wal/RECOVERYXLOG; rm pg_wal/RECOVERYXLOG; done`;
    const lifeboatFetch: ShellStep[] = [
      {
        name: `restore_command = bin/lifeboat-wal-fetch with prefetch (8 ahead), ${names.length} segments in order`,
        script: `rm -rf "$PREFETCH_SPOOL"; ${asPostgres} mkdir -m 700 "$PREFETCH_SPOOL"; echo ${target} | ${asPostgres} tee "$PREFETCH_SPOOL/target" > /dev/null
${fetchLoop(`${asPostgres} sh -c "\${FETCH_TEMPLATE//%f/$n}"`)}
kill -KILL "$(cat "$PREFETCH_SPOOL/prefetcher.pid" 2>/dev/null)" 2>/dev/null || true; cp "$PREFETCH_SPOOL/calls.log" "$W/out/fetch-calls.log" 2>/dev/null || true; rm -rf "$PREFETCH_SPOOL"`,
      },
    ];
    const pgbackrestFetch: ShellStep[] = [
      {
        name: `pgbackrest archive-get, archive-async=y process-max=2, ${names.length} segments in order`,
        script: `rm -rf "$W/pgbackrest/spool/archive/bench/in"\n${fetchLoop(`${pgbackrestAsync} archive-get "$n" "$PWD/pg_wal/RECOVERYXLOG"`)}`,
      },
    ];

    const variant = (label: string): Variant => ({ label, executions: [] });
    const rows = {
      asyncPush: variant(`archive.mode async: lifeboat archiver (parallel 2) + bin/lifeboat-wal-push, ${names.length} segments`),
      pgbackrestAsyncPush: variant(`pgbackrest archive-push --archive-async --process-max=2, ${names.length} segments`),
      syncPush: variant(`lifeboat wal-push, one process per segment, ${names.length} segments`),
      pgbackrestSyncPush: variant(`pgbackrest archive-push, one process per segment, ${names.length} segments`),
      fetch: variant(`bin/lifeboat-wal-fetch with prefetch (8 ahead, 2 at a time), ${names.length} segments`),
      pgbackrestFetch: variant(`pgbackrest archive-get --archive-async --process-max=2, ${names.length} segments`),
    };
    const sides = ['lifeboat-async', 'pgbackrest-async', 'lifeboat-sync', 'pgbackrest-sync'];
    /** Per run: how many restore_command calls the prefetcher served (the quick path's calls.log). */
    const fetchCalls: string[] = [];
    for (let run = 1; run <= options.runs; run++) {
      say(`wal suite: run ${run}/${options.runs}`);
      await shell([reset, ...sides.map(walDir)]);
      const settleSegments = () => options.settle(names.map((name) => join(work, 'segments', name)));
      const lifeboatSide = async () => {
        await shell([startArchiver]);
        await settleSegments();
        try {
          rows.asyncPush.executions.push(await shell(lifeboatAsync));
        } finally {
          await shell([stopArchiver]);
        }
      };
      const pgbackrestSide = async () => {
        await settleSegments();
        rows.pgbackrestAsyncPush.executions.push(await shell(pgbackrestAsyncPush));
      };
      // Alternating who goes first (bench/run.ts inTurn: on this VM the first to write after memory was freed pays for it).
      for (const side of run % 2 === 1 ? [lifeboatSide, pgbackrestSide] : [pgbackrestSide, lifeboatSide]) await side();
      const fetchLifeboat = async () => {
        await options.settle(await filesUnder(join(work, 'repository')));
        await rm(join(work, 'out', 'fetch-calls.log'), { force: true });
        rows.fetch.executions.push(await shell(lifeboatFetch));
        const served = await servedByPrefetcher(join(work, 'out', 'fetch-calls.log'), names.length);
        say(`wal suite: run ${run}: ${served}`);
        fetchCalls.push(`run ${run}: ${served}`);
      };
      const fetchPgbackrest = async () => {
        await options.settle(await filesUnder(pgbackrestRepositoryIn(pgbackrestDir)));
        rows.pgbackrestFetch.executions.push(await shell(pgbackrestFetch));
      };
      for (const side of run % 2 === 1 ? [fetchLifeboat, fetchPgbackrest] : [fetchPgbackrest, fetchLifeboat]) await side();
      // Per call (mode "on"): into emptied archives.
      await shell([reset]);
      const syncLifeboat = async () => {
        await settleSegments();
        rows.syncPush.executions.push(await shell(lifeboatSync));
      };
      const syncPgbackrest = async () => {
        await settleSegments();
        rows.pgbackrestSyncPush.executions.push(await shell(pgbackrestSync));
      };
      for (const side of run % 2 === 1 ? [syncLifeboat, syncPgbackrest] : [syncPgbackrest, syncLifeboat]) await side();
    }
    const bytes = names.length * segmentBytes;
    const sustained = options.sustainedSeconds > 0 ? await measureSustained({ workDir: work, seconds: options.sustainedSeconds, say }) : [];
    return {
      sections: sustained.length
        ? [{ title: `Sustained WAL: the heaviest pgbench load probed (${sustained[0]!.load.clients} clients, ${sustained[0]!.load.jobs} threads) for ${options.sustainedSeconds} s (synchronous_commit off), archiving off / on / async (bench/postgres/wal-sustained.ts)`, lines: sustainedLines(sustained) }]
        : [],
      comparisons: [
        { id: 'pg-wal-async-push', title: 'WAL archive throughput: archive.mode async vs pgBackRest archive-async, process-max 2', lifeboat: rows.asyncPush, baseline: rows.pgbackrestAsyncPush, maxRatio: 1.0, databaseBytes: bytes },
        { id: 'pg-wal-prefetch-fetch', title: 'WAL restore_command throughput: prefetch vs pgBackRest archive-get async, process-max 2', lifeboat: rows.fetch, baseline: rows.pgbackrestFetch, maxRatio: 1.0, databaseBytes: bytes },
        { id: 'pg-wal-sync-push', title: 'WAL archiving per call: lifeboat wal-push vs pgbackrest archive-push (synchronous, informational)', lifeboat: rows.syncPush, baseline: rows.pgbackrestSyncPush, databaseBytes: bytes },
      ],
      notes: [
        `wal suite: ${names.length} real 16 MiB segments of the bench cluster; both archives on the same disk at zstd level 3 (Lifeboat one thread per segment, parallel 2; pgBackRest process-max 2). archive_command is called for each segment in order after all were marked ready at once, as PostgreSQL's archiver does after a burst; the Lifeboat archiver is resident (started before the clock), pgBackRest's async process starts inside it. restore_command is called for each segment in order without replay (a recovery's fetch share); Lifeboat prefetches 8 ahead, pgBackRest's archive-get-queue-max is 8 segments`,
        `wal suite: restore_command calls served by the prefetcher (bin/lifeboat-wal-fetch's calls.log; "spool": it was there, "waited": it landed while the call waited, "fallback": a whole lifeboat wal-fetch): ${fetchCalls.join('; ')}`,
      ],
    };
  } finally {
    await cluster.stop();
  }
}

/** "N of M calls served by the prefetcher (S from the spool, W after waiting, F fallbacks)", from the quick path's calls.log. */
async function servedByPrefetcher(log: string, calls: number): Promise<string> {
  const lines = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const count = (how: string) => lines.filter((line) => line.endsWith(` ${how}`)).length;
  const spool = count('spool');
  const waited = count('waited');
  return `${spool + waited} of ${calls} calls served by the prefetcher (${spool} from the spool, ${waited} after waiting, ${count('fallback')} fallbacks)`;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/**
 * Writes count consecutive WAL segments (a table filled and truncated again) and copies each
 * completed one out of pg_wal at once. Consecutive, as a recovery reads them: one round of inserts
 * writes more than a segment, so the segment pg_switch_wal closes is not the one after the last
 * copied, and copying only that one left gaps, where the prefetcher (which fetches the names that
 * follow) found "not in the archive" and stopped: most calls then fell back to a whole wal-fetch.
 */
async function writeSegments(cluster: RunningCluster, dir: string, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const client = await cluster.connect();
  const names: string[] = [];
  try {
    await client.query('CREATE TABLE bench_wal_speed (filler text)');
    for (let i = 0; names.length < count; i++) {
      await client.query("INSERT INTO bench_wal_speed SELECT md5(g::text) || repeat('x', 200) FROM generate_series(1, 80000) g");
      const { rows } = await client.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      const closed = rows[0]!.name;
      // Every segment from the one after the last copied up to the one just closed is complete.
      for (let name = names.length === 0 ? closed : nextSegment(names.at(-1)!, segmentBytes); names.length < count; name = nextSegment(name, segmentBytes)) {
        await copyFile(join(cluster.dataDir, 'pg_wal', name), join(dir, name));
        names.push(name);
        if (name === closed) break;
      }
      if (i % 8 === 7) await client.query('TRUNCATE bench_wal_speed');
    }
  } finally {
    await client.query('DROP TABLE IF EXISTS bench_wal_speed').catch(() => undefined);
    await client.end();
  }
  return names;
}
