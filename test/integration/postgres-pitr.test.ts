/**
 * Point-in-time recovery (src/postgres/recovery.ts) of a real PostgreSQL 15 whose WAL is archived
 * by the real `lifeboat wal-push`, from base backups in an fs repository, replaying through the real
 * `lifeboat wal-fetch`. A workload commits rows with increasing ids one transaction at a time and
 * keeps its own commit log (transaction id, the WAL position just before and just after the
 * commit, and the commit's time from track_commit_timestamp); every recovery must hold exactly the
 * rows that log says committed at or before the target.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { takeBaseBackup, writeBaseBackupManifest, type BaseBackupManifest } from '../../src/postgres/base-backup.js';
import { stagingDirFor } from '../../src/postgres/base-restore.js';
import {
  connectRecovered,
  listArchivedSegments,
  pointInTimeRecovery,
  removeRecoveredCluster,
  walFetchCommand,
  type PointInTimeRecoveryResult,
} from '../../src/postgres/recovery.js';
import { isoFromMicros, parseTimestamp, type RecoveryTarget } from '../../src/postgres/recovery-target.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { walObjectKey, walRecordKey, type WalArchiveSpec } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { lifeboatError } from '../helpers/assertions.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { walCommand, writeWalArchiveConfig } from '../helpers/wal-archive-command.js';

const target = 'ledger';

/** One committed row, as the workload saw it. */
interface Commit {
  id: number;
  xid: string;
  /** pg_current_wal_insert_lsn() inside the transaction, just before COMMIT: the commit record starts at or after it. */
  lsnBefore: string;
  /** The same just after COMMIT returned: the commit record ends at or before it. */
  lsnAfter: string;
  /** pg_xact_commit_timestamp: the time in the commit record, which recovery_target_time compares with. */
  time: string;
}

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error('cleanup failed:', error));
});

