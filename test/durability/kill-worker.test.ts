import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { loadConfig } from '../../src/config/load.js';
import { timelineQuery } from '../../workflows/queries.js';
import { startTemporalDevServer } from '../../src/dev/temporal-server.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { activityRuns, createDatabase, createLifeboat, fingerprint, type Lifeboat } from '../helpers/lifeboat.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { assertCompensationAfterSteps, stepOfKilledWorker, waitForStep } from '../helpers/steps.js';

async function leftoverTempFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((entry) => /\.tmp-|\.partial$/.test(entry));
}

// A high zstd level makes a 48 MiB upload take several seconds on this machine: time to kill it.
const slowCompression = { level: 15, threads: 2 };

describe('runbooks survive a killed worker and a restarted Temporal server', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let dbPath: string;

  before(async () => {
    stack = await testStack();
    lifeboat = await createLifeboat('durability', { stack });
    dbPath = join(lifeboat.dir, 'orders.sqlite');
    createDatabase(dbPath, 48);
    await lifeboat.writeConfig(
      lifeboat.baseConfig({ orders: { type: 'sqlite', path: dbPath, repositories: ['local', 's3'] } }, { compression: slowCompression }),
    );
  });

  after(async () => {
    await lifeboat?.close();
    await stack?.close();
  });

  test('a backup whose worker is SIGKILLed mid-upload is finished by a new worker, without redoing completed steps', async () => {
    await lifeboat.killSpawnedWorkers();
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('backup', { target: 'orders' });
    // bytesDone counts bytes read from the database; the compressor and the upload trail behind it.
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'snapshotAndUpload' && (s.bytesDone ?? 0) > 0);
    first.kill('SIGKILL');
    await first.exited;
    lifeboat.spawnWorker();

    const result = (await handle.result()) as { backupId: string; sourceBytes: number };
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, snapshotAndUpload: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
    assert.equal(runs.attempts.resolveTarget, 1, 'resolve-target ran once');
    assert.equal(runs.attempts.snapshotAndUpload, 2, 'the interrupted upload ran again on the new worker');

    const manifest = await new Repository('local', openBackend(loadConfig(lifeboat.configPath).repositories.local!)).readManifest('orders', result.backupId);
    assert.match(manifest.objects[0]!.name, /^attempt-2\/db\.sqlite\.zst/, 'the second attempt stored under a name of its own');
    const restored = join(lifeboat.dir, 'after-kill.sqlite');
    await lifeboat.run('restore', { target: 'orders', backupId: result.backupId, into: restored });
    assert.deepEqual(fingerprint(restored), fingerprint(dbPath), 'the backup restores to the snapshot content');
    assert.deepEqual(await leftoverTempFiles(join(lifeboat.dir, 'repository')), [], 'no half-written objects in the repository');
    const s3 = openBackend(loadConfig(lifeboat.configPath).repositories.s3!);
    assert.equal(await s3.discardIncomplete('orders/'), 0, 'no unfinished multipart uploads left in S3');
  });

  test('a restore whose worker is SIGKILLed mid-way leaves the live database old or new at every moment, and finishes', async () => {
    const livePath = join(lifeboat.dir, 'live.sqlite');
    createDatabase(livePath, 160);
    const mark = (value: string) => {
      const db = new Database(livePath);
      db.exec(`CREATE TABLE IF NOT EXISTS marker (version TEXT); DELETE FROM marker; INSERT INTO marker VALUES ('${value}');`);
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
    };
    await lifeboat.writeConfig(lifeboat.baseConfig({ live: { type: 'sqlite', path: livePath, repositories: ['local'] } }));
    mark('new');
    const newContent = fingerprint(livePath);
    // Alone on the task queue: the worker killed below must be the one running the step.
    await lifeboat.killSpawnedWorkers();
    const worker = lifeboat.spawnWorker();
    const backup = (await lifeboat.run('backup', { target: 'live' })) as { backupId: string };
    mark('old');
    const oldContent = fingerprint(livePath);

    // Watches the live path the whole time: each look takes the file's bytes at that instant
    // (with the journal-mode bytes set to rollback, so SQLite can open the image in memory).
    const seen = new Set<string>();
    let watching = true;
    let watchError: unknown;
    const watcher = (async () => {
      while (watching) {
        const image = await readFile(livePath);
        image[18] = 1;
        image[19] = 1;
        const db = new Database(image, { readonly: true });
        try {
          assert.equal(db.pragma('quick_check', { simple: true }), 'ok');
          seen.add((db.prepare('SELECT version FROM marker').get() as { version: string }).version);
        } finally {
          db.close();
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })().catch((error: unknown) => {
      watchError = error;
    });

    const handle = await lifeboat.start('restore', { target: 'live', backupId: backup.backupId });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'fetchBackup' || s.activityType === 'checkIntegrity');
    worker.kill('SIGKILL');
    await worker.exited;
    const interrupted = await stepOfKilledWorker(lifeboat.client, handle.workflowId);
    lifeboat.spawnWorker();
    const result = (await handle.result()) as { safetyCopy: string };
    // A look at the file can take longer than the rest of the run: watch until the new database was seen.
    for (const deadline = Date.now() + 60_000; !seen.has('new') && watchError === undefined && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    watching = false;
    await watcher;
    assert.equal(watchError, undefined, `a reader saw a broken live database: ${String(watchError)}`);

    assert.deepEqual([...seen].sort(), ['new', 'old'], 'readers only ever saw the old or the new database');
    assert.deepEqual(fingerprint(livePath), newContent);
    assert.deepEqual(fingerprint(result.safetyCopy), oldContent);
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.scheduled.resolveTarget, 1);
    assert.equal(runs.scheduled.locateBackup, 1);
    assert.equal(runs.attempts[interrupted], 2, `${interrupted} ran again after the kill`);
    const leftovers = (await readdir(lifeboat.dir)).filter((name) => name.startsWith('live.sqlite.') && !name.includes('lifeboat-safety'));
    assert.deepEqual(leftovers, [], 'no staging or partial files left beside the live database');
  });

  test('a drill whose worker is SIGKILLed mid-restore is finished by a new worker, and its scratch copy is removed', async () => {
    // Big enough that fetching and checking the copy takes a while: time to kill it.
    const drillPath = join(lifeboat.dir, 'drill.sqlite');
    // 320 MiB: on a loaded machine the check of 160 MiB once finished between noticing it and the kill.
    createDatabase(drillPath, 320);
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        drilled: { type: 'sqlite', path: drillPath, repositories: ['local'], drill: { smokeChecks: [{ name: 'events', sql: 'SELECT count(*) > 0 FROM events', expect: 1 }] } },
      }),
    );
    await lifeboat.killSpawnedWorkers();
    const worker = lifeboat.spawnWorker();
    await lifeboat.run('backup', { target: 'drilled' });
    const handle = await lifeboat.start('drill', { target: 'drilled' });
    // The full integrity_check of the restored copy takes seconds: a reliable moment to kill.
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'checkIntegrity');
    worker.kill('SIGKILL');
    await worker.exited;
    const interrupted = await stepOfKilledWorker(lifeboat.client, handle.workflowId);
    lifeboat.spawnWorker();
    const report = (await handle.result()) as { passed: boolean; timeline: Array<{ name: string; detail?: string }> };
    assert.equal(report.passed, true);
    const scratch = report.timeline.find((s) => s.name === 'prepare-scratch')?.detail;
    assert.ok(scratch);
    assert.equal(existsSync(scratch), false, 'scratch copy removed');
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.scheduled.prepareScratch, 1);
    assert.equal(runs.attempts[interrupted], 2, `${interrupted} ran again after the kill`);
  });

  test('a drill cancelled mid-restore still removes its scratch copy', async () => {
    const drillPath = join(lifeboat.dir, 'cancelled-drill.sqlite');
    createDatabase(drillPath, 160);
    await lifeboat.writeConfig(lifeboat.baseConfig({ cancelled: { type: 'sqlite', path: drillPath, repositories: ['local'] } }));
    lifeboat.spawnWorker();
    await lifeboat.run('backup', { target: 'cancelled' });
    const handle = await lifeboat.start('drill', { target: 'cancelled' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'fetchBackup' || s.activityType === 'checkIntegrity');
    const description = await handle.query(timelineQuery);
    const scratch = description.find((s) => s.name === 'prepare-scratch')?.detail;
    assert.ok(scratch);
    await handle.cancel();
    await assert.rejects(handle.result(), /cancel/i);
    const timeline = (await handle.query(timelineQuery)).map((s) => [s.name, s.status]);
    // The cancelled run is still recorded in the audit log, after its cleanup.
    assert.deepEqual(timeline.slice(-2), [['remove-scratch', 'completed'], ['record-audit', 'completed']]);
    assert.equal(existsSync(scratch), false, 'scratch copy removed after cancellation');
    await assertCompensationAfterSteps(lifeboat.client, handle.workflowId, 'removeFiles');
  });

  test('a restore cancelled mid-way leaves the live database as it was and no staging file, cleaning up only once its step has stopped', async () => {
    const livePath = join(lifeboat.dir, 'cancelled-restore.sqlite');
    createDatabase(livePath, 160);
    await lifeboat.writeConfig(lifeboat.baseConfig({ 'cancelled-restore': { type: 'sqlite', path: livePath, repositories: ['local'] } }));
    lifeboat.spawnWorker();
    await lifeboat.run('backup', { target: 'cancelled-restore' });
    const writer = new Database(livePath);
    writer.exec('CREATE TABLE after_backup (x); INSERT INTO after_backup VALUES (1)');
    writer.close();
    const before = fingerprint(livePath);

    const handle = await lifeboat.start('restore', { target: 'cancelled-restore' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'fetchBackup' || s.activityType === 'checkIntegrity');
    await handle.cancel();
    await assert.rejects(handle.result(), /cancel/i);

    const timeline = (await handle.query(timelineQuery)).map((s) => [s.name, s.status]);
    assert.deepEqual(timeline.slice(-2), [['cleanup', 'completed'], ['record-audit', 'completed']]);
    await assertCompensationAfterSteps(lifeboat.client, handle.workflowId, 'removeFiles');
    assert.deepEqual(fingerprint(livePath), before, 'the live database is the one from before the restore');
    assert.deepEqual(fingerprint(livePath, 'after_backup').rows, 1, 'with the write made after the backup');
    const leftovers = (await readdir(lifeboat.dir)).filter((name) => name.startsWith('cancelled-restore.sqlite.lifeboat-'));
    assert.deepEqual(leftovers, [], 'no staging or safety file is left');
  });

  test('a backup completes when the Temporal dev server is restarted mid-run (state persisted in its db file)', async () => {
    const dbFile = join(lifeboat.dir, 'temporal-restart.db');
    let server = await startTemporalDevServer({ dbFile, uiPort: false });
    const port = Number(server.address.split(':').pop());
    const own = await createLifeboat('restart', {
      stack: { ...stack, temporalAddress: server.address, close: async () => undefined },
    });
    try {
      const ownDb = join(own.dir, 'restart.sqlite');
      createDatabase(ownDb, 48);
      await own.writeConfig(own.baseConfig({ restart: { type: 'sqlite', path: ownDb, repositories: ['local'] } }, { compression: slowCompression }));
      own.spawnWorker();
      const handle = await own.start('backup', { target: 'restart' });
      await waitForStep(own.client, handle.workflowId, (s) => s.activityType === 'snapshotAndUpload' && (s.bytesDone ?? 0) > 0);
      await server.stop();
      server = await startTemporalDevServer({ dbFile, port, uiPort: false });

      const result = (await handle.result()) as { backupId: string };
      const restored = join(own.dir, 'restored.sqlite');
      await own.run('restore', { target: 'restart', backupId: result.backupId, into: restored });
      assert.deepEqual(fingerprint(restored), fingerprint(ownDb));
    } finally {
      await own.close();
      await server.stop();
    }
  });
});
