/**
 * What reading a target's state costs a repository, and what it reads when a pointer is missing
 * or stale. A real fs repository in a temp directory, wrapped to count what is asked of it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { readRepositoryState } from '../../src/state/repository-facts.js';
import { writeFixtureBackups } from '../helpers/backup-fixtures.js';
import { CountingBackend } from '../helpers/counting-backend.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function repositoryWith(backups: number, objectsPerBackup = 3): Promise<{ repository: Repository; counting: CountingBackend; ids: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-state-reads-'));
  dirs.push(dir);
  const counting = new CountingBackend(openBackend({ type: 'fs', path: dir }));
  const repository = new Repository('local', counting);
  const ids = await writeFixtureBackups(repository, 'orders', backups, { objectsPerBackup });
  counting.take();
  return { repository, counting, ids };
}

describe('reading the state of a target from a repository', () => {
  test('costs the same requests whether the repository holds 2 backups or 60, and no listing', async () => {
    const few = await repositoryWith(2);
    const many = await repositoryWith(60);
    const stateOfFew = await readRepositoryState({ repository: few.repository, target: 'orders', type: 'sqlite' });
    const stateOfMany = await readRepositoryState({ repository: many.repository, target: 'orders', type: 'sqlite' });
    assert.equal(stateOfFew.newestBackup?.id, few.ids.at(-1));
    assert.equal(stateOfMany.newestBackup?.id, many.ids.at(-1));
    const [countsFew, countsMany] = [few.counting.take(), many.counting.take()];
    assert.deepEqual(countsMany, countsFew);
    // The marker (a list of one key) and its manifest, four report copies, and a list of drill reports (none yet).
    assert.deepEqual({ get: countsMany.get, head: countsMany.head, list: countsMany.list, listedKeys: countsMany.listedKeys }, { get: 5, head: 0, list: 2, listedKeys: 1 });
  });

  test('the newest-backup marker moves forward only, whatever order concurrent writers finish in', async () => {
    const { repository, ids } = await repositoryWith(12, 1);
    assert.deepEqual(await repository.latestBackupIds('orders'), [ids.at(-1)], 'one marker left, the newest');
    const older = await repository.readManifest('orders', ids[0]!);
    await repository.writeManifest(older);
    assert.deepEqual(await repository.latestBackupIds('orders'), [ids.at(-1)], 'a late write of an older backup does not take it back');
  });

  test('a marker of a backup that is gone (withdrawn) falls back to the listing and finds the newest one left', async () => {
    const { repository, counting, ids } = await repositoryWith(4, 1);
    await repository.withdrawBackup('orders', ids.at(-1)!);
    counting.take();
    const state = await readRepositoryState({ repository, target: 'orders', type: 'sqlite' });
    assert.equal(state.error, null);
    assert.equal(state.newestBackup?.id, ids.at(-2));
    assert.ok(counting.take().list >= 2, 'the backups were listed');
  });

  test('a repository without a marker (written before markers existed) is listed', async () => {
    const { repository, ids } = await repositoryWith(3, 1);
    for (const id of await repository.latestBackupIds('orders')) await repository.backend.delete(`${repository.latestBackupPrefix('orders')}${id}`);
    const state = await readRepositoryState({ repository, target: 'orders', type: 'sqlite' });
    assert.equal(state.newestBackup?.id, ids.at(-1));
  });

  test('reports: the newest of each runbook and the newest that passed; an old report written late does not replace a newer one', async () => {
    const { repository } = await repositoryWith(1, 1);
    const drill = (startedAt: string, passed: boolean) => ({ target: 'orders', workflowId: `drill-orders-${startedAt}`, startedAt, passed, backupId: null, rto: { seconds: 12, targetSeconds: 60, met: true }, rpo: null, failure: passed ? null : { type: 'SmokeCheckFailed', message: 'no rows' } });
    await repository.writeReport('orders', 'a', drill('2026-11-20T00:00:00.000Z', true));
    await repository.writeReport('orders', 'b', { ...drill('2026-11-21T00:00:00.000Z', false), runbook: 'drill' });
    await repository.writeReport('orders', 'c', drill('2026-11-19T00:00:00.000Z', true));
    const verify = { runbook: 'verify', target: 'orders', workflowId: 'verify-orders-1', finishedAt: '2026-11-21T01:00:00.000Z', valid: false, repositories: [{ repository: 'local', valid: false, backups: [{ backupId: 'x', valid: false, problems: ['sha256 mismatch'], lastReadInFullAt: null }, { backupId: 'y', valid: true, problems: [], lastReadInFullAt: '2026-11-21T01:00:00.000Z' }, { backupId: 'z', valid: true, problems: [], lastReadInFullAt: null }], wal: { window: null, gaps: [] } }] };
    await repository.writeReport('orders', 'v', verify);
    const state = await readRepositoryState({ repository, target: 'orders', type: 'sqlite' });
    assert.equal(state.error, null);
    assert.equal(state.lastDrill?.startedAt, '2026-11-21T00:00:00.000Z');
    assert.equal(state.lastDrill.passed, false);
    assert.deepEqual(state.lastDrill.failure, { type: 'SmokeCheckFailed', message: 'no rows' });
    assert.equal(state.lastPassedDrill?.startedAt, '2026-11-20T00:00:00.000Z');
    assert.deepEqual(state.lastDrill.rto, { seconds: 12, objectiveSeconds: 60, met: true });
    assert.deepEqual(state.lastVerify, { workflowId: 'verify-orders-1', finishedAt: '2026-11-21T01:00:00.000Z', valid: false, backupsChecked: 3, damaged: [{ backupId: 'x', problems: ['sha256 mismatch'] }], walGaps: 0 });
    assert.equal(state.lastPassedVerify, null);
    assert.deepEqual(state.newestVerifiedBackup, { id: 'y', verifiedAt: '2026-11-21T01:00:00.000Z', by: 'verify' });
  });

  test('a report that is not one is named as unreadable, and the other facts are still read', async () => {
    const { repository, ids } = await repositoryWith(1, 1);
    await repository.writeReport('orders', 'odd', { runbook: 'verify', finishedAt: 'yesterday' });
    const state = await readRepositoryState({ repository, target: 'orders', type: 'sqlite' });
    assert.match(state.error ?? '', /latest-verify\.json is not a verify report \(finishedAt/);
    assert.equal(state.newestBackup?.id, ids[0]);
  });
});
