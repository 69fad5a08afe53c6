/**
 * Sustained WAL (issue 18 §5): the heaviest pgbench write load this machine sustains, for a fixed
 * time, on a fresh cluster without archiving, with archive.mode "on" (`lifeboat wal-push` per
 * segment) and with archive.mode "async" (`lifeboat archiver` + bin/lifeboat-wal-push). Reported:
 * the WAL rate pgbench produced, pg_wal's peak size (sampled every 250 ms), and how many segments
 * still waited for the archive when the load stopped. With async archiving pg_wal should stay
 * within a few segments of its size without archiving.
 */
import { execa } from 'execa';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { projectRoot } from '../../src/dev/tools.js';
import { archiveCommandLine } from '../../src/postgres/archive-commands.js';
import { initCluster, startCluster } from '../../src/postgres/cluster.js';
import { chownToServerUser, pgBinary } from '../../src/postgres/tools.js';
import { benchClusterSettings, query } from './dataset.js';
import { heaviestLoad, jobsFor, type Load, type LoadProbe } from './figures.js';

export type SustainedMode = 'off' | 'on' | 'async';

export interface SustainedResult {
  mode: SustainedMode;
  seconds: number;
  load: Load;
  walBytes: number;
  transactions: number;
  peakPgWalBytes: number;
  /** Segments completed but not archived when the load stopped (pg_stat_archiver). */
  waitingAtEnd: number;
}

const target = 'sustained';
// pgbench's TPC-B-like script updates one of `scale` branch rows per transaction: more clients than
// branches wait on each other's row locks instead of writing WAL.
const scale = 16;
const MiB = 1 << 20;
/** Client counts tried (archiving off, probeSeconds each) before the runs; the one writing the most WAL is used. */
const probeClients = [2, 4, 8, 16];
const probeSeconds = 8;

export async function measureSustained(options: { workDir: string; seconds: number; say: (line: string) => void }): Promise<SustainedResult[]> {
  const root = join(options.workDir, 'sustained');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await chownToServerUser(root);
  const configPath = join(root, 'lifeboat.yaml');
  const spoolDir = join(root, 'spool');
  await mkdir(spoolDir);
  await writeFile(
    configPath,
    stringify({
      repositories: { fs: { type: 'fs', path: join(root, 'repository') } },
      targets: {
        [`${target}-on`]: { type: 'postgres', repositories: ['fs'], archive: { mode: 'on' } },
        [`${target}-async`]: { type: 'postgres', repositories: ['fs'], archive: { mode: 'async', spoolDir, parallel: 2 } },
      },
      compression: { level: 3, threads: 1 },
    }),
  );
  await chownToServerUser(root, { recursive: true });
  const results: SustainedResult[] = [];
  let load: Load | undefined;
  for (const mode of ['off', 'on', 'async'] as const) {
    options.say(`wal suite: sustained pgbench load for ${options.seconds} s, archiving ${mode}`);
    const result = await sustainedRun(root, configPath, mode, options.seconds, load, options.say);
    load = result.load;
    results.push(result);
  }
  await rm(root, { recursive: true, force: true });
  return results;
}

/**
 * Runs the load for `seconds` on a fresh cluster with archiving `mode`. Without a load given (the
 * first run, archiving off) it first probes probeClients and takes the heaviest (heaviestLoad).
 */