describe('point-in-time recovery from base backups and archived WAL', () => {
  let db: TestCluster;
  let scratch: string;
  let repository: Repository;
  let restoreCommand: string;
  let first: BaseBackupManifest;
  let second: BaseBackupManifest;
  /** Every committed row, in commit order. */
  const log: Commit[] = [];
  /** A segment in the middle of the archive, after the second backup. */
  let middleSegment: string;
  let restorePoint: { name: string; afterId: number; lsn: string };
  let attempt = 0;

  before(async () => {
    // No autovacuum: every transaction in the WAL is the workload's, so its log is the whole story.
    db = await createTestCluster({ archive: true, settings: { track_commit_timestamp: 'on', autovacuum: 'off' } });
    cleanups.push(() => db.close());
    scratch = await mkdtemp(join(tmpdir(), 'lifeboat-pitr-test-'));
    await chmod(scratch, 0o700);
    await chownToServerUser(scratch);
    cleanups.push(() => rm(scratch, { recursive: true, force: true }));

    // wal-push runs as the server user and base backups are written by us: the target's WAL
    // directory is created for the server user before either writes.
    const repositoryPath = join(db.dir, 'repository');
    for (const path of [repositoryPath, join(repositoryPath, target), join(repositoryPath, target, 'wal')]) {
      await mkdir(path, { mode: 0o700 });
      await chownToServerUser(path);
    }
    const spec: WalArchiveSpec = { target, repositories: [{ name: 'local', repository: { type: 'fs', path: repositoryPath } }], compression: { level: 3, threads: 1 } };
    const archiveConfig = await writeWalArchiveConfig(db.dir, 'archive.yaml', spec);
    await db.configure({ archive_command: walCommand(archiveConfig, 'push') });
    restoreCommand = walFetchCommand({ configPath: archiveConfig.configFile, target });
    repository = new Repository('local', openBackend({ type: 'fs', path: repositoryPath }));

    await db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
    first = await baseBackup(db, repository, '20261122T100000Z-000001');
    await switchWal(db);
    log.push(...(await commitRows(db, 1, 60)));
    // The segment holding the first rows: later, the segment taken out of the archive to make a gap.
    middleSegment = await switchWal(db);
    second = await baseBackup(db, repository, '20261122T110000Z-000002');
    const restorePointAfter = randomInt(75, 125);
    log.push(...(await commitRows(db, 61, restorePointAfter - 60)));
    const name = `before-${restorePointAfter + 1}`;
    const [created] = await db.query<{ lsn: string }>(`SELECT pg_create_restore_point($1)::text AS lsn`, [name]);
    restorePoint = { name, afterId: restorePointAfter, lsn: created!.lsn };
    log.push(...(await commitRows(db, restorePointAfter + 1, 140 - restorePointAfter)));
    await addCommitTimes(db, log);
    await waitUntilArchived(repository, await switchWal(db), db);
  });

  /** Runs a PITR into a new directory; the recovered cluster is removed after the test. */
  async function recover(recoveryTarget: RecoveryTarget, extra: { timeline?: number } = {}): Promise<PointInTimeRecoveryResult> {
    const dataDir = join(scratch, `recovered-${++attempt}`);
    const result = await pointInTimeRecovery({ target, repositories: [repository], recoveryTarget, dataDir, restoreCommand, timeoutSeconds: 120, ...extra });
    cleanups.push(() => removeRecoveredCluster(result.cluster));
    return result;
  }

  async function recoveredIds(result: PointInTimeRecoveryResult): Promise<number[]> {
    const client = await connectRecovered(result.cluster);
    try {
      const { rows } = await client.query<{ id: number }>('SELECT id FROM ledger ORDER BY id');
      const [state] = (await client.query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering')).rows;
      assert.equal(state?.recovering, false, 'promoted');
      return rows.map((row) => row.id);
    } finally {
      await client.end();
      await removeRecoveredCluster(result.cluster);
    }
  }

  const idsWhere = (keep: (commit: Commit) => boolean): number[] => log.filter(keep).map((commit) => commit.id);

  describe('holds exactly the rows committed at or before the target', { concurrency: 2 }, () => {
    it('to a random time: exactly the rows committed at or before it, from the newest base backup that finished before it', async () => {
      // A random instant between two commits of the first half, so the first backup must be used.
      const from = parseTimestamp(log[5]!.time).micros;
      const to = parseTimestamp(log[55]!.time).micros;
      const time = isoFromMicros(from + BigInt(Math.floor(Math.random() * Number(to - from))));
      const result = await recover({ kind: 'time', time });

      assert.equal(result.backupId, first.id, result.choice);
      assert.ok(result.cluster.port > 0 && existsSync(join(result.cluster.dataDir, 'PG_VERSION')), 'where the recovered cluster is, and its port');
      const expected = idsWhere((commit) => parseTimestamp(commit.time).micros <= parseTimestamp(time).micros);
      assert.deepEqual(await recoveredIds(result), expected);
      const firstExcluded = log[expected.length]!;
      assert.equal(result.reached.stop?.message.startsWith(`recovery stopping before commit of transaction ${firstExcluded.xid},`), true, result.reached.stop?.message);
      assert.equal(result.reached.lastTransactionTime, log[expected.length - 1]!.time, 'the last transaction replayed is the last one at or before the target');
      assert.ok(result.timeline >= 2, 'a timeline of its own');
    });

    it("to a transaction's exact commit time: that transaction is included (recovery_target_time is inclusive)", async () => {
      const chosen = log[randomInt(62, 138)]!;
      const result = await recover({ kind: 'time', time: chosen.time });

      assert.equal(result.backupId, second.id, result.choice);
      const expected = idsWhere((commit) => parseTimestamp(commit.time).micros <= parseTimestamp(chosen.time).micros);
      assert.ok(expected.includes(chosen.id));
      assert.deepEqual(await recoveredIds(result), expected);
    });

    it('to an LSN: exactly the transactions whose commit record starts before it (exclusive), and with the record at it (inclusive)', async () => {
      // The WAL position just after a COMMIT returned: that commit is before it, the next one after.
      const k = randomInt(62, 138);
      const inclusive = await recover({ kind: 'lsn', lsn: log[k]!.lsnAfter });
      assert.deepEqual(await recoveredIds(inclusive), idsWhere((commit) => commit.id <= log[k]!.id));
      assert.equal(inclusive.reached.stop?.message, `recovery stopping after WAL location (LSN) "${log[k]!.lsnAfter}"`);

      // Just before a COMMIT: with inclusive off, replay stops before the first record at or after
      // it, so that commit is not recovered, and every earlier one is.
      const j = randomInt(62, 138);
      const exclusive = await recover({ kind: 'lsn', lsn: log[j]!.lsnBefore, inclusive: false });
      assert.deepEqual(await recoveredIds(exclusive), idsWhere((commit) => commit.id < log[j]!.id));
    });

    it('to a named restore point: exactly the rows committed before pg_create_restore_point', async () => {
      const result = await recover({ kind: 'name', name: restorePoint.name, lsn: restorePoint.lsn });
      assert.equal(result.backupId, second.id);
      assert.deepEqual(await recoveredIds(result), idsWhere((commit) => commit.id <= restorePoint.afterId));
      assert.match(result.reached.stop?.message ?? '', new RegExp(`^recovery stopping at restore point "${restorePoint.name}"`));
    });

    it('to a transaction id: that transaction and every one committed before it', async () => {
      const chosen = log[randomInt(62, 138)]!;
      const result = await recover({ kind: 'xid', xid: chosen.xid });
      assert.deepEqual(await recoveredIds(result), idsWhere((commit) => commit.id <= chosen.id));
      assert.match(result.reached.stop?.message ?? '', new RegExp(`^recovery stopping after commit of transaction ${chosen.xid},`));
    });

    it('to the end of the archive ("latest"): every archived row', async () => {
      const result = await recover({ kind: 'latest' });
      assert.equal(result.backupId, second.id);
      assert.deepEqual(await recoveredIds(result), idsWhere(() => true));
      assert.equal(result.reached.stop, null);
    });
  });

  describe('fails with a typed error and touches nothing live', () => {
    it('refuses a target earlier than the oldest base backup, before writing anything', async () => {
      const time = isoFromMicros(parseTimestamp(first.base.stopTime).micros - 1_000_000n);
      const dataDir = join(scratch, 'too-early');
      await assert.rejects(
        pointInTimeRecovery({ target, repositories: [repository], recoveryTarget: { kind: 'time', time }, dataDir, restoreCommand }),
        lifeboatError('RecoveryTargetBeforeBackup', new RegExp(`earlier than the oldest base backup of target "${target}", ${first.id}`)),
      );
      assert.equal(existsSync(dataDir), false);
    });

    it('reports a target later than the archived WAL as unreachable, removes the copy, and touches nothing live', async () => {
      const archivedBefore = await listArchivedSegments([repository], target);
      const time = isoFromMicros(parseTimestamp(log.at(-1)!.time).micros + 3_600_000_000n);
      const dataDir = join(scratch, 'too-late');
      await assert.rejects(
        pointInTimeRecovery({ target, repositories: [repository], recoveryTarget: { kind: 'time', time }, dataDir, restoreCommand, timeoutSeconds: 120 }),
        lifeboatError('RecoveryTargetUnreachable', /is not in the archived WAL.*end of the archive.*last transaction replayed committed at/s),
      );
      assert.equal(existsSync(dataDir), false, 'the copy is removed');
      assert.equal(existsSync(stagingDirFor(dataDir)), false);
      await assertLiveUntouched(archivedBefore);
    });

    it('names the segment missing from the middle of the archive', async () => {
      const archivedBefore = await listArchivedSegments([repository], target);
      const aside = join(scratch, 'aside');
      await mkdir(aside);
      const root = join(db.dir, 'repository');
      const keys = [walObjectKey(target, middleSegment), walRecordKey(target, middleSegment)];
      for (const key of keys) await rename(join(root, key), join(aside, key.split('/').at(-1)!));
      try {
        // A time after the gap, which only the first base backup precedes.
        await assert.rejects(
          pointInTimeRecovery({ target, repositories: [repository], recoveryTarget: { kind: 'time', time: log[50]!.time }, dataDir: join(scratch, 'gap'), restoreCommand, timeoutSeconds: 120 }),
          lifeboatError('WalSegmentMissing', new RegExp(`WAL segment ${middleSegment} is missing from the archive`)),
        );
        assert.equal(existsSync(join(scratch, 'gap')), false);
        await assert.rejects(
          pointInTimeRecovery({ target, repositories: [repository], recoveryTarget: { kind: 'latest' }, backupId: first.id, dataDir: join(scratch, 'gap-latest'), restoreCommand, timeoutSeconds: 120 }),
          lifeboatError('WalSegmentMissing', new RegExp(middleSegment)),
          'replay to the end of the archive does not silently stop at the gap',
        );
      } finally {
        for (const key of keys) await rename(join(aside, key.split('/').at(-1)!), join(root, key));
      }
      await assertLiveUntouched(archivedBefore);
    });

    it('reports a timeline the archive does not have', async () => {
      await assert.rejects(
        pointInTimeRecovery({ target, repositories: [repository], recoveryTarget: { kind: 'latest' }, timeline: 7, dataDir: join(scratch, 'timeline'), restoreCommand, timeoutSeconds: 60 }),
        lifeboatError('TimelineNotFound', /timeline 7 does not exist in the WAL archive/),
      );
    });
  });

  /** The source keeps running on timeline 1, and no recovered copy archived anything (a new timeline's history file would show). */
  async function assertLiveUntouched(archivedBefore: string[]): Promise<void> {
    const [state] = await db.query<{ recovering: boolean; wal: string }>('SELECT pg_is_in_recovery() AS recovering, pg_walfile_name(pg_current_wal_lsn()) AS wal');
    assert.equal(state?.recovering, false);
    assert.equal(state?.wal.slice(0, 8), '00000001', 'the source is still on timeline 1');
    const names = (await repository.backend.list(`${target}/wal/`)).map((object) => object.key);
    assert.deepEqual(names.filter((key) => key.endsWith('.history.json')), [], 'no recovered copy archived a timeline history');
    assert.deepEqual(
      (await listArchivedSegments([repository], target)).filter((name) => !archivedBefore.includes(name) && !name.startsWith('00000001')),
      [],
      'no segment of another timeline was archived',
    );
  }
});

// ---------------------------------------------------------------------------------------------
// helpers

async function baseBackup(db: TestCluster, repository: Repository, backupId: string): Promise<BaseBackupManifest> {
  const result = await takeBaseBackup({
    connection: { host: db.cluster.socketDir, port: db.cluster.port, user: 'postgres', database: 'postgres', maintenanceDatabase: 'postgres' },
    target,
    backupId,
    repositories: [repository],
    compression: { level: 3, threads: 1 },
  });
  return writeBaseBackupManifest([repository], result, { workflow: { workflowId: 'test-pitr', runId: backupId } });
}

/** Commits rows [fromId, fromId + count) one transaction each, recording where each commit is in the WAL. */
async function commitRows(db: TestCluster, fromId: number, count: number): Promise<Commit[]> {
  const commits: Commit[] = [];
  for (let id = fromId; id < fromId + count; id++) {
    await db.query('BEGIN');
    await db.query(`INSERT INTO ledger (id, note) VALUES ($1, $2)`, [id, `row ${id}`]);
    const [inside] = await db.query<{ xid: string; lsn: string }>('SELECT pg_current_xact_id()::text AS xid, pg_current_wal_insert_lsn()::text AS lsn');
    await db.query('COMMIT');
    const [outside] = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    commits.push({ id, xid: inside!.xid, lsnBefore: inside!.lsn, lsnAfter: outside!.lsn, time: '' });
  }
  return commits;
}

async function addCommitTimes(db: TestCluster, commits: Commit[]): Promise<void> {
  const rows = await db.query<{ id: number; time: string }>(
    `SELECT id, to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time FROM ledger`,
  );
  const times = new Map(rows.map((row) => [row.id, row.time]));
  for (const commit of commits) commit.time = times.get(commit.id) ?? assert.fail(`no commit time for row ${commit.id}`);
}

/** Completes the current segment and returns its name. */
async function switchWal(db: TestCluster): Promise<string> {
  const [row] = await db.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
  return row!.name;
}

async function waitUntilArchived(repository: Repository, segment: string, db: TestCluster): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await repository.backend.head(walRecordKey(target, segment)))) {
    if (Date.now() > deadline) {
      const [status] = await db.query('SELECT * FROM pg_stat_archiver');
      assert.fail(`${segment} was not archived within 60 s: ${JSON.stringify(status)}; archive contents: ${(await readdir(join(db.dir, 'repository', target, 'wal'))).join(', ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** An integer in [min, max]. */
function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}
