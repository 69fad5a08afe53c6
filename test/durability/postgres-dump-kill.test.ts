/**
 * A PostgreSQL dump survives a killed worker: the worker (a child process) is SIGKILLed while the
 * dump streams into the repositories, a new worker runs the step again and finishes the backup.
 * Completed steps are not run again; the repositories hold exactly the manifest's objects (no
 * duplicated, orphaned or half-written object, no unfinished multipart upload); the local spool
 * of the killed attempt is gone; and the backup restores to the dumped content.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { waitForStep } from '../helpers/steps.js';

const passwordEnv = 'LIFEBOAT_TEST_PG_KILL_PASSWORD';
const password = 'kill-test-password';

async function tableContent(pg: TestCluster, database: string): Promise<{ rows: string; md5: string }> {
  const client = await pg.cluster.connect({ database });
  try {
    return (await client.query<{ rows: string; md5: string }>("SELECT count(*)::text AS rows, md5(string_agg(t::text, E'\\n' ORDER BY id)) AS md5 FROM events t")).rows[0]!;
  } finally {
    await client.end();
  }
}

describe('a PostgreSQL dump survives a killed worker', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let pg: TestCluster;
  let spoolDir: string;

  before(async () => {
    stack = await testStack();
    [lifeboat, pg] = await Promise.all([createLifeboat('pgdump-kill', { stack }), createTestCluster()]);
    await pg.query(`ALTER ROLE postgres PASSWORD '${password}'`);
    await pg.query('CREATE DATABASE big');
    const client = await pg.cluster.connect({ database: 'big' });
    try {
      // ~45 MiB of hex text: at zstd level 15 its upload takes seconds on this machine, time to kill it.
      await client.query(`CREATE TABLE events (id int PRIMARY KEY, a text, b text, c text);
        INSERT INTO events SELECT i, md5(i::text), md5((i * 7)::text), md5((i * 13)::text) || md5((i * 17)::text) || md5((i * 19)::text) FROM generate_series(1, 220000) i;`);
    } finally {
      await client.end();
    }
    spoolDir = join(lifeboat.dir, 'spool');
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          big: {
            type: 'postgres',
            repositories: ['local', 's3'],
            connection: { host: '127.0.0.1', port: pg.cluster.port, database: 'big', user: 'postgres', passwordEnv },
            dump: { jobs: 2, spoolDir, verify: true },
          },
        },
        { compression: { level: 15, threads: 2 } },
      ),
    );
  });

  after(async () => {
    await lifeboat?.close();
    await pg?.close();
    await stack?.close();
  });

  test('SIGKILL during the upload: a new worker finishes; no duplicated or half-written objects; the backup restores exactly', async () => {
    const first = lifeboat.spawnWorker({ [passwordEnv]: password });
    const handle = await lifeboat.start('backup', { target: 'big' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'dumpAndUpload' && s.phase === 'upload' && (s.bytesDone ?? 0) > 0);
    assert.equal((await readdir(spoolDir)).length, 1, 'the dump is spooled while it uploads');
    first.kill('SIGKILL');
    await first.exited;
    lifeboat.spawnWorker({ [passwordEnv]: password });

    const result = (await handle.result()) as { backupId: string; dump: { verified: boolean; rows: number } };
    assert.deepEqual(result.dump, { format: 'directory', tables: 1, rows: 220000, verified: true });
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, dumpAndUpload: 1, restoreDump: 1, dropRunDatabase: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
    assert.equal(runs.attempts.resolveTarget, 1, 'resolve-target ran once');
    assert.equal(runs.attempts.dumpAndUpload, 2, 'the interrupted dump ran again on the new worker');

    const config = loadConfig(lifeboat.configPath);
    const local = new Repository('local', openBackend(config.repositories.local!));
    const manifest = await local.readManifest('big', result.backupId);
    const expected = [...manifest.objects.map((o) => o.name), 'manifest.json'].sort();
    assert.ok(manifest.objects.every((o) => o.name.startsWith('attempt-2/dump/')), 'the second attempt stored under names of its own');
    for (const name of ['local', 's3']) {
      const repository = new Repository(name, openBackend(config.repositories[name]!));
      const prefix = `${repository.backupDir('big', result.backupId)}/`;
      assert.deepEqual((await repository.backend.list(prefix)).map((o) => o.key.slice(prefix.length)).sort(), expected, `${name} holds exactly the manifest's objects`);
      assert.equal(await repository.backend.discardIncomplete('big/'), 0, `${name}: no temp files or unfinished multipart uploads`);
    }
    assert.deepEqual(await readdir(spoolDir), [], 'no spool left behind, not even the killed attempt\'s');

    const restored = (await lifeboat.run('restore', { target: 'big' })) as { restoredTo: string };
    assert.deepEqual(await tableContent(pg, restored.restoredTo), await tableContent(pg, 'big'));
  });
});
