import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { makeBackupId } from '../../src/backup-id.js';
import { FsBackend } from '../../src/repository/fs/backend.js';
import { Repository } from '../../src/repository/repository.js';
import { censusOfSharedObjects, sweepSharedObjects, unreferencedShared } from '../../src/repository/shared-objects.js';
import { emptyVerifyState, lastReadInFullAt } from '../../src/verify/state.js';

/** Shared objects (blobs' packs) are removed only when no backup folder's listing references them, and never while a backup may be storing some. */
describe('shared objects: census, what retention would free, and the sweep', () => {
  let dir: string;
  let repository: Repository;
  const pack = (n: number) => `blobs/${String(n).repeat(64).slice(0, 64)}`;
  const put = (key: string, body: string) => repository.backend.put(`t/${key}`, Readable.from([Buffer.from(body)]));
  const listing = (...packs: number[]) => packs.map((n) => `${JSON.stringify({ key: pack(n), sizeBytes: 10, sha256: String(n).repeat(64).slice(0, 64), addedBy: 'x' })}\n`).join('');
  const old = (hoursAgo: number, hex: string) => makeBackupId(new Date(Date.now() - hoursAgo * 3_600_000), hex);
  const a = old(100, 'aaa');
  const b = old(90, 'bbb');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-shared-objects-'));
    repository = new Repository('local', new FsBackend({ path: dir }));
    for (const n of [1, 2, 3, 4]) await put(pack(n), '0123456789');
    // a: packs 1 and 2 (its listing in an attempt's sub-folder); b: packs 2 and 3; pack 4: nobody's.
    await put(`backups/${a}/attempt-1/shared-objects.jsonl`, listing(1, 2));
    await put(`backups/${a}/manifest.json`, '{}');
    await put(`backups/${b}/attempt-2/shared-objects.jsonl`, listing(2, 3));
    await put(`backups/${b}/manifest.json`, '{}');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the census finds every listing, in any attempt folder; what a removal frees is what only the removed backups reference', async () => {
    const census = await censusOfSharedObjects(repository, 't');
    assert.equal(census.stored.size, 4);
    assert.deepEqual([...census.referencedBy.get(`t/${pack(2)}`)!].sort(), [a, b].sort());
    assert.deepEqual(census.unfinished, []);
    assert.deepEqual(unreferencedShared(census), { now: { count: 1, bytes: 10 }, afterRemoval: { count: 1, bytes: 10 } });
    assert.deepEqual(unreferencedShared(census, new Set([a])), { now: { count: 1, bytes: 10 }, afterRemoval: { count: 2, bytes: 20 } }, 'pack 1 only; pack 2 is b\'s too');
  });

  test('a backup folder without a manifest younger than the grace period defers the sweep, unless retention is removing it', async () => {
    const running = makeBackupId(new Date(), 'ccc');
    await put(`backups/${running}/attempt-1/in-progress`, '{}');
    const deferred = await sweepSharedObjects(repository, 't', { graceHours: 48 });
    assert.match(deferred.deferred ?? '', new RegExp(`${running} has no manifest yet`));
    assert.deepEqual(deferred.removed, []);
    assert.equal((await sweepSharedObjects(repository, 't', { graceHours: 48, removing: new Set([running]) })).deferred, null);
    await put(pack(4), '0123456789');

    // The same folder, seen 49 hours later: a dead upload, no reason to wait.
    const later = await sweepSharedObjects(repository, 't', { graceHours: 48, now: new Date(Date.now() + 49 * 3_600_000) });
    assert.deepEqual(later.removed, [`t/${pack(4)}`]);
    assert.equal(later.removedBytes, 10);
    await repository.backend.delete(`t/backups/${running}/attempt-1/in-progress`);
  });

  test('a backup whose manifest is gone still holds its packs while its listing is there', async () => {
    await repository.backend.delete(`t/backups/${a}/manifest.json`);
    const swept = await sweepSharedObjects(repository, 't', { graceHours: 48 });
    assert.equal(swept.deferred, null, 'older than the grace period');
    assert.deepEqual(swept.removed, []);
    await repository.backend.delete(`t/backups/${a}/attempt-1/shared-objects.jsonl`);
    assert.deepEqual((await sweepSharedObjects(repository, 't', { graceHours: 48 })).removed, [`t/${pack(1)}`]);
  });

  test('a backup with shared objects is read in full only once every one of them has been read back', () => {
    const manifest = { id: b, objects: [{ name: 'attempt-2/index.jsonl.zst', sizeBytes: 1, sha256: 'f'.repeat(64) }], shared: { listing: 'attempt-2/shared-objects.jsonl', count: 2, sizeBytes: 20, added: 1, addedBytes: 10 } };
    const state = emptyVerifyState('t');
    state.backups[b] = { checkedAt: '2026-12-06T10:00:00.000Z', valid: true, objectsReadAt: { 'attempt-2/index.jsonl.zst': '2026-12-06T10:00:00.000Z' }, sharedReadAt: null };
    assert.equal(lastReadInFullAt(state, manifest), null);
    state.backups[b]!.sharedReadAt = '2026-12-05T10:00:00.000Z';
    assert.equal(lastReadInFullAt(state, manifest), '2026-12-05T10:00:00.000Z', 'the oldest read counts');
    assert.equal(lastReadInFullAt(state, { id: b, objects: manifest.objects }), '2026-12-06T10:00:00.000Z', 'a backup without shared objects: its own objects');
  });
});
