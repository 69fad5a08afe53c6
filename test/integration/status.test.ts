/**
 * `lifeboat status` against a real stack: the state of targets read from real repositories (fs
 * and S3), a real Temporal server (runs, schedules, pollers) and a real PostgreSQL server whose
 * WAL is archived by the real `lifeboat wal-push`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { takeBaseBackup, writeBaseBackupManifest } from '../../src/postgres/base-backup.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { walRecordKey, type WalArchiveSpec } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { StateReport, TargetState } from '../../src/state/model.js';
import { readState } from '../../src/state/read.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { walCommand, writeWalArchiveConfig } from '../helpers/wal-archive-command.js';

// Visibility is shared by every test file of a run: names of their own keep other files' runs out.
const suffix = randomBytes(3).toString('hex');
const fresh = `fresh-${suffix}`;
const stale = `stale-${suffix}`;

describe('lifeboat status', () => {
  let lifeboat: Lifeboat;
  let backupId: string;
  let olderStaleBackupId: string;

  before(async () => {
    lifeboat = await createLifeboat('status');
    createDatabase(join(lifeboat.dir, 'fresh.sqlite'), 1);
    createDatabase(join(lifeboat.dir, 'stale.sqlite'), 1);
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        [fresh]: {
          type: 'sqlite',
          path: join(lifeboat.dir, 'fresh.sqlite'),
          repositories: ['local', 's3'],
          objectives: { rpoSeconds: 3600, rtoSeconds: 300, drillEverySeconds: 86400 },
          drill: { smokeChecks: [{ name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 }] },
        },
        // An RPO of a second: its backup is stale by the time status looks. Keeping one backup, the
        // next retention run would remove the older of its two.
        [stale]: { type: 'sqlite', path: join(lifeboat.dir, 'stale.sqlite'), repositories: ['local'], objectives: { rpoSeconds: 1 }, retention: { keepLast: 1 } },
      }),
    );
    await lifeboat.startWorker();
    backupId = (await lifeboat.run('backup', { target: fresh })).backupId;
    const drill = await lifeboat.run('drill', { target: fresh });
    assert.equal(drill.passed, true, JSON.stringify(drill.failure));
    olderStaleBackupId = (await lifeboat.run('backup', { target: stale })).backupId;
    await lifeboat.run('backup', { target: stale });
    await lifeboat.client.schedule.create({
      scheduleId: `lifeboat/${fresh}/weekly-drill`,
      spec: { intervals: [{ every: '7 days' }] },
      action: { type: 'startWorkflow', workflowType: 'drill', args: [{ target: fresh }], taskQueue: lifeboat.settings.taskQueue },
      state: { paused: true, note: 'paused for the test' },
    });
  });

  after(async () => {
    await lifeboat?.client.schedule.getHandle(`lifeboat/${fresh}/weekly-drill`).delete().catch(() => undefined);
    await lifeboat?.close();
  });

  async function status(args: string[]): Promise<{ exitCode: number | undefined; report: StateReport | undefined; stderr: string }> {
    const result = await lifeboat.cli(['status', ...args]);
    return { exitCode: result.exitCode, report: result.stdout ? (JSON.parse(result.stdout) as StateReport) : undefined, stderr: result.stderr };
  }

  test('a target whose backups, drill and runs are within its objectives: exit 0, every fact in the JSON', async () => {
    const { exitCode, report, stderr } = await status([fresh, '--json']);
    assert.equal(exitCode, 0, stderr);
    assert.equal(report?.healthy, true);
    assert.deepEqual(report.targets.map((t) => t.target), [fresh]);
    const state = report.targets[0]!;
    assert.deepEqual(state.problems, []);
    assert.deepEqual(state.objectives, { rpoSeconds: 3600, rtoSeconds: 300, drillEverySeconds: 86400, verifyEverySeconds: null });
    assert.deepEqual(state.repositories.map((r) => r.repository), ['local', 's3']);
    for (const repo of state.repositories) {
      assert.equal(repo.error, null);
      assert.equal(repo.newestBackup?.id, backupId);
      assert.equal(repo.newestBackup.kind, 'sqlite');
      assert.ok(repo.newestBackup.storedBytes > 0 && repo.newestBackup.sourceBytes > 0);
      assert.ok(repo.newestBackup.durationSeconds !== null && repo.newestBackup.durationSeconds > 0);
      assert.equal(repo.lastDrill?.passed, true);
      assert.equal(repo.lastDrill.backupId, backupId);
      assert.equal(repo.lastDrill.rto?.objectiveSeconds, 300, 'the drill was measured against objectives.rtoSeconds');
      assert.equal(repo.lastDrill.rpo?.objectiveSeconds, 3600);
      assert.deepEqual(repo.lastPassedDrill, repo.lastDrill);
      assert.deepEqual(repo.newestVerifiedBackup && { id: repo.newestVerifiedBackup.id, by: repo.newestVerifiedBackup.by }, { id: backupId, by: 'drill' });
      assert.equal(repo.lastVerify, null);
      assert.equal(repo.wal, null, 'no WAL facts for SQLite');
      assert.equal(repo.retention, null, 'no retention policy: no preview');
    }
    assert.equal(state.lastRuns.backup?.result, 'completed');
    assert.equal(state.lastRuns.drill?.result, 'completed');
    assert.deepEqual(state.schedules, [{ id: `lifeboat/${fresh}/weekly-drill`, paused: true, note: 'paused for the test' }]);
    assert.equal(report.workers?.taskQueue, lifeboat.settings.taskQueue);
    assert.ok((report.workers?.workflowPollers ?? 0) > 0, 'the test worker is seen polling');
    assert.match(stderr, new RegExp(`${fresh} \\(sqlite\\): OK`));
    assert.match(stderr, /PAUSED \(paused for the test\)/);
  });

  test('a backup older than the RPO objective: exit 1 naming the repository and the ages', async () => {
    const { exitCode, report, stderr } = await status([stale, '--json']);
    assert.equal(exitCode, 1, stderr);
    assert.equal(report?.healthy, false);
    const problems = report.targets[0]!.problems;
    assert.deepEqual(problems.map((p) => [p.code, p.repository]), [['backup-stale', 'local']]);
    assert.match(problems[0]!.message, /old; the RPO objective is 1\.0s/);
    assert.match(stderr, /problem: backup-stale/);
  });

  test('with a retention policy, it shows what the next retention run would remove, and why, without removing it', async () => {
    const { report, stderr } = await status([stale, '--json']);
    const repo = report!.targets[0]!.repositories[0]!;
    assert.deepEqual(repo.retention?.wouldRemove.map((r) => r.backupId), [olderStaleBackupId]);
    assert.equal(repo.retention.wouldKeep, 1);
    assert.match(stderr, new RegExp(`next retention +would remove ${olderStaleBackupId}`));
    const listed = await lifeboat.cli(['backups', stale, '--json']);
    assert.ok(listed.stdout.includes(olderStaleBackupId), 'status removed nothing');
  });

  test('without a target it reports every target, and exits 1 when any is outside its objectives', async () => {
    const { exitCode, report } = await status(['--json']);
    assert.equal(exitCode, 1);
    assert.deepEqual(report?.targets.map((t) => [t.target, t.problems.length === 0]), [[fresh, true], [stale, false]]);
  });

  test('an unknown target is bad input (exit 2, TargetNotFound naming the known ones)', async () => {
    const { exitCode, stderr } = await status(['nope']);
    assert.equal(exitCode, 2);
    assert.match(stderr, /TargetNotFound: no target named "nope".*Known targets: fresh-/s);
  });

  test('the Temporal server unreachable: the repositories are still reported, and the exit is 1', async () => {
    const result = await lifeboat.cli(['status', fresh, '--json'], { env: { TEMPORAL_ADDRESS: '127.0.0.1:1' } });
    assert.equal(result.exitCode, 1, result.stderr);
    const state = (JSON.parse(result.stdout) as StateReport).targets[0]!;
    assert.equal(state.repositories[0]?.newestBackup?.id, backupId);
    assert.deepEqual(state.problems.map((p) => p.code), ['temporal-unreachable']);
  });
});

describe('lifeboat status of a PostgreSQL target: WAL archive head, lag and PITR window', () => {
  const target = `ledger-${suffix}`;
  let db: TestCluster;
  let repository: Repository;
  let config: ReturnType<typeof parseConfig>;

  before(async () => {
    db = await createTestCluster({ archive: true });
    const repositoryPath = join(db.dir, 'repository');
    for (const path of [repositoryPath, join(repositoryPath, target), join(repositoryPath, target, 'wal')]) {
      await mkdir(path, { mode: 0o700 });
      await chmod(path, 0o700);
      await chownToServerUser(path);
    }
    const spec: WalArchiveSpec = { target, repositories: [{ name: 'local', repository: { type: 'fs', path: repositoryPath } }], compression: { level: 3, threads: 1 } };
    await db.configure({ archive_command: walCommand(await writeWalArchiveConfig(db.dir, 'archive.yaml', spec), 'push') });
    repository = new Repository('local', openBackend({ type: 'fs', path: repositoryPath }));
    config = parseConfig(
      {
        repositories: { local: { type: 'fs', path: repositoryPath } },
        targets: { [target]: { type: 'postgres', repositories: ['local'], method: 'base', connection: { host: db.cluster.socketDir, port: db.cluster.port, user: 'postgres' }, objectives: { rpoSeconds: 3600 } } },
      },
      'the test config',
    );
  });

  after(async () => {
    await db?.close();
  });

  test('reports the archived head, no lag, and the window from the oldest base backup to the newest archived WAL', async () => {
    const connection = { host: db.cluster.socketDir, port: db.cluster.port, user: 'postgres', database: 'postgres', maintenanceDatabase: 'postgres' };
    const first = await takeBaseBackup({ connection, target, backupId: '20261122T100000Z-000001', repositories: [repository], compression: { level: 3, threads: 1 } });
    const oldest = await writeBaseBackupManifest([repository], first, { workflow: { workflowId: 'test-status', runId: 'one' } });
    const second = await takeBaseBackup({ connection, target, backupId: '20261122T110000Z-000002', repositories: [repository], compression: { level: 3, threads: 1 } });
    const newest = await writeBaseBackupManifest([repository], second, { workflow: { workflowId: 'test-status', runId: 'two' } });
    await db.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
    const [switched] = await db.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    const segment = switched!.name;
    const deadline = Date.now() + 60_000;
    while (!(await repository.backend.head(walRecordKey(target, segment)))) {
      assert.ok(Date.now() < deadline, `${segment} was not archived within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const report = await readState({ config, env: process.env, temporal: { error: 'not asked in this test' } });
    const state: TargetState = report.targets[0]!;
    const repo = state.repositories[0]!;
    assert.equal(repo.error, null);
    assert.equal(repo.newestBackup?.id, newest.id);
    assert.equal(repo.newestBackup.kind, 'postgres-base');
    assert.equal(state.archiver?.reachable, true, state.archiver?.error ?? '');
    assert.equal(state.archiver.archiveMode, 'on');
    assert.equal(state.archiver.failing, false);
    assert.equal(state.archiver.lastArchivedWal, segment);
    assert.equal(state.archiver.lag?.segments, 0);
    assert.equal(repo.wal?.head?.name, segment, 'the head is the segment the server archived last');
    assert.equal(repo.wal.pitrWindow.start, oldest.base.stopTime, 'the window starts where the oldest base backup ends');
    assert.equal(repo.wal.pitrWindow.end, repo.wal.head.archivedAt);
    assert.deepEqual(state.problems.map((p) => p.code), ['temporal-unreachable'], 'nothing but the Temporal server that was not asked');

    // Without the server, the head comes from the repository alone.
    const unreachable = structuredClone(config);
    const pgTarget = unreachable.targets[target]!;
    if (pgTarget.type === 'postgres') pgTarget.connection.port = 1;
    const offline = (await readState({ config: unreachable, env: process.env, temporal: { error: 'not asked' } })).targets[0]!;
    assert.equal(offline.archiver?.reachable, false);
    assert.equal(offline.repositories[0]?.wal?.head?.name, segment);
    assert.ok(offline.problems.some((p) => p.code === 'postgres-unreachable'));
  });
});
