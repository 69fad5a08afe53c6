/**
 * One backup stream into several repositories when some of them fail: a repository that fails
 * (at once or mid-stream) is dropped and the others go on while minCopies remain; fewer, and the
 * store fails naming every repository. Real fs repositories; the failing one wraps one of them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import type { Backend, PutOptions } from '../../src/repository/backend.js';
import { FsBackend } from '../../src/repository/fs/backend.js';
import { Repository } from '../../src/repository/repository.js';
import { Landing, storeInEvery } from '../../src/repository/store.js';
import { sha256 } from '../helpers/assertions.js';

/** An fs backend whose puts fail once `failAfterBytes` bytes went through (0: at once). */
function failingAfter(inner: FsBackend, failAfterBytes: number): Backend {
  return Object.assign(Object.create(inner) as Backend, {
    put(key: string, body: Readable, options?: PutOptions) {
      let seen = 0;
      const breaking = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          seen += chunk.length;
          done(seen > failAfterBytes ? new Error(`disk went away after ${failAfterBytes} bytes`) : null, chunk);
        },
      });
      body.on('error', () => undefined);
      breaking.on('error', () => undefined); // the put reports it
      return inner.put(key, body.pipe(breaking), options).finally(() => body.destroy());
    },
  });
}

describe('a backup stream into repositories that may fail (Landing, storeInEvery)', () => {
  let dir: string;
  const data = randomBytes(6 * 2 ** 20 + 3);
  const source = () => Readable.from([data.subarray(0, 2 ** 20), data.subarray(2 ** 20, 4 * 2 ** 20), data.subarray(4 * 2 ** 20)]);
  const store = (into: Repository[] | Landing) =>
    storeInEvery(into, [source()], { keyOf: () => 't/backups/b/obj', action: (r) => `storing obj in repository "${r.name}"` });
  let index = 0;
  const fsRepository = (name: string) => {
    const backend = new FsBackend({ path: join(dir, `${name}-${index++}`) });
    return { repository: new Repository(name, backend), backend };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-landing-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a repository failing mid-stream is dropped, its partial upload discarded, and the others get every byte', async () => {
    const a = fsRepository('a');
    const b = fsRepository('b');
    const broken = fsRepository('broken');
    const landing = new Landing([a.repository, new Repository('broken', failingAfter(broken.backend, 3 * 2 ** 20)), b.repository], 2);
    const stored = await store(landing);
    assert.equal(stored.sha256, sha256(data));
    for (const { repository } of [a, b]) assert.ok((await buffer(await repository.backend.get('t/backups/b/obj'))).equals(data));
    assert.equal(await broken.backend.head('t/backups/b/obj'), undefined, 'nothing under the name in the repository that failed');
    assert.deepEqual(await readdir(join(dir, 'broken-2'), { recursive: true }).then((entries) => entries.filter((e) => e.includes('tmp-'))), [], 'no temp file left');
    assert.deepEqual(landing.copies().repositories, ['a', 'b']);
    assert.equal(landing.missing.length, 1);
    assert.match(landing.missing[0]!.reason, /^storing obj in repository "broken" failed: .*disk went away after 3145728 bytes/);
  });

  test('a dropped repository gets none of the backup\'s next objects', async () => {
    const a = fsRepository('a');
    const dead = new Repository('dead', failingAfter(fsRepository('dead').backend, 0));
    const landing = new Landing([dead, a.repository], 1);
    await store(landing);
    let asked = 0;
    const watched = new Repository('dead', Object.assign(Object.create(dead.backend) as Backend, { put: () => (asked++, Promise.reject(new Error('asked again'))) }));
    const again = new Landing([watched, a.repository], 1);
    again.drop(watched, new Error('dropped before'));
    await storeInEvery(again, [source()], { keyOf: () => 't/backups/b/second', action: () => 'second' });
    assert.equal(asked, 0);
  });

  test('fewer than minCopies left: the store fails naming each repository and why', async () => {
    const a = fsRepository('a');
    const landing = new Landing(
      [new Repository('x', failingAfter(fsRepository('x').backend, 0)), new Repository('y', failingAfter(fsRepository('y').backend, 2 ** 20)), a.repository],
      2,
    );
    await assert.rejects(store(landing), /the backup reached 1 of 3 repositories, and needs 2 \(minCopies\): "x": storing obj in repository "x" failed: .*; "y": storing obj in repository "y" failed: /);
  });

  test('given plain repositories, every one must store it: the first failure fails the store, named', async () => {
    const a = fsRepository('a');
    await assert.rejects(store([a.repository, new Repository('z', failingAfter(fsRepository('z').backend, 2 ** 20))]), /storing obj in repository "z" failed: .*disk went away/);
  });

  test('the source failing fails every copy alike, with the source\'s error', async () => {
    const a = fsRepository('a');
    const b = fsRepository('b');
    const failing = new Readable({ read() { this.destroy(new Error('the database went away')); } });
    await assert.rejects(storeInEvery(new Landing([a.repository, b.repository], 1), [failing], { keyOf: () => 't/x', action: () => 'x' }), /the database went away/);
  });
});
