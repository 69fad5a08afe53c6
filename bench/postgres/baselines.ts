/**
 * The procedures Lifeboat's PostgreSQL runbooks are measured against, as shell steps for runShell:
 * pgBackRest (Debian package, repository on the same disk, zstd, process-max 2), plain
 * pg_basebackup (-Ft -z, and -Ft piped through `zstd -T2`), and pg_dump / pg_restore with the same
 * compression Lifeboat uses (zstd -3, two jobs).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunningCluster } from '../../src/postgres/cluster.js';
import { chownToServerUser, pgBinDir } from '../../src/postgres/tools.js';
import type { ShellStep } from '../measure.js';

/** Shell variables every baseline step may use. */
export interface BaselineEnv {
  PGBIN: string;
  PGHOST: string;
  PGPORT: string;
  PGUSER: string;
  PGDATABASE: string;
  /** Scratch directory of the baselines (emptied between executions by the caller). */
  OUT: string;
  PGBACKREST_CONFIG: string;
}

export function baselineEnv(cluster: RunningCluster, out: string, pgbackrestConfig: string): BaselineEnv {
  return {
    PGBIN: pgBinDir(),
    PGHOST: cluster.socketDir,
    PGPORT: String(cluster.port),
    PGUSER: cluster.user,
    PGDATABASE: 'postgres',
    OUT: out,
    PGBACKREST_CONFIG: pgbackrestConfig,
  };
}

/** pgBackRest's repository (repo1-path) in the directory given to writePgbackrestConfig. */
export function pgbackrestRepositoryIn(dir: string): string {
  return join(dir, 'repo');
}

/**
 * A pgBackRest configuration for one stanza "bench" on the benchmark cluster, repository and logs
 * under dir (owned by the server user: pgBackRest runs as that user, as it must to read the data
 * directory). archive-check=n: the benchmark times the copy of the cluster, and a backup without
 * WAL archiving configured would otherwise wait for a segment that never comes.
 */
export async function writePgbackrestConfig(dir: string, cluster: Pick<RunningCluster, 'dataDir' | 'socketDir' | 'port' | 'user'>): Promise<string> {
  await mkdir(pgbackrestRepositoryIn(dir), { recursive: true });
  await mkdir(join(dir, 'log'), { recursive: true });
  await mkdir(join(dir, 'lock'), { recursive: true });
  const path = join(dir, 'pgbackrest.conf');
  await writeFile(
    path,
    [
      '[global]',
      `repo1-path=${pgbackrestRepositoryIn(dir)}`,
      'repo1-retention-full=100',
      'compress-type=zst',
      'compress-level=3',
      'process-max=2',
      'start-fast=y',
      'archive-check=n',
      'log-level-console=warn',
      'log-level-file=off',
      `log-path=${join(dir, 'log')}`,
      `lock-path=${join(dir, 'lock')}`,
      '',
      '[bench]',
      `pg1-path=${cluster.dataDir}`,
      `pg1-socket-path=${cluster.socketDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-user=${cluster.user}`,
      '',
    ].join('\n'),
  );
  await chownToServerUser(dir, { recursive: true });
  return path;
}

/** pgBackRest as the server user. */
/** pgBackRest as the server user, with the benchmark's config and stanza (the shell steps' env sets PGBACKREST_CONFIG). */
export const pgbackrestCommand = 'runuser -u postgres -- pgbackrest --config="$PGBACKREST_CONFIG" --stanza=bench';
const pgbackrest = pgbackrestCommand;

/** Not timed: pgBackRest needs its stanza once. */
export const pgbackrestSetup: ShellStep[] = [{ name: 'pgbackrest stanza-create', script: `${pgbackrest} stanza-create` }];

export const pgbackrestBackup: ShellStep[] = [{ name: 'pgbackrest backup (full)', script: `${pgbackrest} --type=full backup` }];

/** The same at zstd level 1, the level Lifeboat's base backups use by default. */
export const pgbackrestBackupLevel1: ShellStep[] = [{ name: 'pgbackrest backup (full, compress-level=1)', script: `${pgbackrest} --type=full --compress-level=1 backup` }];

/** Restores the newest pgBackRest backup into $OUT/pgbackrest-restore (a new, empty directory). */
export const pgbackrestRestore: ShellStep[] = [
  {
    name: 'pgbackrest restore',
    script: `install -d -m 700 -o postgres -g postgres "$OUT/pgbackrest-restore"
${pgbackrest} --pg1-path="$OUT/pgbackrest-restore" --type=none restore`,
  },
];

export const basebackupGzip: ShellStep[] = [
  { name: 'pg_basebackup -Ft -z', script: '"$PGBIN/pg_basebackup" -D "$OUT/basebackup-gz" -Ft -z -X fetch -c fast' },
];

export const basebackupGzipRestore: ShellStep[] = [
  {
    name: 'tar -xzf base.tar.gz',
    script: 'mkdir -p "$OUT/basebackup-gz-restore" && tar -xzf "$OUT/basebackup-gz/base.tar.gz" -C "$OUT/basebackup-gz-restore"',
  },
];

export const basebackupZstd: ShellStep[] = [
  { name: 'pg_basebackup -D - -Ft piped to zstd -T2 -3', script: '"$PGBIN/pg_basebackup" -D - -Ft -X fetch -c fast | zstd -q -T2 -3 -c > "$OUT/base.tar.zst"' },
];

export const basebackupZstdRestore: ShellStep[] = [
  { name: 'zstd -d piped to tar -x', script: 'mkdir -p "$OUT/basebackup-zst-restore" && zstd -q -d -c "$OUT/base.tar.zst" | tar -x -C "$OUT/basebackup-zst-restore"' },
];

/** pg_dump with Lifeboat's compression: directory format, two jobs, every file zstd -3. */
export const dumpZstd: ShellStep[] = [
  { name: 'pg_dump -Fd -j2 -Z0', script: '"$PGBIN/pg_dump" -Fd -j2 -Z0 -f "$OUT/dump" "$PGDATABASE"' },
  { name: 'zstd -T2 -3 every file', script: 'zstd -q -T2 -3 --rm -r "$OUT/dump"' },
];

/** Into a new database, like Lifeboat's default restore. */
export const dumpZstdRestore: ShellStep[] = [
  { name: 'zstd -d every file', script: 'zstd -q -d --rm -r "$OUT/dump"' },
  { name: 'createdb', script: '"$PGBIN/psql" -q -c "DROP DATABASE IF EXISTS bench_baseline_restore" -c "CREATE DATABASE bench_baseline_restore"' },
  { name: 'pg_restore -j2', script: '"$PGBIN/pg_restore" -j2 -d bench_baseline_restore "$OUT/dump"' },
];
