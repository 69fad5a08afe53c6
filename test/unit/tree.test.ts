/**
 * Directory-tree backups (src/tree/), below the runbooks: a tree packed into tar parts and an
 * index in a real fs repository, restored whole or by --path (downloading only the parts it
 * needs), and crafted malicious backups refused entry by entry before anything is written
 * outside the destination.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { LifeboatError } from '../../src/errors.js';
import { createCompressor } from '../../src/pipeline/compress.js';
import { FsBackend } from '../../src/repository/fs/backend.js';
import { Repository } from '../../src/repository/repository.js';
import { storeInEvery } from '../../src/repository/store.js';
import { assertSafeEntries, entryNamers, selectEntries, treeIndexFormat, type TreeEntry } from '../../src/tree/entry.js';
import { packTree, type PackInput } from '../../src/tree/pack.js';
import { restoreTree, type TreeBackup } from '../../src/tree/restore.js';
import { carryOver } from '../../src/tree/swap.js';
import { CountingBackend } from '../helpers/counting-backend.js';

const compression = { level: 3, threads: 1 };

/** Every entry under dir: type, mode, mtime (ms), size, content hash, link target. */
async function describeTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    const stats = await lstat(path);
    const type = stats.isDirectory() ? 'dir' : stats.isSymbolicLink() ? `link->${await readlink(path)}` : `file ${createHash('sha256').update(await readFile(path)).digest('hex').slice(0, 12)}`;
    out[name] = `${type} ${(stats.mode & 0o7777).toString(8)}${stats.isSymbolicLink() ? '' : ` ${Math.floor(stats.mtimeMs)}`}`;
  }
  return out;
}

function isUnsafe(name: RegExp) {
  return (error: unknown) => error instanceof LifeboatError && error.type === 'UnsafeEntry' && name.test(error.message);
}

