/**
 * The retention and verify runbooks with their worker SIGKILLed mid-step: a new worker finishes
 * the run, the steps before are not run again, and at no moment is a backup listed whose objects
 * are gone.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { RetentionResult } from '../../workflows/retention.js';
import type { VerifyReport } from '../../workflows/verify.js';
import { writeFixtureBackups } from '../helpers/backup-fixture.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { stepOfKilledWorker, waitForStep } from '../helpers/steps.js';

describe('retention and verify survive a killed worker', () => {
  let lifeboat: Lifeboat;
  let local: Repository;
  let s3: Repository;

  before(async () => {
    lifeboat = await createLifeboat('retention-kill');
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        archive: { type: 'sqlite', path: join(lifeboat.dir, 'archive.sqlite'), repositories: ['s3'], retention: { keepLast: 1 } },
        big: { type: 'sqlite', path: join(lifeboat.dir, 'big.sqlite'), repositories: ['local'] },
      }),
    );
    const config = loadConfig(lifeboat.configPath);
    local = new Repository('local', openBackend(config.repositories.local!));
    s3 = new Repository('s3', openBackend(config.repositories.s3!, lifeboat.env));
  });

  after(async () => {
    await lifeboat?.close();
  });

  test('a retention run whose worker is killed mid-deletion never lists a broken backup, and a new worker finishes it', async () => {
    // Many objects per backup in S3: removing them takes seconds, time to kill.
    const manifests = await writeFixtureBackups(s3, 'archive', { count: 30, objectsPerBackup: 60, objectBytes: 16, concurrency: 24 });
    await lifeboat.killSpawnedWorkers();
    const first = lifeboat.spawnWorker();

    // Watches the repository the whole time: every listed backup must have all its objects.
    let watching = true;
    const broken: string[] = [];
    const watcher = (async () => {
      while (watching) {
        const { manifests: listed } = await s3.listBackups('archive');
        for (const manifest of listed) {
          const stored = new Set((await s3.backend.listFolder(`${s3.backupDir('archive', manifest.id)}/`)).objects.map((o) => o.key));
          // Listed, then removed meanwhile, is fine: only a manifest that is still there with objects missing is broken.
          const missing = manifest.objects.filter((o) => !stored.has(s3.objectKey('archive', manifest.id, o.name)));
          if (missing.length && (await s3.readManifestIfAny('archive', manifest.id))) broken.push(`${manifest.id} lacks ${missing.length} objects`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    const handle = await lifeboat.start('retention', { target: 'archive' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'applyRetention' && (s.phase === 'delete objects' || s.phase === 'withdraw manifests') && (s.bytesDone ?? 0) > 0, 120_000);
    first.kill('SIGKILL');
    await first.exited;
    assert.equal(await stepOfKilledWorker(lifeboat.client, handle.workflowId), 'applyRetention');
    lifeboat.spawnWorker();
    const result = (await handle.result()) as RetentionResult;
    watching = false;
    await watcher;

    assert.deepEqual(broken, [], 'no backup was ever listed with objects missing');
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, planRetention: 1, applyRetention: 1, writeReport: 1, recordAudit: 1 });
    assert.equal(runs.attempts.applyRetention, 2, 'the interrupted removal ran again on the new worker');
    assert.deepEqual(await s3.listBackupFolders('archive'), [manifests[0]!.id], 'only the kept backup is left, with nothing of the others');
    assert.deepEqual((await s3.backend.list('archive/retention/')).map((o) => o.key), [], 'no deletion left half done');
    assert.equal(result.plan.repositories[0]!.backups.filter((b) => b.action === 'remove').length, 29);
    assert.equal(result.outcome[0]!.removed.length + result.outcome[0]!.finishedEarlier.length >= 1, true);
  });

  test('a verify whose worker is killed mid-read goes on from where it stopped on a new worker', async () => {
    const manifests: Manifest[] = await writeFixtureBackups(local, 'big', { count: 6, objectsPerBackup: 1, objectBytes: 4 * 1024 * 1024 });
    await lifeboat.killSpawnedWorkers();
    const first = lifeboat.spawnWorker();
    // 24 MiB at 6 MiB/s: about four seconds of reading.
    const handle = await lifeboat.start('verify', { target: 'big', readData: 'full', readLimitMiBPerSecond: 6 });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'verifyStoredRepository' && s.phase === 'read' && (s.bytesDone ?? 0) > 5 * 1024 * 1024);
    first.kill('SIGKILL');
    await first.exited;
    assert.equal(await stepOfKilledWorker(lifeboat.client, handle.workflowId), 'verifyStoredRepository');
    lifeboat.spawnWorker();
    const report = (await handle.result()) as VerifyReport;

    assert.equal(report.valid, true);
    const repository = report.repositories[0]!;
    assert.equal(repository.objectsRead, 6, 'every object counted once');
    assert.ok(repository.resumedAfter !== null && manifests.some((m) => repository.resumedAfter === local.objectKey('big', m.id, 'db.sqlite.zst')), `went on after a key it had read (${repository.resumedAfter})`);
    assert.ok(repository.backups.every((b) => b.lastReadInFullAt !== null));
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, verifyStoredRepository: 1, writeReport: 1, recordAudit: 1 });
    assert.equal(runs.attempts.verifyStoredRepository, 2);
  });
});
