/**
 * PostgreSQL base backups and point-in-time recovery survive a killed worker. The worker (a child
 * process) is SIGKILLed while the base backup streams into the repository, and again while the
 * recovered cluster replays archived WAL; each time a new worker finishes the run. Completed steps
 * are not run again (the history says so); the repository holds exactly the manifest's parts (no
 * half-written or orphaned object); the recovery holds exactly the rows committed at or before
 * its target.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { removeRecoveredCluster } from '../../src/postgres/recovery.js';
import type { BackupResult } from '../../workflows/backup.js';
import type { PitrResult } from '../../workflows/pitr.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { archivedSource, commitRows, recoveredIds, switchAndArchive, timeBetween, type Commit, type FsArchivedSource } from '../helpers/pitr-workload.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { waitForStep } from '../helpers/steps.js';

const target = 'ledger';

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe('PostgreSQL base backup and PITR runbooks survive a killed worker', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let source: FsArchivedSource;
  let backup: BackupResult;
  const log: Commit[] = [];

  before(async () => {
    stack = await testStack();
    lifeboat = await createLifeboat('pg-pitr-kill', { stack });
    source = await archivedSource(lifeboat, target);
    const config = lifeboat.baseConfig(
      { [target]: { type: 'postgres', repositories: ['local'], connection: source.connection, method: 'base', base: { partSizeMiB: 1, compressionLevel: 12 }, recovery: { dir: source.recoveryDir, timeoutSeconds: 120 } } },
      // A slow compressor (level 12, one thread): the backup streams for seconds, time to kill it.
      { compression: { level: 3, threads: 1 } },
    );
    (config.repositories as Record<string, unknown>).local = { type: 'fs', path: source.repositoryPath };
    await lifeboat.writeConfig(config);
    await source.db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
    // ~60 MiB of hex text that compresses only about 2x.
    await source.db.query(`CREATE TABLE filler AS SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) AS a FROM generate_series(1, 450000) i`);
  });

  after(async () => {
    await lifeboat?.close();
    await source?.db.close();
    await stack?.close();
  });

  test('SIGKILL during the base backup upload: a new worker takes it again under the same id; exactly the manifest\'s parts are stored', async () => {
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('backup', { target });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'takeBaseBackup');
    const backups = join(source.repositoryPath, target, 'backups');
    // Parts are being written into the repository: the upload is under way.
    const firstAttempt = async () => join(backups, (await readdir(backups))[0]!, 'attempt-1');
    await waitFor('the first parts are in the repository', async () => existsSync(backups) && (await readdir(backups)).length > 0 && existsSync(await firstAttempt()) && (await readdir(await firstAttempt())).length > 1);
    first.kill('SIGKILL');
    await first.exited;
    lifeboat.spawnWorker();

    backup = (await handle.result()) as BackupResult;
    assert.equal(backup.kind, 'postgres-base');
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, takeBaseBackup: 1, writeManifest: 1, verifyStoredBackup: 1, awaitArchivedStop: 1, recordAudit: 1 });
    assert.equal(runs.attempts.resolveTarget, 1, 'resolve-target ran once');
    assert.equal(runs.attempts.takeBaseBackup, 2, 'the interrupted backup ran again on the new worker');

    const manifest = await source.repository.readManifest(target, backup.backupId);
    const prefix = `${source.repository.backupDir(target, backup.backupId)}/`;
    assert.deepEqual(
      (await source.repository.backend.list(prefix)).map((o) => o.key.slice(prefix.length)).sort(),
      [...manifest.objects.map((o) => o.name), 'manifest.json'].sort(),
      'the repository holds exactly the manifest\'s parts',
    );
    assert.ok(manifest.objects.every((o) => o.name.startsWith('attempt-2/')), 'the second attempt stored under names of its own');
    // Under backups/ only: wal-push (archive_command) may be storing a segment under wal/ right now.
    assert.equal(await source.repository.backend.discardIncomplete(`${target}/backups/`), 0, 'no half-written part is left');
    assert.deepEqual(await readdir(backups), [backup.backupId], 'one backup, under the id the workflow chose');
  });

  test('SIGKILL while the recovered cluster replays WAL: a new worker resumes the recovery; the result is exact', async () => {
    assert.ok(backup, 'the base backup of the previous test');
    // Several archived segments after the backup, so replay takes a while.
    for (let chunk = 0; chunk < 6; chunk++) {
      log.push(...(await commitRows(source.db, chunk * 10 + 1, 10)));
      await switchAndArchive(source, target);
    }
    const k = 15 + Math.floor(Math.random() * 30);
    const time = timeBetween(log[k - 1]!, log[k]!);

    await lifeboat.killSpawnedWorkers();
    const worker = lifeboat.spawnWorker();
    const handle = await lifeboat.start('pitr', { target, recoveryTarget: { kind: 'time', time } });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'recoverToTarget', 120_000);
    const dataDir = join(source.recoveryDir, `${target}-pitr-${handle.workflowId}`);
    await waitFor('the recovering server runs', () => existsSync(join(dataDir, 'postmaster.pid')));
    worker.kill('SIGKILL');
    await worker.exited;
    lifeboat.spawnWorker();

    const result = (await handle.result()) as PitrResult;
    try {
      assert.equal(result.backupId, backup.backupId);
      assert.equal(result.cluster.dataDir, dataDir);
      assert.deepEqual(await recoveredIds(result.cluster), log.slice(0, k).map((c) => c.id), 'exactly the rows committed at or before the target');
      assert.equal(result.reached.lastTransactionTime, log[k - 1]!.time);
      const runs = await activityRuns(lifeboat.client, handle.workflowId);
      assert.deepEqual(runs.scheduled, { resolveTarget: 1, chooseRecoveryBase: 1, restoreBaseBackup: 1, recoverToTarget: 1, writeReport: 1, recordAudit: 1 });
      assert.equal(runs.attempts.chooseRecoveryBase, 1, 'the choice was not made again');
      assert.equal(runs.attempts.restoreBaseBackup, 1, 'the base backup was not fetched again');
      assert.equal(runs.attempts.recoverToTarget, 2, 'the interrupted recovery ran again on the new worker');
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
  });
});