async function sustainedRun(root: string, configPath: string, mode: SustainedMode, seconds: number, given: Load | undefined, say: (line: string) => void): Promise<SustainedResult> {
  const dir = join(root, mode);
  const dataDir = join(dir, 'data');
  await mkdir(dir);
  await chownToServerUser(dir);
  const archiving: Record<string, string> =
    mode === 'off'
      ? { archive_mode: 'off' }
      : { archive_mode: 'on', archive_command: archiveCommandLine(`${target}-${mode}`, configPath, mode === 'async' ? { mode, spoolDir: join(root, 'spool') } : undefined) };
  await initCluster({ dataDir, durable: true, settings: { ...benchClusterSettings, max_wal_size: '1GB', min_wal_size: '80MB', synchronous_commit: 'off', ...archiving } });
  const cluster = await startCluster({ dataDir, socketDir: join(dir, 'run'), logFile: join(dir, 'postgresql.log'), timeoutSeconds: 120 });
  let archiver: ReturnType<typeof execa> | undefined;
  try {
    const pgbench = (args: string[]) =>
      execa(pgBinary('pgbench'), [...args, '-h', cluster.socketDir, '-p', String(cluster.port), '-U', cluster.user, 'postgres'], { stdin: 'ignore' });
    await pgbench(['-i', '-q', '-s', String(scale)]);
    if (mode === 'async') {
      archiver = execa(
        'runuser',
        ['-u', 'postgres', '--', process.execPath, join(projectRoot, 'bin', 'lifeboat.js'), '--config', configPath, 'archiver', '--target', `${target}-async`, '--data-dir', dataDir],
        { reject: false, stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, LIFEBOAT_PREBUILT: '1' } },
      );
    }
    let load = given;
    if (!load) {
      const probes: LoadProbe[] = [];
      for (const clients of probeClients) {
        const jobs = jobsFor(clients, cpus().length);
        // Each probe from a checkpoint, as the measured run: the full-page images after one are most of the WAL.
        await query(cluster, 'CHECKPOINT');
        const before = await query(cluster, 'SELECT pg_current_wal_insert_lsn()::text AS v');
        await pgbench(['-c', String(clients), '-j', String(jobs), '-T', String(probeSeconds), '-n']);
        const after = await query(cluster, 'SELECT pg_current_wal_insert_lsn()::text AS v');
        const walBytesPerSecond = Number(await query(cluster, `SELECT pg_wal_lsn_diff('${after}', '${before}')::bigint::text AS v`)) / probeSeconds;
        probes.push({ clients, jobs, walBytesPerSecond });
        say(`  probe: pgbench -c ${clients} -j ${jobs}: ${(walBytesPerSecond / MiB).toFixed(1)} MiB/s of WAL`);
      }
      const heaviest = heaviestLoad(probes);
      load = { clients: heaviest.clients, jobs: heaviest.jobs };
      say(`  heaviest load: pgbench -c ${load.clients} -j ${load.jobs}`);
    }
    await query(cluster, 'CHECKPOINT');
    const start = await query(cluster, 'SELECT pg_current_wal_insert_lsn()::text AS v');
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await pgWalBytes(dataDir));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    // The heaviest load probed, asynchronous commit: as much WAL as the machine writes.
    const run = await pgbench(['-c', String(load.clients), '-j', String(load.jobs), '-T', String(seconds), '-n']);
    sampling = false;
    await sampler;
    const transactions = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1] ?? 0);
    const end = await query(cluster, 'SELECT pg_current_wal_insert_lsn()::text AS v');
    const walBytes = Number(await query(cluster, `SELECT pg_wal_lsn_diff('${end}', '${start}')::bigint::text AS v`));
    const waitingAtEnd = mode === 'off' ? 0 : Number(await query(cluster, "SELECT count(*)::text AS v FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'"));
    return { mode, seconds, load, walBytes, transactions, peakPgWalBytes: peak, waitingAtEnd };
  } finally {
    archiver?.kill('SIGTERM');
    await archiver;
    await cluster.stop({ mode: 'immediate' });
  }
}

async function pgWalBytes(dataDir: string): Promise<number> {
  const dir = join(dataDir, 'pg_wal');
  let total = 0;
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (!/^[0-9A-F]{24}$/.test(entry)) continue;
    total += await stat(join(dir, entry)).then((s) => s.size, () => 0);
  }
  return total;
}

export function sustainedLines(results: SustainedResult[]): string[] {
  const off = results.find((r) => r.mode === 'off');
  return [
    '| archiving | load | WAL written | WAL rate | transactions | pg_wal peak | segments waiting at the end | pg_wal peak vs no archiving |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const more = off ? `${((r.peakPgWalBytes - off.peakPgWalBytes) / (16 * MiB)).toFixed(0)} segments more` : '';
      return `| ${r.mode} | pgbench -c ${r.load.clients} -j ${r.load.jobs} | ${(r.walBytes / MiB).toFixed(0)} MiB in ${r.seconds} s | ${(r.walBytes / MiB / r.seconds).toFixed(1)} MiB/s | ${r.transactions} | ${(r.peakPgWalBytes / MiB).toFixed(0)} MiB | ${r.waitingAtEnd} | ${r.mode === 'off' ? '—' : more} |`;
    }),
  ];
}
