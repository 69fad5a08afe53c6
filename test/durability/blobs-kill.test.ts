import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import type { BlobsManifest } from '../../src/kinds/blobs/manifest.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { describeTree, writeTree } from '../helpers/blob-tree.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { stepOfKilledWorker, waitForStep } from '../helpers/steps.js';

// A high zstd level makes the packs of a 64 MiB tree take several seconds here: time to kill.
const slowCompression = { level: 15, threads: 1 };

describe('blobs runbooks survive a killed worker', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let root: string;
  let backupId: string;

  before(async () => {
    stack = await testStack();
    lifeboat = await createLifeboat('blobs-kill', { stack });
    root = join(lifeboat.dir, 'uploads');
    await writeTree(root, { files: 1500, totalBytes: 64 << 20, seed: 3 });
    await lifeboat.writeConfig(
      lifeboat.baseConfig({ media: { type: 'blobs', path: root, repositories: ['local', 's3'], packSizeMiB: 4, concurrency: 2 } }, { compression: slowCompression }),
    );
  });

  after(async () => {
    await lifeboat?.close();
    await stack?.close();
  });

  test('a backup whose worker is SIGKILLed while it reads and packs is finished by a new worker, and restores in full', async () => {
    await lifeboat.killSpawnedWorkers();
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('backup', { target: 'media' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'backupBlobTree' && s.phase === 'read' && (s.bytesDone ?? 0) > 8 << 20);
    first.kill('SIGKILL');
    await first.exited;
    assert.equal(await stepOfKilledWorker(lifeboat.client, handle.workflowId), 'backupBlobTree');
    lifeboat.spawnWorker();

    const result = (await handle.result()) as { backupId: string; blobs: { readFiles: number } };
    backupId = result.backupId;
    assert.equal(result.blobs.readFiles, 1500, 'the new attempt read the whole tree (nothing of the killed attempt is trusted)');
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, backupBlobTree: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
    assert.equal(runs.attempts.backupBlobTree, 2, 'the interrupted step ran again on the new worker');
    const s3 = openBackend(loadConfig(lifeboat.configPath).repositories.s3!);
    const manifest = (await new Repository('s3', s3).readManifest('media', backupId)) as BlobsManifest;
    assert.deepEqual(manifest.objects.map((object) => object.name).sort(), ['attempt-2/index.jsonl.zst', 'attempt-2/shared-objects.jsonl'], 'the second attempt stored under names of its own');
    assert.deepEqual((await s3.list(`media/backups/${backupId}/attempt-1/`)).map((o) => o.key), [], 'what the killed attempt stored in the folder is gone');
    assert.equal(await s3.discardIncomplete('media/'), 0, 'no unfinished multipart uploads left in S3');
  });

  test('a restore whose worker is SIGKILLed mid-way is finished by a new worker; the destination only ever appears whole', async () => {
    const into = join(lifeboat.dir, 'restored');
    await lifeboat.killSpawnedWorkers();
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('restore', { target: 'media', backupId, into });
    // Killed as soon as a worker has the step: on a quiet machine the whole 64 MiB restore takes about
    // a second, less than the time its first progress heartbeat may take to reach the server.
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'restoreBlobTree');
    first.kill('SIGKILL');
    await first.exited;
    assert.equal(await stepOfKilledWorker(lifeboat.client, handle.workflowId), 'restoreBlobTree');
    assert.equal(await stat(into).then(() => true, () => false), false, 'no destination before the tree is whole');
    lifeboat.spawnWorker();
    await handle.result();
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.attempts.restoreBlobTree, 2);
    assert.deepEqual(await describeTree(into), await describeTree(root));
    assert.equal(await stat(`${into}.partial`).then(() => true, () => false), false);
  });
});
