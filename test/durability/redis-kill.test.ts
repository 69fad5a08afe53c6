/**
 * Redis runbooks survive a killed worker: the worker (a child process) is SIGKILLed while a backup
 * streams the RDB into the repositories, and while a restore fetches and checks the RDB beside the
 * live one; a new worker runs the interrupted step again and finishes. Completed steps are not run
 * again; the repositories hold exactly the manifest's objects; no staged file is left; the server
 * ends up with the backup's data.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { filesUnder } from '../helpers/assertions.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { createTestRedis, type TestRedis } from '../helpers/redis.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { waitForStep } from '../helpers/steps.js';

describe('Redis runbooks survive a killed worker', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let redis: TestRedis;
  let backupId: string;
  const keys = 600_000;

  before(async () => {
    stack = await testStack();
    [lifeboat, redis] = await Promise.all([createLifeboat('redis-kill', { stack }), createTestRedis()]);
    // About 25 MiB of RDB: at zstd level 15 its upload takes seconds, and redis-check-rdb reads it in about a second.
    await redis.call('DEBUG', 'POPULATE', String(keys), 'key', '32');
    await redis.call('SET', 'marker', 'backed-up');
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          cache: {
            type: 'redis',
            repositories: ['local', 's3'],
            connection: { host: '127.0.0.1', port: redis.port, passwordEnv: redis.passwordEnv },
            hooks: { stop: redis.stopCommand, start: redis.startCommand },
          },
        },
        { compression: { level: 15, threads: 2 } },
      ),
    );
  });

  after(async () => {
    await lifeboat?.close();
    await redis?.close();
    await stack?.close();
  });

  test('SIGKILL while the RDB streams: a new worker streams it again; the repositories hold exactly the manifest\'s objects', async () => {
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('backup', { target: 'cache' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'streamRdbAndUpload' && (s.bytesDone ?? 0) > 0);
    first.kill('SIGKILL');
    await first.exited;
    lifeboat.spawnWorker();

    const result = (await handle.result()) as { backupId: string };
    backupId = result.backupId;
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, streamRdbAndUpload: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
    assert.equal(runs.attempts.streamRdbAndUpload, 2, 'the interrupted transfer ran again on the new worker');
    const backupDir = join(lifeboat.dir, 'repository', 'cache', 'backups', backupId);
    const manifest = JSON.parse(await readFile(join(backupDir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.source.keys, keys + 1);
    assert.deepEqual(manifest.objects.map((o: { name: string }) => o.name), ['attempt-2/dump.rdb.zst'], 'the second attempt stored under a name of its own');
    assert.deepEqual(await filesUnder(backupDir), ['attempt-2/dump.rdb.zst', 'manifest.json'], 'no half-written or duplicated object');
  });

  test('SIGKILL while a restore fetches and checks the RDB: a new worker finishes it, and the server holds the backup', async () => {
    await lifeboat.killSpawnedWorkers();
    await redis.call('SET', 'marker', 'after-the-backup');
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('restore', { target: 'cache', backupId });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'fetchRdb');
    first.kill('SIGKILL');
    await first.exited;
    assert.equal(String(await redis.call('GET', 'marker')), 'after-the-backup', 'the live server was not touched while the RDB was staged');
    lifeboat.spawnWorker();

    const result = (await handle.result()) as { safetyCopy: string | null };
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.attempts.fetchRdb, 2, 'the interrupted fetch ran again');
    assert.equal(runs.scheduled.swapRdb, 1);
    assert.equal(String(await redis.call('GET', 'marker')), 'backed-up', 'the server runs on the backup');
    assert.equal(Number(await redis.call('DBSIZE')), keys + 1);
    const names = await readdir(redis.dataDir);
    assert.deepEqual(names.filter((name) => /lifeboat-restore|\.partial$/.test(name)), [], 'no staged file is left');
    assert.ok(result.safetyCopy && names.includes(result.safetyCopy.split('/').pop()!), 'the previous RDB is kept');
  });
});
