/**
 * WAL archiving as PostgreSQL drives it: one process per 16 MiB segment, as the server user.
 * `lifeboat wal-push` / `wal-fetch` (fs repository) against `pgbackrest archive-push` /
 * `archive-get` (its repository on the same disk, zst level 3), over the same segments, copied
 * out of the bench cluster's pg_wal after a burst of writes. The per-segment cost caps how fast a
 * server can archive, and restore_command paces every recovery. Informational (no goal in the
 * issues); the prebuilt CLI (dist/cli/) against the sources through tsx is a reference row.
 */
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildCliBundle, freshCliBundle } from '../../bin/cli-bundle.js';
import { projectRoot } from '../../src/dev/tools.js';
import type { RunningCluster } from '../../src/postgres/cluster.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import type { ShellStep } from '../measure.js';
import { pgbackrestCommand } from './baselines.js';

export const walSegments = 8;
const segmentBytes = 16 << 20;

export interface WalBench {
  /** Environment the steps below read (besides PGBACKREST_CONFIG, from the suite's baseline env). */
  env: Record<string, string>;
  bytes: number;
  /** Empties both archives and the fetched copies (run before a push into archives that may hold the segments). */
  reset: ShellStep[];
  lifeboatPush: ShellStep[];
  lifeboatPushFromSources: ShellStep[];
  lifeboatFetch: ShellStep[];
  pgbackrestPush: ShellStep[];
  pgbackrestFetch: ShellStep[];
}

/**
 * Writes about walSegments segments of WAL into the cluster (a table created and dropped again, so
 * the dataset stays as it was) and copies the completed segments into dir/segments, readable by
 * the server user; writes the Lifeboat config of the WAL archive (dir/wal.yaml, repository dir/repository).
 */
export async function prepareWalBench(cluster: RunningCluster, dir: string, pgbackrestRepository: string): Promise<WalBench> {
  // The rows named "prebuilt CLI" must not fall back to the sources unnoticed.
  if (!freshCliBundle()) await buildCliBundle();
  const segments = join(dir, 'segments');
  await rm(dir, { recursive: true, force: true });
  await mkdir(segments, { recursive: true });
  const client = await cluster.connect();
  const names: string[] = [];
  try {
    await client.query('CREATE TABLE bench_wal_burst (filler text)');
    for (let i = 0; i < walSegments; i++) {
      // ~20 MB of WAL each: the segment is full before the switch.
      await client.query("INSERT INTO bench_wal_burst SELECT md5(g::text) || repeat('x', 200) FROM generate_series(1, 80000) g");
      const { rows } = await client.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      const name = rows[0]!.name;
      // At once, before a checkpoint could recycle it.
      await copyFile(join(cluster.dataDir, 'pg_wal', name), join(segments, name));
      names.push(name);
    }
  } finally {
    await client.query('DROP TABLE IF EXISTS bench_wal_burst').catch(() => undefined);
    await client.end();
  }
  const configFile = join(dir, 'wal.yaml');
  await writeFile(
    configFile,
    stringify({
      repositories: { fs: { type: 'fs', path: join(dir, 'repository') } },
      targets: { pgbench: { type: 'postgres', repositories: ['fs'] } },
      compression: { level: 3, threads: 1 },
    }),
  );
  await mkdir(join(dir, 'fetched'));
  await chownToServerUser(dir, { recursive: true });

  const lifeboat = (prebuilt: boolean): string => `runuser -u postgres -- env LIFEBOAT_PREBUILT=${prebuilt ? 1 : 0} "$NODE" "$LIFEBOAT" --config "$WAL_CONFIG"`;
  const push = (tool: string): string => `for f in "$WAL_SEGMENTS"/*; do ${tool} "$f"; done`;
  const fetch = (tool: string): string => `for f in "$WAL_SEGMENTS"/*; do n=$(basename "$f"); ${tool} "$n" "$WAL_FETCHED/$n"; cmp -s "$f" "$WAL_FETCHED/$n"; done`;
  return {
    env: {
      NODE: process.execPath,
      LIFEBOAT: join(projectRoot, 'bin', 'lifeboat.js'),
      WAL_CONFIG: configFile,
      WAL_SEGMENTS: segments,
      WAL_FETCHED: join(dir, 'fetched'),
      WAL_REPOSITORY: join(dir, 'repository'),
      PGBACKREST_ARCHIVE: join(pgbackrestRepository, 'archive', 'bench'),
    },
    bytes: names.length * segmentBytes,
    reset: [
      {
        name: 'empty both WAL archives',
        script: 'rm -rf "$WAL_REPOSITORY/pgbench/wal" "$WAL_FETCHED"/*; find "$PGBACKREST_ARCHIVE" -type f -name "0000*" -delete',
      },
    ],
    lifeboatPush: [{ name: 'lifeboat wal-push (prebuilt CLI)', script: push(`${lifeboat(true)} wal-push --target pgbench`) }],
    lifeboatPushFromSources: [{ name: 'lifeboat wal-push (sources through tsx)', script: push(`${lifeboat(false)} wal-push --target pgbench`) }],
    lifeboatFetch: [{ name: 'lifeboat wal-fetch (prebuilt CLI)', script: fetch(`${lifeboat(true)} wal-fetch --target pgbench`) }],
    pgbackrestPush: [{ name: 'pgbackrest archive-push', script: push(`${pgbackrestCommand} archive-push`) }],
    pgbackrestFetch: [{ name: 'pgbackrest archive-get', script: fetch(`${pgbackrestCommand} archive-get`) }],
  };
}

