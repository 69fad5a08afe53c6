/**
 * files runbooks survive a killed worker: a backup whose worker is SIGKILLed while it packs is
 * finished by a new worker (the pack step starts again under the same backup id, nothing
 * half-written stays); a restore in place whose worker dies while it fetches finishes with the live
 * root as backed up and the old one as safety copy, no staging left; a drill cancelled mid-fetch
 * removes its scratch copy.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { openBackend } from '../../src/repository/open.js';
import { timelineQuery } from '../../workflows/queries.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { assertCompensationAfterSteps, stepOfKilledWorker, waitForStep } from '../helpers/steps.js';

/** Name -> sha256 of every file under dir. */
async function contents(dir: string): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const entry of (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile())) {
    const path = join(entry.parentPath, entry.name);
    state[path.slice(dir.length + 1)] = createHash('sha256').update(await readFile(path)).digest('hex');
  }
  return state;
}

// A high zstd level makes packing 48 MiB take seconds on this machine: time to kill it.
const slowCompression = { level: 15, threads: 2 };

describe('files runbooks survive a killed worker', () => {
  let lifeboat: Lifeboat;
  let root: string;

  before(async () => {
    lifeboat = await createLifeboat('files-kill');
    root = join(lifeboat.dir, 'live', 'media');
    for (let dir = 0; dir < 4; dir++) {
      await mkdir(join(root, `d${dir}`), { recursive: true });
      // Text-like content (base64 of random bytes): it compresses, slowly at level 15.
      for (let file = 0; file < 6; file++) await writeFile(join(root, `d${dir}`, `f${file}.txt`), randomBytes(1536 << 10).toString('base64'));
    }
    await lifeboat.writeConfig(lifeboat.baseConfig({ media: { type: 'files', roots: [root], partSizeMiB: 8, repositories: ['local', 's3'] } }, { compression: slowCompression }));
  });

  after(async () => {
    await lifeboat?.close();
  });

  test('a backup whose worker is SIGKILLed mid-pack is finished by a new worker, without redoing completed steps or leaving half-written objects', async () => {
    await lifeboat.killSpawnedWorkers();
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('backup', { target: 'media' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'packFilesAndUpload' && (s.bytesDone ?? 0) > 0);
    first.kill('SIGKILL');
    await first.exited;
    lifeboat.spawnWorker();

    const result = (await handle.result()) as { backupId: string };
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, packFilesAndUpload: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
    assert.equal(runs.attempts.packFilesAndUpload, 2, 'the interrupted pack ran again on the new worker');

    const into = join(lifeboat.dir, 'after-kill');
    await lifeboat.run('restore', { target: 'media', backupId: result.backupId, into });
    assert.deepEqual(await contents(join(into, 'media')), await contents(root), 'the backup restores to what was packed');
    const leftovers = (await readdir(join(lifeboat.dir, 'repository'), { recursive: true })).filter((entry) => /\.tmp-|\.partial$/.test(entry));
    assert.deepEqual(leftovers, [], 'no half-written objects in the fs repository');
    const s3 = openBackend(loadConfig(lifeboat.configPath).repositories.s3!);
    assert.equal(await s3.discardIncomplete('media/'), 0, 'no unfinished multipart uploads left in S3');
  });

  test('a restore in place whose worker is SIGKILLed mid-fetch finishes: the live root as backed up, the old one kept, no staging left', async () => {
    await lifeboat.writeConfig(lifeboat.baseConfig({ media: { type: 'files', roots: [root], partSizeMiB: 8, repositories: ['local'] } }));
    await lifeboat.killSpawnedWorkers();
    const worker = lifeboat.spawnWorker();
    const backup = (await lifeboat.run('backup', { target: 'media' })) as { backupId: string };
    const atBackup = await contents(root);
    await writeFile(join(root, 'd0', 'f0.txt'), 'changed after the backup');
    await writeFile(join(root, 'made-after.txt'), 'new');
    const changed = await contents(root);

    const handle = await lifeboat.start('restore', { target: 'media', backupId: backup.backupId });
    // The fetch of 48 MiB takes about a second here: killed as soon as a worker has it.
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'fetchFilesTree');
    worker.kill('SIGKILL');
    await worker.exited;
    const interrupted = await stepOfKilledWorker(lifeboat.client, handle.workflowId);
    lifeboat.spawnWorker();
    const result = (await handle.result()) as { safetyCopy: string };

    assert.deepEqual(await contents(root), atBackup);
    assert.deepEqual(await contents(result.safetyCopy), changed);
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.scheduled.locateBackup, 1);
    assert.equal(runs.attempts[interrupted], 2, `${interrupted} ran again after the kill`);
    const beside = (await readdir(join(lifeboat.dir, 'live'))).filter((name) => name !== 'media' && !name.includes('lifeboat-safety'));
    assert.deepEqual(beside, [], 'no staging left beside the live root');
  });

  test('a drill cancelled mid-fetch still removes its scratch copy, once the fetch has stopped', async () => {
    lifeboat.spawnWorker();
    const handle = await lifeboat.start('drill', { target: 'media' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'fetchFilesTree');
    const scratch = (await handle.query(timelineQuery)).find((s) => s.name === 'prepare-scratch')?.detail;
    assert.ok(scratch);
    await handle.cancel();
    await assert.rejects(handle.result(), /cancel/i);
    assert.deepEqual((await handle.query(timelineQuery)).map((s) => [s.name, s.status]).slice(-2), [['remove-scratch', 'completed'], ['record-audit', 'completed']]);
    assert.equal(existsSync(scratch), false, 'scratch copy removed after cancellation');
    await assertCompensationAfterSteps(lifeboat.client, handle.workflowId, 'removeFilesStaging');
  });
});
