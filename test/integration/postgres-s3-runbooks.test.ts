/**
 * The PostgreSQL runbooks with S3 as the only repository: the server archives WAL into versitygw
 * with `lifeboat wal-push` (credentials in its environment), the backup runbook streams the base
 * backup there (multipart parts), and point-in-time recovery fetches both from S3 alone: the
 * recovered server's restore_command (`lifeboat wal-fetch`, run as the server user) gets the
 * credentials from the worker through the server's environment, never through history.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeRecoveredCluster } from '../../src/postgres/recovery.js';
import type { BackupResult } from '../../workflows/backup.js';
import type { PitrResult } from '../../workflows/pitr.js';
import { serialize } from '../helpers/assertions.js';
import { createLifeboat, s3SecretKeyEnv, type Lifeboat } from '../helpers/lifeboat.js';
import { archivedSource, commitRows, recoveredIds, switchAndArchive, timeBetween, type ArchivedSource, type Commit } from '../helpers/pitr-workload.js';

const target = 'orders';

describe('PostgreSQL base backup and PITR with an S3 repository only', () => {
  let lifeboat: Lifeboat;
  let source: ArchivedSource;
  let backup: BackupResult;
  const log: Commit[] = [];
  let backupWorkflowId: string;

  before(async () => {
    lifeboat = await createLifeboat('pg-s3');
    source = await archivedSource(lifeboat, target, { archive: 's3' });
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        [target]: {
          type: 'postgres',
          repositories: ['s3'],
          connection: source.connection,
          method: 'base',
          recovery: { dir: source.recoveryDir, timeoutSeconds: 120 },
        },
      }),
    );
    await lifeboat.startWorker();
    await source.db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
    // Bulk beside the ledger: the base backup spans several multipart parts of the repository (5 MiB).
    await source.db.query("CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS filler FROM generate_series(1, 200000) g");
    const started = await lifeboat.start('backup', { target });
    backupWorkflowId = started.workflowId;
    backup = (await started.result()) as BackupResult;
    log.push(...(await commitRows(source.db, 1, 30)));
    await switchAndArchive(source, target);
  });

  after(async () => {
    await lifeboat?.close();
    await source?.db.close();
  });

  test('the base backup is stored in S3 and read back; its WAL is archived there by wal-push', async () => {
    assert.equal(backup.kind, 'postgres-base');
    assert.deepEqual(backup.repositories, ['s3']);
    assert.deepEqual(backup.timeline.map((step) => [step.name, step.status]).at(-1), ['check-archive', 'completed']);
    const manifest = await source.repository.readManifest(target, backup.backupId);
    assert.equal(manifest.kind, 'postgres-base');
    for (const object of manifest.objects) {
      assert.equal((await source.repository.backend.head(source.repository.objectKey(target, backup.backupId, object.name)))?.sizeBytes, object.sizeBytes, object.name);
    }
    assert.ok(backup.storedBytes > 5 << 20, `larger than one multipart part (${backup.storedBytes} bytes)`);
  });

  test('pitr to a time, from S3 alone: exactly the rows committed at or before it; the S3 secret the recovered server needed is in no history', async () => {
    const k = 5 + Math.floor(Math.random() * 20);
    const handle = await lifeboat.start('pitr', { target, recoveryTarget: { kind: 'time', time: timeBetween(log[k - 1]!, log[k]!) } });
    const result = (await handle.result()) as PitrResult;
    try {
      assert.equal(result.backupId, backup.backupId);
      assert.deepEqual(await recoveredIds(result.cluster), log.slice(0, k).map((c) => c.id));
      assert.equal(result.reached.lastTransactionTime, log[k - 1]!.time);
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
    for (const workflowId of [backupWorkflowId, handle.workflowId]) {
      const text = serialize(await lifeboat.client.workflow.getHandle(workflowId).fetchHistory());
      assert.ok(text.includes(s3SecretKeyEnv), `${workflowId}: payloads were searched as text (they name the variable)`);
      assert.equal(text.includes(lifeboat.env[s3SecretKeyEnv]!), false, `${workflowId}: the S3 secret is not in its history`);
    }
  });

  test('pitr to the latest archived point through the CLI', async () => {
    const cli = await lifeboat.cli(['pitr', target, '--latest', '--wait', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as PitrResult;
    try {
      assert.deepEqual(await recoveredIds(result.cluster), log.map((c) => c.id));
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
  });
});
