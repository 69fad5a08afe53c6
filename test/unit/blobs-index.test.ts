import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { readIndex, storeIndex, type IndexEntry } from '../../src/kinds/blobs/tree-index.js';
import { FsBackend } from '../../src/repository/fs/backend.js';
import { Repository } from '../../src/repository/repository.js';
import { readSharedObjects } from '../../src/repository/shared-objects.js';
import { lifeboatError } from '../helpers/assertions.js';

describe('blobs index and shared-object listings read back only what is safe', () => {
  let dir: string;
  let repository: Repository;
  const compression = { level: 3, threads: 1 };
  const entry = (p: string): IndexEntry => ({ p, t: 'f', z: 1, m: 0o644, u: 0, g: 0, mt: 0, i: 1, c: ['a'.repeat(64)] });
  const blobs = [{ b: 'a'.repeat(64), o: `blobs/${'b'.repeat(64)}`, s: 0, n: 1 }];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-blobs-index-'));
    repository = new Repository('local', new FsBackend({ path: dir }));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('an index round-trips, encrypted or not', async () => {
    for (const key of [undefined, randomBytes(32)]) {
      const object = await storeIndex([repository], 't', 'b1', { entries: [entry('a/b.jpg')], blobs, blobCount: 1 }, { key, compression });
      const index = await readIndex(repository, 't', 'b1', object, key);
      assert.deepEqual(index.entries, [entry('a/b.jpg')]);
      assert.equal(index.blobs.get('a'.repeat(64))?.o, `blobs/${'b'.repeat(64)}`);
    }
  });

  test('an entry whose path leaves the root is BackupCorrupt, named', async () => {
    for (const path of ['../etc/passwd', '/etc/passwd', 'a/../../x', 'a//b', '']) {
      const object = await storeIndex([repository], 't', 'b2', { entries: [entry(path)], blobs, blobCount: 1 }, { key: undefined, compression });
      await assert.rejects(readIndex(repository, 't', 'b2', object, undefined), lifeboatError('BackupCorrupt', /not a path inside the root/));
    }
  });

  test('an index whose stored bytes differ from the manifest is ChecksumMismatch', async () => {
    const object = await storeIndex([repository], 't', 'b3', { entries: [entry('x')], blobs, blobCount: 1 }, { key: undefined, compression });
    await assert.rejects(readIndex(repository, 't', 'b3', { ...object, sha256: 'c'.repeat(64) }, undefined), lifeboatError('ChecksumMismatch'));
  });

  test('a listing that names an object inside a backup folder, or is not the one the manifest hashed, is refused', async () => {
    const write = async (lines: string) => {
      const body = Buffer.from(lines);
      await repository.backend.put('t/backups/b4/shared-objects.jsonl', Readable.from([body]));
      const { createHash } = await import('node:crypto');
      return { name: 'shared-objects.jsonl', sizeBytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
    };
    const manifest = (listing: { name: string; sizeBytes: number; sha256: string }) => ({
      id: 'b4',
      target: 't',
      objects: [listing],
      shared: { listing: listing.name, count: 1, sizeBytes: 1, added: 0, addedBytes: 0 },
    });
    const inside = await write(`${JSON.stringify({ key: 'backups/b1/index.jsonl.zst', sizeBytes: 1, sha256: 'd'.repeat(64), addedBy: 'b4' })}\n`);
    await assert.rejects(readSharedObjects(repository, manifest(inside)), lifeboatError('BackupCorrupt', /inside a backup folder/));
    const good = await write(`${JSON.stringify({ key: `blobs/${'d'.repeat(64)}`, sizeBytes: 1, sha256: 'd'.repeat(64), addedBy: 'b4' })}\n`);
    assert.equal((await readSharedObjects(repository, manifest(good)))[0]?.fullKey, `t/blobs/${'d'.repeat(64)}`);
    await assert.rejects(readSharedObjects(repository, manifest({ ...good, sha256: 'e'.repeat(64) })), lifeboatError('ChecksumMismatch'));
  });
});