describe('directory-tree backups', () => {
  let dir: string;
  let root: string;
  let repository: Repository;
  let counting: CountingBackend;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-tree-unit-'));
    root = join(dir, 'myapp');
    await mkdir(join(root, 'conf', 'sites'), { recursive: true });
    await mkdir(join(root, 'cache'));
    await mkdir(join(root, 'empty'));
    await writeFile(join(root, 'conf', 'app.yaml'), 'listen: 8080\n');
    await writeFile(join(root, 'conf', 'sites', 'a.conf'), 'server a;\n');
    await writeFile(join(root, 'tls.key'), randomBytes(2000));
    await chmod(join(root, 'tls.key'), 0o600);
    await writeFile(join(root, 'big.bin'), randomBytes(3 << 20));
    await writeFile(join(root, 'cache', 'junk.tmp'), 'junk');
    await symlink('conf/app.yaml', join(root, 'current.yaml'));
    await link(join(root, 'conf', 'app.yaml'), join(root, 'app.yaml.hardlink'));
    await chmod(join(root, 'conf', 'sites'), 0o750);
    await utimes(join(root, 'conf', 'app.yaml'), 1_600_000_000.25, 1_600_000_000.25);
    counting = new CountingBackend(new FsBackend({ path: join(dir, 'repository') }));
    repository = new Repository('local', counting);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function backup(id: string, overrides: Partial<PackInput> = {}): Promise<TreeBackup> {
    const packed = await packTree({
      repositories: [repository],
      target: 'app',
      backupId: id,
      roots: [{ name: 'myapp', path: root }],
      selection: { include: ['**'], exclude: ['cache/**'] },
      symlinksOutsideRoot: 'refuse',
      partSizeBytes: 1 << 20,
      compression,
      key: undefined,
      attempt: 1,
      name: entryNamers.byName,
      ...overrides,
    });
    return { id, target: 'app', encryption: null, parts: packed.parts, index: packed.index };
  }

  test('a tree restores whole: contents, modes, mtimes, symlinks and hard links as they were, excluded paths left out', async () => {
    const stored = await backup('20260101T000000Z-000001');
    assert.ok(stored.parts.length >= 2, `the 3 MiB file and the rest make several 1 MiB parts (${stored.parts.length})`);
    const into = join(dir, 'restored-whole');
    await mkdir(into);
    const restored = await restoreTree({ repositories: [repository], backup: stored, key: undefined, destinations: { myapp: join(into, 'myapp') }, symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false });
    assert.equal(restored.partsFetched, stored.parts.length);
    const expected = await describeTree(root);
    delete expected['cache'];
    delete expected['cache/junk.tmp'];
    assert.deepEqual(await describeTree(join(into, 'myapp')), expected);
    const [a, b] = await Promise.all([stat(join(into, 'myapp', 'conf', 'app.yaml')), stat(join(into, 'myapp', 'app.yaml.hardlink'))]);
    assert.equal(a.ino, b.ino, 'the hard link is a hard link again');
  });

  test('a --path restore downloads the index and only the part that holds what it names', async () => {
    const stored = await backup('20260101T000000Z-000002');
    const into = join(dir, 'restored-part');
    await mkdir(into);
    counting.take();
    const restored = await restoreTree({ repositories: [repository], backup: stored, key: undefined, destinations: { myapp: join(into, 'myapp') }, paths: ['myapp/conf/sites/*.conf'], symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false });
    assert.equal(counting.take().get, 2, 'one GET for the index, one for the part');
    assert.equal(restored.partsFetched, 1);
    assert.deepEqual(Object.keys(await describeTree(join(into, 'myapp'))), ['conf', 'conf/sites', 'conf/sites/a.conf']);
    assert.equal((await stat(join(into, 'myapp', 'conf', 'sites'))).mode & 0o777, 0o750, 'directories above get their recorded mode');
    await assert.rejects(
      restoreTree({ repositories: [repository], backup: stored, key: undefined, destinations: { myapp: join(into, 'other') }, paths: ['myapp/nothing/*'], symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false }),
      (error: unknown) => error instanceof LifeboatError && error.type === 'InvalidInput' && /matches no entry/.test(error.message),
    );
  });

  test('a file too large to read twice that changes while it is read is stored as read and reported by name', async () => {
    let appended = false;
    const packed = await packTree({
      repositories: [repository],
      target: 'app',
      backupId: '20260101T000000Z-000003',
      roots: [{ name: 'myapp', path: root }],
      selection: { include: ['big.bin'], exclude: [] },
      symlinksOutsideRoot: 'refuse',
      partSizeBytes: 64 << 20,
      compression,
      key: undefined,
      attempt: 1,
      name: entryNamers.byName,
      rereadableBytes: 1 << 20,
      // The first chunk of big.bin is read: a writer appends to it now.
      onProgress: () => {
        if (appended) return;
        appended = true;
        appendFileSync(join(root, 'big.bin'), 'more');
      },
    });
    assert.deepEqual(packed.changedWhileRead, ['myapp/big.bin']);
  });

  test('a symlink pointing outside its root fails the backup, unless the target keeps such links', async () => {
    await symlink('/etc/hostname', join(root, 'outside'));
    try {
      await assert.rejects(backup('20260101T000000Z-000004'), isUnsafe(/"myapp\/outside" is a symlink pointing outside its root/));
      const kept = await backup('20260101T000000Z-000005', { symlinksOutsideRoot: 'keep' });
      const into = join(dir, 'restored-kept');
      await mkdir(into);
      await assert.rejects(
        restoreTree({ repositories: [repository], backup: kept, key: undefined, destinations: { myapp: join(into, 'myapp') }, symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false }),
        isUnsafe(/"myapp\/outside" is a symlink to "\/etc\/hostname" outside its root/),
      );
      await restoreTree({ repositories: [repository], backup: kept, key: undefined, destinations: { myapp: join(into, 'myapp') }, symlinksOutsideRoot: 'keep', name: entryNamers.byName, secret: false, owners: false });
      assert.equal(await readlink(join(into, 'myapp', 'outside')), '/etc/hostname', 'kept as a link, not followed');
    } finally {
      await rm(join(root, 'outside'));
    }
  });

  test('a restore in place carries over what the restore does not cover, as the same files', async () => {
    const live = join(dir, 'carry-live');
    const staging = join(dir, 'carry-staging');
    await mkdir(join(live, 'cache'), { recursive: true });
    await mkdir(join(live, 'conf'), { recursive: true });
    await mkdir(join(staging, 'conf'), { recursive: true });
    await writeFile(join(live, 'cache', 'x.tmp'), 'cached');
    await writeFile(join(live, 'conf', 'new.yaml'), 'made after the backup');
    await writeFile(join(live, 'notes.log'), 'log');
    const carried = await carryOver('carry-live', live, staging, { include: ['**'], exclude: ['cache/**', '**/*.log'] });
    assert.equal(carried, 3, 'the excluded directory with its file, and the excluded file');
    assert.equal((await stat(join(staging, 'cache', 'x.tmp'))).ino, (await stat(join(live, 'cache', 'x.tmp'))).ino);
    await assert.rejects(stat(join(staging, 'conf', 'new.yaml')), 'a covered file the backup lacks is not carried over');
    const partial = join(dir, 'carry-partial');
    await mkdir(partial);
    assert.equal(await carryOver('carry-live', live, partial, { include: ['**'], exclude: [], paths: ['carry-live/conf/**'] }), 3, 'with --path, everything it does not name');
  });
});

