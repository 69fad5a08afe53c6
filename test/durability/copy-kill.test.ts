/**
 * The copy runbook with its worker SIGKILLed mid-copy: a new worker finishes it, the backups copied
 * before are not copied again, the objects of the interrupted one already at the destination are
 * skipped (checked by their sha256), and the destination ends holding what the source holds.
 */
import assert from 'node:assert/strict';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { CopyResult } from '../../workflows/copy.js';
import { sha256 } from '../helpers/assertions.js';
import { writeFixtureBackups } from '../helpers/backup-fixture.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { stepOfKilledWorker, waitForStep } from '../helpers/steps.js';

describe('copy survives a killed worker', () => {
  let lifeboat: Lifeboat;
  let local: Repository;
  let s3: Repository;

  before(async () => {
    lifeboat = await createLifeboat('copy-kill');
    await lifeboat.writeConfig(lifeboat.baseConfig({ big: { type: 'sqlite', path: join(lifeboat.dir, 'big.sqlite'), repositories: ['local', 's3'] } }));
    const config = loadConfig(lifeboat.configPath);
    local = new Repository('local', openBackend(config.repositories.local!));
    s3 = new Repository('s3', openBackend(config.repositories.s3!, lifeboat.env));
  });

  after(async () => {
    await lifeboat?.close();
  });

  async function stored(repository: Repository): Promise<Map<string, string>> {
    const objects = (await repository.backend.list('big/backups/')).filter((o) => !o.key.includes('/audit/'));
    const hashed = new Map<string, string>();
    for (const object of objects) hashed.set(object.key, sha256(await buffer(await repository.backend.get(object.key))));
    return hashed;
  }

  test('a copy whose worker is killed mid-backup is finished by a new worker, skipping what was copied', async () => {
    // Many objects per backup, into S3 (a put and a read-back each): copying one takes seconds, time to kill.
    const manifests = await writeFixtureBackups(local, 'big', { count: 2, objectsPerBackup: 400, objectBytes: 16 * 1024, concurrency: 8 });
    const first = lifeboat.spawnWorker();

    const handle = await lifeboat.start('copy', { target: 'big', to: 's3' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'copyBackupInto' && (s.bytesDone ?? 0) > 0 && (s.bytesDone ?? 0) < (s.bytesTotal ?? 0), 120_000);
    assert.ok((await local.backend.list('big/leases/')).length > 0, 'the copy holds a lease on the backup it reads');
    first.kill('SIGKILL');
    await first.exited;
    assert.equal(await stepOfKilledWorker(lifeboat.client, handle.workflowId), 'copyBackupInto');
    lifeboat.spawnWorker();
    const result = (await handle.result()) as CopyResult;

    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.scheduled.resolveTarget, 1);
    assert.equal(runs.scheduled.planCopy, 1);
    assert.equal(runs.scheduled.copyBackupInto, 2, 'one step per backup, none scheduled again');
    assert.equal(runs.attempts.copyBackupInto, 2, 'the interrupted backup was copied on a second attempt');
    assert.deepEqual(result.backups.map((b) => b.backupId), manifests.map((m) => m.id), 'newest first');
    assert.ok(result.backups.some((b) => b.objectsSkipped > 0), 'the second attempt skipped the objects already copied');
    assert.deepEqual(await stored(s3), await stored(local), 's3 holds every object and manifest of local, byte for byte');
    const verified = await lifeboat.run('verify', { target: 'big', readData: 'full' });
    assert.equal(verified.valid, true);
  });
});
