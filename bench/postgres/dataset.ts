/**
 * The PostgreSQL benchmark's cluster: pgbench tables at a scale of about the requested size
 * (scale 1 is ~15 MiB of data and indexes), generated once under .lifeboat/bench/ and reused by
 * later runs. It only counts as present once generation finished (a stamp file written last).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initCluster, startCluster, type RunningCluster } from '../../src/postgres/cluster.js';
import { pgBinary, chownToServerUser } from '../../src/postgres/tools.js';
import { execa } from 'execa';

/** Bump when the generated content or cluster settings change. */
const GENERATOR_VERSION = 1;
const MIB_PER_SCALE = 15;

export interface BenchCluster {
  dir: string;
  dataDir: string;
  scale: number;
  /** pg_database_size of the pgbench database. */
  databaseBytes: number;
  /** Everything in the data directory (what a base backup copies). */
  clusterBytes: number;
  generated: boolean;
  generateSeconds: number;
}

interface Stamp {
  version: number;
  scale: number;
  databaseBytes: number;
  clusterBytes: number;
}

/**
 * Settings of every run: what a production cluster that is backed up by base backups has
 * (wal_level replica), without archiving (the benchmark times backups and restores, not WAL).
 */
export const benchClusterSettings = {
  wal_level: 'replica',
  max_wal_senders: '4',
  max_wal_size: '4GB',
  shared_buffers: '256MB',
  fsync: 'on',
};

export async function ensureBenchCluster(root: string, sizeMiB: number, log: (line: string) => void): Promise<BenchCluster> {
  const scale = Math.max(1, Math.round(sizeMiB / MIB_PER_SCALE));
  const dir = join(root, `pgbench-v${GENERATOR_VERSION}-s${scale}`);
  const dataDir = join(dir, 'data');
  const stampPath = join(dir, 'stamp.json');
  if (existsSync(stampPath)) {
    const stamp = JSON.parse(await readFile(stampPath, 'utf8')) as Stamp;
    return { dir, dataDir, scale, databaseBytes: stamp.databaseBytes, clusterBytes: stamp.clusterBytes, generated: false, generateSeconds: 0 };
  }
  log(`generating a pgbench cluster at scale ${scale} (~${scale * MIB_PER_SCALE} MiB) in ${dir}`);
  const started = performance.now();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await chownToServerUser(dir);
  await initCluster({ dataDir, settings: benchClusterSettings });
  const cluster = await startBenchCluster(dir, dataDir);
  try {
    await execa(pgBinary('pgbench'), ['-i', '-q', '-s', String(scale), '-h', cluster.socketDir, '-p', String(cluster.port), '-U', cluster.user, 'postgres'], {
      stdin: 'ignore',
    });
    const client = await cluster.connect();
    let databaseBytes: number;
    let clusterBytes: number;
    try {
      await client.query('CHECKPOINT');
      databaseBytes = Number((await client.query<{ size: string }>("SELECT pg_database_size('postgres') AS size")).rows[0]!.size);
      clusterBytes = Number(
        (await client.query<{ size: string }>('SELECT sum(pg_database_size(oid))::bigint AS size FROM pg_database')).rows[0]!.size,
      );
    } finally {
      await client.end();
    }
    const stamp: Stamp = { version: GENERATOR_VERSION, scale, databaseBytes, clusterBytes };
    await cluster.stop();
    await writeFile(stampPath, JSON.stringify(stamp, null, 2));
    const generateSeconds = (performance.now() - started) / 1000;
    log(`generated in ${generateSeconds.toFixed(0)} s: database ${(databaseBytes / 2 ** 20).toFixed(0)} MiB`);
    return { dir, dataDir, scale, databaseBytes, clusterBytes, generated: true, generateSeconds };
  } catch (error) {
    await cluster.stop({ mode: 'immediate' }).catch(() => undefined);
    throw error;
  }
}

/** Starts the benchmark cluster with its socket and log inside its directory. */
export function startBenchCluster(dir: string, dataDir: string): Promise<RunningCluster> {
  return startCluster({ dataDir, socketDir: join(dir, 'run'), logFile: join(dir, 'postgresql.log'), timeoutSeconds: 120 });
}

/** The first column of the first row of sql (aliased `v`), as text; '' when there is none. */
export async function query(cluster: RunningCluster, sql: string): Promise<string> {
  const client = await cluster.connect();
  try {
    const { rows } = await client.query<{ v: string }>(sql);
    return rows[0]?.v ?? '';
  } finally {
    await client.end();
  }
}
