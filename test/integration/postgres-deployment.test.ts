/**
 * The deployment of docs/postgresql-deployment.md, as a new user would set it up: the worker runs
 * as root, PostgreSQL as `postgres`, its archive_command runs `lifeboat wal-push` (as postgres) with
 * the worker's own config, and base backups and WAL share one fs repository whose root belongs to
 * postgres. Nothing is prepared inside the repository: whoever writes first creates the target's
 * directories.
 *
 * - base backup first, then WAL archiving, then PITR to a random time: exactly the rows committed
 *   at or before it (the defect of issue 18: the backup created <target>/ as root 0700 and every
 *   wal-push after it failed with EACCES);
 * - WAL archiving first, then the base backup, then PITR;
 * - a target that does not archive (archive.mode off) skips the archive check;
 * - a repository root owned by root (archive_command cannot write it): the backup is stored but the
 *   run fails with ArchiveNotWorking quoting pg_stat_archiver; a PITR names the directory that
 *   refused the server's user; once archiving is known to be broken otherwise, a PITR past the
 *   backup says the archive holds nothing after its stop point, with the source's last failure.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { runbookFailure } from '../../src/client.js';
import { removeRecoveredCluster } from '../../src/postgres/recovery.js';
import { serverUser } from '../../src/postgres/tools.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { BackupResult } from '../../workflows/backup.js';
import type { PitrInput, PitrResult } from '../../workflows/pitr.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { commitRows, recoveredIds, switchAndArchive, timeBetween, type ArchivedSource, type Commit } from '../helpers/pitr-workload.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { walCommand } from '../helpers/wal-archive-command.js';

const backupFirst = 'backup-first';
const walFirst = 'wal-first';
const standalone = 'standalone';
const broken = 'broken';

describe('deployment: the worker as root, PostgreSQL as postgres, one fs repository owned by postgres', () => {
  let lifeboat: Lifeboat;
  let root: string;
  let repository: Repository;
  let postgres: { uid: number; gid: number };
  let rootOwned: string;
  const clusters: Record<string, TestCluster> = {};

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'the worker of this deployment runs as root (as the test suite does)');
    const user = await serverUser();
    postgres = { uid: user.uid, gid: user.gid };
    lifeboat = await createLifeboat('pg-deployment');
    // archive_command reads the worker's config, as it would read /etc/lifeboat/lifeboat.config.yaml.
    await chmod(lifeboat.dir, 0o711);
    root = join(lifeboat.dir, 'repository');
    await mkdir(root, { mode: 0o700 });
    await chown(root, postgres.uid, postgres.gid);
    // What a new user gets with `mkdir` as root and no chown: archive_command cannot write there.
    rootOwned = join(lifeboat.dir, 'root-owned-repository');
    await mkdir(rootOwned, { mode: 0o700 });
    repository = new Repository('local', openBackend({ type: 'fs', path: root }));

    const [a, b, c] = await Promise.all([1, 2, 3].map(() => createTestCluster({ archive: true, settings: { track_commit_timestamp: 'on' } })));
    Object.assign(clusters, { [backupFirst]: a!, [walFirst]: b!, [broken]: c! });
    const target = (db: TestCluster, extra: Record<string, unknown> = {}) => ({
      type: 'postgres',
      repositories: ['local'],
      connection: { host: db.cluster.socketDir, port: db.cluster.port, user: 'postgres', database: 'postgres' },
      method: 'base',
      recovery: { dir: join(db.dir, 'recovered'), timeoutSeconds: 120 },
      ...extra,
    });
    const config = lifeboat.baseConfig({
      [backupFirst]: target(a!),
      [walFirst]: target(b!),
      [standalone]: target(a!, { archive: { mode: 'off' } }),
      [broken]: target(c!, { repositories: ['root-owned'], archive: { checkTimeoutSeconds: 3 } }),
    });
    (config.repositories as Record<string, unknown>)['root-owned'] = { type: 'fs', path: rootOwned };
    await lifeboat.writeConfig(config);
    await lifeboat.startWorker();
    for (const [name, db] of Object.entries(clusters)) {
      await db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
      await db.configure({ archive_command: walCommand({ configFile: lifeboat.configPath, target: name }, 'push') });
    }
  });

  after(async () => {
    await lifeboat?.close();
    await Promise.all(Object.values(clusters).map((db) => db.close()));
  });

  async function pitr(input: PitrInput): Promise<PitrResult> {
    return lifeboat.run('pitr', input);
  }

  /** PITR to a random instant between two of the commits; exactly the rows up to it. */
  async function pitrToRandomTime(target: string, commits: Commit[], all: Commit[]): Promise<void> {
    const k = randomInt(1, commits.length);
    const time = timeBetween(commits[k - 1]!, commits[k]!);
    const result = await pitr({ target, recoveryTarget: { kind: 'time', time } });
    try {
      const expected = all.filter((commit) => commit.id <= commits[k - 1]!.id).map((commit) => commit.id);
      assert.deepEqual(await recoveredIds(result.cluster), expected, `recovered to ${time}`);
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
  }

  /** What switchAndArchive needs to see the target's WAL arrive. */
  function archived(db: TestCluster): ArchivedSource {
    return { db, repository, repositoryPath: root, recoveryDir: join(db.dir, 'recovered'), connection: {} };
  }

  async function ownerOf(path: string): Promise<{ uid: number; gid: number; mode: string }> {
    const info = await stat(join(root, path));
    return { uid: info.uid, gid: info.gid, mode: (info.mode & 0o7777).toString(8).padStart(4, '0') };
  }

  async function archiverFailures(db: TestCluster): Promise<number> {
    const [row] = await db.query<{ failed: string }>('SELECT failed_count::text AS failed FROM pg_stat_archiver');
    return Number(row!.failed);
  }

  function assertArchiveChecked(backup: BackupResult): void {
    assert.deepEqual(backup.timeline.map((step) => [step.name, step.status]).at(-1), ['check-archive', 'completed']);
  }

  test('base backup first (the worker creates <target>/), then WAL archiving (wal-push as postgres writes beside it), then PITR to a random time', async () => {
    const db = clusters[backupFirst]!;
    assert.equal(existsSync(join(root, backupFirst)), false, 'nothing of the target exists before its first backup');
    const backup = await lifeboat.run('backup', { target: backupFirst });
    assertArchiveChecked(backup);
    const commits = await commitRows(db, 1, 30);
    await switchAndArchive(archived(db), backupFirst);

    for (const path of [backupFirst, `${backupFirst}/backups`, `${backupFirst}/backups/${backup.backupId}`, `${backupFirst}/wal`]) {
      assert.deepEqual(await ownerOf(path), { ...postgres, mode: '0700' }, path);
    }
    assert.deepEqual(await ownerOf(`${backupFirst}/backups/${backup.backupId}/manifest.json`), { ...postgres, mode: '0600' });
    assert.equal(await archiverFailures(db), 0, 'archive_command never failed');
    await pitrToRandomTime(backupFirst, commits, commits);
  });

  test('WAL archiving first (wal-push as postgres creates <target>/), then the base backup, then PITR to a random time', async () => {
    const db = clusters[walFirst]!;
    const before = await commitRows(db, 1, 5);
    await switchAndArchive(archived(db), walFirst);
    assert.deepEqual(await ownerOf(walFirst), { ...postgres, mode: '0700' });
    const backup = await lifeboat.run('backup', { target: walFirst });
    assertArchiveChecked(backup);
    const commits = await commitRows(db, 6, 30);
    await switchAndArchive(archived(db), walFirst);
    assert.deepEqual(await ownerOf(`${walFirst}/backups/${backup.backupId}`), { ...postgres, mode: '0700' });
    assert.equal(await archiverFailures(db), 0, 'archive_command never failed');
    await pitrToRandomTime(walFirst, commits, [...before, ...commits]);
  });

  test('a target that does not archive (archive.mode off): the base backup skips the archive check', async () => {
    const backup = await lifeboat.run('backup', { target: standalone });
    assert.deepEqual(backup.timeline.map((step) => [step.name, step.status]).at(-1), ['check-archive', 'skipped']);
    assert.match(backup.timeline.at(-1)!.detail!, /archive\.mode is "off"/);
  });

  test('archive_command cannot write the repository: the backup is stored but fails with ArchiveNotWorking quoting pg_stat_archiver; PITR says why it cannot go past the backup', async () => {
    const db = clusters[broken]!;
    const started = await lifeboat.start('backup', { target: broken });
    const failure = runbookFailure(await started.result().then(() => assert.fail('the archive check should fail'), (error: unknown) => error));
    assert.equal(failure.type, 'ArchiveNotWorking', failure.message);
    assert.match(failure.message, /base backup \S+ is stored, but the WAL segment holding its stop point \([0-9A-F]{24}, LSN [0-9A-F/]+\) did not reach the WAL archive of target "broken" within 3 s/);
    assert.match(failure.message, /pg_stat_archiver on .*: .*failed attempts, the last for [0-9A-F]{24}.* at \d{4}-.*\(archiving is failing now\)/);
    assert.match(failure.message, /docs\/postgresql-deployment\.md/);
    const kept = await new Repository('root-owned', openBackend({ type: 'fs', path: rootOwned })).listBackupIds(broken);
    assert.equal(kept.length, 1, 'the base backup itself is kept: it restores to its stop point');
    assert.match(failure.message, new RegExp(`base backup ${kept[0]} is stored`));

    const commits = await commitRows(db, 1, 5);
    await db.query('SELECT pg_switch_wal()');
    // wal-fetch, as postgres, cannot read the repository either: the failure names the directory and the user.
    const time = timeBetween(commits[2]!, commits[3]!);
    const denied = await pitrFailure({ target: broken, recoveryTarget: { kind: 'time', time } });
    assert.equal(denied.type, 'InvalidConfig', denied.message);
    assert.match(denied.message, /restore_command \(lifeboat wal-fetch, run by PostgreSQL as its OS user\) was refused access when asked for/);
    assert.match(denied.message, /the repository root .*root-owned-repository is owned by uid 0, gid 0, mode 0700; this process runs as uid \d+ \(postgres\)/);

    // Readable now, but archiving stays broken: the recovery says the archive has nothing after the
    // backup. (A segment from before the backup may still arrive: the archiver can be mid-retry of
    // the old archive_command when the owner changes.)
    await db.configure({ archive_command: 'false' });
    await execa('chown', ['-R', `${postgres.uid}:${postgres.gid}`, rootOwned]);
    const silent = await pitrFailure({ target: broken, recoveryTarget: { kind: 'time', time } });
    assert.equal(silent.type, 'WalSegmentMissing', silent.message);
    assert.match(silent.message, /the WAL archive of target "broken" holds no WAL after base backup \S+'s stop point \(LSN [0-9A-F/]+, in segment [0-9A-F]{24}, at .*\), so WAL archiving has not worked since that backup; (it holds no WAL segment at all|its newest segment is [0-9A-F]{24}, archived \d{4}-)/);
    assert.match(silent.message, /pg_stat_archiver on .*: .*the last for [0-9A-F]{24} at .*\(archiving is failing now\)/);
  });

  async function pitrFailure(input: PitrInput): Promise<{ type: string | undefined; message: string }> {
    const handle = await lifeboat.start('pitr', input);
    const error = await handle.result().then(
      () => assert.fail('the recovery should have failed'),
      (e: unknown) => e,
    );
    return runbookFailure(error);
  }
});