/** A crafted backup: one tar part (made here, entry by entry) and its index, stored in a fresh repository. */
async function craftedBackup(dir: string, entries: Array<{ header: Parameters<tar.Pack['entry']>[0]; content?: Buffer; index: Omit<TreeEntry, 'part' | 'uid' | 'gid' | 'mtimeMs'> }>): Promise<{ repository: Repository; backup: TreeBackup }> {
  const repository = new Repository('crafted', new FsBackend({ path: join(dir, 'crafted-repository') }));
  const pack = tar.pack();
  for (const entry of entries) pack.entry({ mode: 0o644, ...entry.header }, entry.content ?? Buffer.alloc(0));
  pack.finalize();
  const id = `20260101T000000Z-${randomBytes(3).toString('hex')}`;
  const store = (name: string, source: Readable) =>
    storeInEvery([repository], [source, createCompressor(compression)], { keyOf: (r) => r.objectKey('app', id, name), action: () => `storing ${name}` });
  const part = await store('part-000000.tar.zst', pack as unknown as Readable);
  const index = { format: treeIndexFormat, entries: entries.map((entry) => ({ uid: 0, gid: 0, mtimeMs: 0, part: 0, ...entry.index })) };
  const indexObject = await store('index.json.zst', Readable.from([Buffer.from(JSON.stringify(index))]));
  return {
    repository,
    backup: { id, target: 'app', encryption: null, parts: [{ name: 'part-000000.tar.zst', ...part, entries: entries.length, tarBytes: 0 }], index: { name: 'index.json.zst', ...indexObject } },
  };
}

