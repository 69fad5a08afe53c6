/**
 * A PostgreSQL source whose WAL is archived by the real `lifeboat wal-push`, and a workload that
 * commits rows one transaction at a time and keeps its own commit log (the commit's time from
 * track_commit_timestamp), so a recovery can be checked for exactly the rows committed at or
 * before its target (the pattern of test/integration/postgres-pitr.test.ts, for the runbook tests).
 */
import assert from 'node:assert/strict';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { repositorySchema, type RepositoryConfig } from '../../src/config/schema.js';
import { connectRecovered, type RecoveredCluster } from '../../src/postgres/recovery.js';
import { isoFromMicros, parseTimestamp } from '../../src/postgres/recovery-target.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { walRecordKey } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { Lifeboat } from './lifeboat.js';
import { createTestCluster, type TestCluster } from './postgres.js';
import { walCommand, writeWalArchiveConfig } from './wal-archive-command.js';

export interface Commit {
  id: number;
  /** pg_xact_commit_timestamp, UTC with microseconds. */
  time: string;
}

export interface ArchivedSource {
  db: TestCluster;
  /** The repository WAL is archived into and base backups go to ("local": fs, or "s3"). */
  repository: Repository;
  /** An fs archive's directory (inside the cluster's directory, so the server user can write WAL there); undefined for S3. */
  repositoryPath: string | undefined;
  /** Where recovered clusters of the runbooks go. */
  recoveryDir: string;
  /** The connection block of a postgres target on this cluster (superuser over the private socket). */
  connection: Record<string, unknown>;
}

/** A source archiving into an fs repository of its own. */
export type FsArchivedSource = ArchivedSource & { repositoryPath: string };

/**
 * A cluster with archiving for `target` (into an fs repository of its own, or into the
 * installation's S3 repository, the credentials in the server's environment), and a lifeboat
 * installation whose config directory the server user can traverse (restore_command runs
 * `lifeboat wal-fetch --config <lifeboat config>` as that user).
 */
export async function archivedSource(lifeboat: Lifeboat, target: string, options?: { archive?: 'fs' }): Promise<FsArchivedSource>;
export async function archivedSource(lifeboat: Lifeboat, target: string, options: { archive: 's3' }): Promise<ArchivedSource>;
export async function archivedSource(lifeboat: Lifeboat, target: string, options: { archive?: 'fs' | 's3' } = {}): Promise<ArchivedSource> {
  const settings = { track_commit_timestamp: 'on' };
  let db: TestCluster;
  let repositoryPath: string | undefined;
  let archive: { name: string; repository: RepositoryConfig };
  if (options.archive === 's3') {
    const s3 = repositorySchema.parse((lifeboat.baseConfig({}).repositories as Record<string, unknown>).s3);
    if (s3.type !== 's3') throw new Error('the installation has no S3 repository');
    db = await createTestCluster({ archive: true, settings, env: { [s3.accessKeyIdEnv]: lifeboat.env[s3.accessKeyIdEnv]!, [s3.secretAccessKeyEnv]: lifeboat.env[s3.secretAccessKeyEnv]! } });
    archive = { name: 's3', repository: s3 };
  } else {
    db = await createTestCluster({ archive: true, settings });
    repositoryPath = join(db.dir, 'repository');
    for (const path of [repositoryPath, join(repositoryPath, target), join(repositoryPath, target, 'wal')]) {
      await mkdir(path, { mode: 0o700 });
      await chownToServerUser(path);
    }
    archive = { name: 'local', repository: { type: 'fs', path: repositoryPath } };
  }
  const repository = new Repository(archive.name, openBackend(archive.repository, lifeboat.env));
  const archiveConfig = await writeWalArchiveConfig(db.dir, 'archive.yaml', { target, repositories: [archive], compression: { level: 3, threads: 1 } });
  await db.configure({ archive_command: walCommand(archiveConfig, 'push') });
  await chmod(lifeboat.dir, 0o711);
  return {
    db,
    repository,
    repositoryPath,
    recoveryDir: join(db.dir, 'recovered'),
    connection: { host: db.cluster.socketDir, port: db.cluster.port, user: 'postgres', database: 'postgres' },
  };
}

/** Commits rows [fromId, fromId + count) into `ledger`, one transaction each. */
export async function commitRows(db: TestCluster, fromId: number, count: number): Promise<Commit[]> {
  for (let id = fromId; id < fromId + count; id++) await db.query('INSERT INTO ledger (id, note) VALUES ($1, $2)', [id, `row ${id}`]);
  const rows = await db.query<{ id: number; time: string }>(
    `SELECT id, to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time FROM ledger WHERE id >= $1 AND id < $2 ORDER BY id`,
    [fromId, fromId + count],
  );
  assert.equal(rows.length, count);
  return rows.map((row) => ({ id: row.id, time: row.time }));
}

/** Completes the current WAL segment and waits until wal-push archived it. */
export async function switchAndArchive(source: ArchivedSource, target: string): Promise<string> {
  const [row] = await source.db.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
  const segment = row!.name;
  const deadline = Date.now() + 60_000;
  while (!(await source.repository.backend.head(walRecordKey(target, segment)))) {
    if (Date.now() > deadline) {
      const [status] = await source.db.query('SELECT * FROM pg_stat_archiver');
      assert.fail(`${segment} was not archived within 60 s: ${JSON.stringify(status)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return segment;
}

/** The ids in a recovered cluster's ledger, checking that it promoted. */
export async function recoveredIds(cluster: RecoveredCluster): Promise<number[]> {
  const client = await connectRecovered(cluster);
  try {
    const [state] = (await client.query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering')).rows;
    assert.equal(state?.recovering, false, 'the recovered cluster promoted');
    return (await client.query<{ id: number }>('SELECT id FROM ledger ORDER BY id')).rows.map((row) => row.id);
  } finally {
    await client.end();
  }
}

/** A microsecond ISO time strictly between two commits' times (their midpoint). */
export function timeBetween(earlier: Commit, later: Commit): string {
  const [a, b] = [parseTimestamp(earlier.time).micros, parseTimestamp(later.time).micros];
  assert.ok(b - a >= 2n, `commits ${earlier.id} and ${later.id} are at least 2 µs apart`);
  return isoFromMicros((a + b) / 2n);
}
