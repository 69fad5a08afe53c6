/**
 * Retention of a PostgreSQL target with base backups and archived WAL, against a real PostgreSQL
 * whose WAL the real `lifeboat wal-push` archives: the plan says how the recoverable window moves,
 * verification finds it moved exactly so, a recovery to a random point inside the remaining
 * window holds exactly the rows committed by then, and a point before it is out of reach.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { removeRecoveredCluster } from '../../src/postgres/recovery.js';
import { parseWalSegmentName } from '../../src/postgres/recovery-target.js';
import type { BackupResult } from '../../workflows/backup.js';
import type { RetentionResult } from '../../workflows/retention.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { archivedSource, commitRows, recoveredIds, switchAndArchive, timeBetween, type Commit, type FsArchivedSource } from '../helpers/pitr-workload.js';

const target = 'ledger';

describe('retention of base backups and archived WAL', () => {
  let lifeboat: Lifeboat;
  let source: FsArchivedSource;
  const backups: BackupResult[] = [];
  const log: Commit[] = [];
  let retention: RetentionResult;

  before(async () => {
    lifeboat = await createLifeboat('retention-pitr');
    source = await archivedSource(lifeboat, target);
    const config = lifeboat.baseConfig({
      [target]: {
        type: 'postgres',
        repositories: ['local'],
        connection: source.connection,
        method: 'base',
        base: { partSizeMiB: 1 },
        recovery: { dir: source.recoveryDir, timeoutSeconds: 120 },
        retention: { keepLast: 2 },
      },
    });
    (config.repositories as Record<string, unknown>).local = { type: 'fs', path: source.repositoryPath };
    await lifeboat.writeConfig(config);
    await lifeboat.startWorker();

    await source.db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
    backups.push(await lifeboat.run('backup', { target }));
    log.push(...(await commitRows(source.db, 1, 20)));
    await switchAndArchive(source, target);
    backups.push(await lifeboat.run('backup', { target }));
    log.push(...(await commitRows(source.db, 21, 20)));
    await switchAndArchive(source, target);
    backups.push(await lifeboat.run('backup', { target }));
    log.push(...(await commitRows(source.db, 41, 20)));
    await switchAndArchive(source, target);
  });

  after(async () => {
    await lifeboat?.close();
    await source?.db.close();
  });

  test('the plan keeps the two newest base backups and removes the WAL before the second one\'s start; verify finds the window moved exactly so', async () => {
    const before = await lifeboat.run('verify', { target });
    assert.equal(before.valid, true, JSON.stringify(before.repositories[0]!.wal?.problems));
    assert.equal(before.repositories[0]!.wal!.window!.earliest.backupId, backups[0]!.backupId);

    retention = await lifeboat.run('retention', { target });
    const plan = retention.plan.repositories[0]!;
    assert.deepEqual(plan.backups.map((b) => [b.id, b.action]), [
      [backups[2]!.backupId, 'keep'],
      [backups[1]!.backupId, 'keep'],
      [backups[0]!.backupId, 'remove'],
    ]);
    const wal = plan.wal!;
    assert.deepEqual(wal.before, before.repositories[0]!.wal!.window, 'the plan sees the window verify saw');
    assert.equal(wal.after!.earliest.backupId, backups[1]!.backupId);
    assert.equal(wal.after!.earliest.time, backups[1]!.base!.stopTime);
    assert.equal(wal.cutoff!.backupId, backups[1]!.backupId);
    assert.ok(wal.remove > 0, 'WAL before the second base backup goes');
    assert.equal(retention.outcome[0]!.wal!.removed, wal.remove, 'what was removed is what the plan said');

    const afterwards = await lifeboat.run('verify', { target });
    assert.equal(afterwards.valid, true, JSON.stringify(afterwards.repositories[0]!.wal?.problems));
    assert.deepEqual(afterwards.repositories[0]!.wal!.window, wal.after, 'the window moved exactly as the plan said');
    // Nothing before the cut is left, nothing after it is gone.
    const size = 16 * 1024 * 1024;
    const cut = parseWalSegmentName(wal.cutoff!.segment, size)!.segment;
    const names = (await source.repository.backend.list(`${target}/wal/`)).map((o) => o.key.split('/').at(-1)!.replace(/\.(zst|json)$/, ''));
    assert.ok(names.every((name) => /\.history$/.test(name) || parseWalSegmentName(name.slice(0, 24), size)!.segment >= cut));
  });

  test('a recovery to a random point inside the remaining window holds exactly the rows committed by then', async () => {
    // A point after the second base backup stopped: between two commits made after it.
    const index = randomInt(20, log.length - 1);
    const time = timeBetween(log[index]!, log[index + 1]!);
    const result = await lifeboat.run('pitr', { target, recoveryTarget: { kind: 'time', time } });
    try {
      assert.ok([backups[1]!.backupId, backups[2]!.backupId].includes(result.backupId), 'from a base backup that is kept');
      assert.deepEqual(await recoveredIds(result.cluster), log.slice(0, index + 1).map((c) => c.id));
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
  });

  test('a point before the window (before the second base backup) is out of reach now', async () => {
    const time = timeBetween(log[5]!, log[6]!);
    const handle = await lifeboat.start('pitr', { target, recoveryTarget: { kind: 'time', time } });
    const failure = await handle.result().then(
      () => assert.fail('recovery before the window should fail'),
      (error: unknown) => runbookFailure(error),
    );
    assert.equal(failure.type, 'RecoveryTargetBeforeBackup');
  });
});