describe('a crafted backup never writes outside its destination', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-tree-evil-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const sha = (content: string) => createHash('sha256').update(content).digest('hex');
  const rootEntry = { header: { name: 'app', type: 'directory' as const }, index: { path: 'app', type: 'directory' as const, size: 0 } };
  const file = (name: string, content = 'pwned') => ({ header: { name, type: 'file' as const }, content: Buffer.from(content), index: { path: name, type: 'file' as const, size: content.length, sha256: sha(content) } });

  const cases: Array<{ what: string; entries: Parameters<typeof craftedBackup>[1]; refused: RegExp }> = [
    { what: 'a ".." path', entries: [rootEntry, file('app/../../escaped')], refused: /"app\/..\/..\/escaped" has a ".." segment/ },
    { what: 'an absolute path', entries: [rootEntry, file('/tmp/lifeboat-absolute-escape')], refused: /"\/tmp\/lifeboat-absolute-escape" is an absolute path/ },
    {
      what: 'a symlink that points out',
      entries: [rootEntry, { header: { name: 'app/etc', type: 'symlink', linkname: '../../../../etc' }, index: { path: 'app/etc', type: 'symlink', size: 0, linkTarget: '../../../../etc' } }],
      refused: /"app\/etc" is a symlink to "..\/..\/..\/..\/etc" outside its root/,
    },
    {
      what: 'a device file',
      entries: [rootEntry, { header: { name: 'app/null', type: 'character-device', devmajor: 1, devminor: 3 }, index: { path: 'app/null', type: 'device' as never, size: 0 } }],
      refused: /"app\/null" is a device/,
    },
    {
      what: 'a hard link to outside',
      entries: [rootEntry, { header: { name: 'app/passwd', type: 'link', linkname: '/etc/passwd' }, index: { path: 'app/passwd', type: 'hardlink', size: 0, linkTarget: '/etc/passwd', sha256: sha('x') } }],
      refused: /"app\/passwd" is a hard link to something that is not a file restored before it/,
    },
    {
      what: 'an entry of another root',
      entries: [rootEntry, file('other/x')],
      refused: /"other\/x" belongs to no root of this target/,
    },
  ];

  for (const { what, entries, refused } of cases) {
    test(`${what} is refused, naming the entry, and nothing is written`, async () => {
      const { repository, backup } = await craftedBackup(dir, entries);
      const into = join(dir, `into-${randomBytes(3).toString('hex')}`);
      await mkdir(into);
      await assert.rejects(
        restoreTree({ repositories: [repository], backup, key: undefined, destinations: { app: join(into, 'app') }, symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false }),
        isUnsafe(refused),
      );
      assert.deepEqual(await readdir(into), [], 'nothing was written, not even inside the destination');
    });
  }

  test('a secrets restore names a refused entry by its number only', async () => {
    const { repository, backup } = await craftedBackup(dir, [rootEntry, file('app/../very-secret-name')]);
    await assert.rejects(
      restoreTree({ repositories: [repository], backup, key: undefined, destinations: { app: join(dir, 'secret-into') }, symlinksOutsideRoot: 'refuse', name: entryNamers.byNumber, secret: true, owners: false }),
      (error: unknown) => isUnsafe(/^entry #2 has a ".." segment/)(error) && !/very-secret-name/.test((error as Error).message),
    );
  });

  test('a file written through a symlink of the same backup is refused, even when links out of the root are kept', async () => {
    const { repository, backup } = await craftedBackup(dir, [
      rootEntry,
      { header: { name: 'app/out', type: 'symlink', linkname: dir }, index: { path: 'app/out', type: 'symlink', size: 0, linkTarget: dir } },
      file('app/out/planted'),
    ]);
    const into = join(dir, 'through');
    await mkdir(into);
    await assert.rejects(
      restoreTree({ repositories: [repository], backup, key: undefined, destinations: { app: join(into, 'app') }, symlinksOutsideRoot: 'keep', name: entryNamers.byName, secret: false, owners: false }),
      isUnsafe(/"app\/out\/planted" would be written through a symlink of the backup/),
    );
    await assert.rejects(stat(join(dir, 'planted')), 'nothing appeared where the link points');
  });

  test('a tar entry that the index does not list makes the copy corrupt', async () => {
    const { repository, backup } = await craftedBackup(dir, [rootEntry, file('app/listed')]);
    const index = (await import('../../src/tree/restore.js')).readIndex;
    assert.equal((await index([repository], backup, undefined)).index.entries.length, 2);
    const smuggled = await craftedBackup(dir, [rootEntry, file('app/listed'), file('app/smuggled')]);
    // The second backup's tar with the first backup's index (two entries listed, three in the tar).
    const forged: TreeBackup = { ...smuggled.backup, parts: [{ ...smuggled.backup.parts[0]!, entries: 2 }] };
    const indexBytes = await readFile(join(dir, 'crafted-repository', 'app', 'backups', backup.id, 'index.json.zst'));
    await writeFile(join(dir, 'crafted-repository', 'app', 'backups', smuggled.backup.id, 'index.json.zst'), indexBytes);
    const into = join(dir, 'smuggled-into');
    await mkdir(into);
    await assert.rejects(
      restoreTree({ repositories: [smuggled.repository], backup: { ...forged, index: backup.index }, key: undefined, destinations: { app: join(into, 'app') }, symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false }),
      /"app\/smuggled", which its index does not list/,
    );
  });
});

describe('what a restore selects', () => {
  const entry = (path: string, type: TreeEntry['type'] = 'file', extra: Partial<TreeEntry> = {}): TreeEntry => ({ path, type, size: 0, uid: 0, gid: 0, mtimeMs: 0, part: 0, ...extra });
  const entries = [entry('r', 'directory'), entry('r/a', 'directory'), entry('r/a/x'), entry('r/a/y'), entry('r/b', 'directory'), entry('r/b/z', 'hardlink', { linkTarget: 'r/a/x' })];

  test('a glob selects what it matches, the directories above, everything under a matched directory, and the files hard links share', () => {
    assert.deepEqual(selectEntries(entries, ['r/a/y']).map((e) => e.path), ['r', 'r/a', 'r/a/y']);
    assert.deepEqual(selectEntries(entries, ['r/a']).map((e) => e.path), ['r', 'r/a', 'r/a/x', 'r/a/y']);
    assert.deepEqual(selectEntries(entries, ['/r/b/*']).map((e) => e.path), ['r', 'r/a', 'r/a/x', 'r/b', 'r/b/z']);
  });

  test('the safety rules accept a well-formed index', () => {
    assert.doesNotThrow(() => assertSafeEntries(entries, { roots: ['r'], symlinksOutsideRoot: 'refuse', name: entryNamers.byName }));
  });
});
