import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { loadConfig } from '../../src/config/load.js';
import type { BlobsManifest } from '../../src/kinds/blobs/manifest.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { makeBackupId } from '../../src/backup-id.js';
import { readSharedObjects } from '../../src/repository/shared-objects.js';
import type { BackupResult } from '../../workflows/backup.js';
import type { DrillReport as DrillResult } from '../../workflows/drill.js';
import type { RetentionResult } from '../../workflows/retention.js';
import type { VerifyReport } from '../../workflows/verify.js';
import { describeTree, writeTree } from '../helpers/blob-tree.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

type BlobsResult = BackupResult & { blobs: NonNullable<BackupResult['blobs']> };

describe('blobs: a tree of uploads backed up by content, on a real Temporal server, local disk and S3', () => {
  let lifeboat: Lifeboat;
  let root: string;
  let local: Repository;
  let s3: Repository;
  const backups: BlobsResult[] = [];

  const manifestOf = (repository: Repository, id: string) => repository.readManifest('media', id) as Promise<BlobsManifest>;
  const packsIn = async (repository: Repository) => (await repository.backend.list('media/blobs/')).map((o) => o.key).sort();
  const backup = async (input: { rehash?: boolean } = {}) => {
    const result = (await lifeboat.run('backup', { target: 'media', ...input })) as BlobsResult;
    backups.push(result);
    return result;
  };
  const failureOf = async (promise: Promise<unknown>) => runbookFailure(await promise.then(() => assert.fail('expected the run to fail'), (error: unknown) => error));

  before(async () => {
    lifeboat = await createLifeboat('blobs');
    root = join(lifeboat.dir, 'uploads');
    await writeTree(root, { files: 240, totalBytes: 24 << 20, seed: 7, perDirectory: 40 });
    // Beside the generated files: an empty file, a duplicate of another file's content, a
    // symlink, a private file and an empty directory.
    await writeFile(join(root, 'empty.txt'), '');
    await writeFile(join(root, 'copy-of-f000001.bin'), await readFile(join(root, 'd000/s00/f000001.bin')));
    await symlink('d000/s00/f000002.txt', join(root, 'latest.txt'));
    await writeFile(join(root, 'private.key'), 'secret-ish', { mode: 0o600 });
    await mkdir(join(root, 'empty-dir'), { mode: 0o750 });
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        media: {
          type: 'blobs',
          path: root,
          repositories: ['local', 's3'],
          packSizeMiB: 2,
          concurrency: 4,
          drill: { rtoTargetSeconds: 300, mustExist: ['latest.txt', 'd000/s00/f000000.txt'], minFiles: 200 },
        },
      }),
    );
    const config = loadConfig(lifeboat.configPath);
    local = new Repository('local', openBackend(config.repositories.local!));
    s3 = new Repository('s3', openBackend(config.repositories.s3!));
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  test('the first backup stores every distinct content once, in packs named by their sha256, in both repositories', async () => {
    const first = await backup();
    assert.equal(first.kind, 'blobs');
    assert.equal(first.blobs.parent, null);
    assert.equal(first.blobs.readFiles, 243);
    assert.equal(first.blobs.newFiles, 243);
    // The copy has the same content as another file, and the empty file has no blob.
    const manifest = await manifestOf(local, first.backupId);
    assert.equal(manifest.source.files, 243);
    assert.equal(manifest.source.symlinks, 1);
    assert.ok(manifest.index.blobs < first.blobs.readFiles + 10, 'duplicate content is one blob');
    assert.ok(manifest.shared && manifest.shared.count > 3 && manifest.shared.added === manifest.shared.count, 'several packs, all new');
    const packs = await packsIn(local);
    assert.deepEqual(packs, await packsIn(s3), 'the same packs in both repositories');
    assert.equal(packs.length, manifest.shared.count);
    for (const object of await readSharedObjects(local, manifest)) assert.equal(object.key, `blobs/${object.sha256}`, 'a pack is named by the sha256 of its stored bytes');
  });

  test('a second backup after a few changes reads and uploads only what changed', async () => {
    const before = await packsIn(local);
    const mtimes = new Map(await Promise.all(before.map(async (key) => [key, (await stat(join(lifeboat.dir, 'repository', key))).mtimeMs] as const)));
    await appendFile(join(root, 'd000/s00/f000004.txt'), 'an edit\n');
    await writeFile(join(root, 'new-upload.jpg'), randomBytes(50_000));
    await rm(join(root, 'd000/s00/f000006.txt'));

    const second = await backup();
    assert.equal(second.blobs.parent, backups[0]!.backupId);
    assert.deepEqual(
      { read: second.blobs.readFiles, new: second.blobs.newFiles, changed: second.blobs.changedFiles, removed: second.blobs.removedFiles, newBlobs: second.blobs.newBlobs },
      { read: 2, new: 1, changed: 1, removed: 1, newBlobs: 2 },
    );
    const manifest = await manifestOf(local, second.backupId);
    assert.equal(manifest.shared?.added, 1, 'one new pack holds both new blobs');
    const after = await packsIn(local);
    assert.deepEqual(after.filter((key) => !before.includes(key)).length, 1, 'exactly one object was added');
    for (const [key, mtime] of mtimes) assert.equal((await stat(join(lifeboat.dir, 'repository', key))).mtimeMs, mtime, `${key} was not written again`);
    assert.ok(second.storedBytes < 200_000, `stored ${second.storedBytes} bytes`);
  });

  test('--rehash reads every file and finds nothing new to store', async () => {
    const rehashed = await backup({ rehash: true });
    assert.equal(rehashed.blobs.rehash, true);
    assert.equal(rehashed.blobs.readFiles, 243);
    assert.equal(rehashed.blobs.newBlobs, 0);
    assert.equal((await manifestOf(s3, rehashed.backupId)).shared?.added, 0);
  });

  test('any backup restores in full from one repository alone (--into), modes, mtimes and links included', async () => {
    const expected = await describeTree(root);
    // Only S3 left: the local repository is gone.
    await rm(join(lifeboat.dir, 'repository'), { recursive: true, force: true });
    const into = join(lifeboat.dir, 'restored');
    const result = await lifeboat.run('restore', { target: 'media', into });
    assert.equal(result.restoredTo, into);
    assert.deepEqual(await describeTree(into), expected);

    // The first backup too, from its own index: the file removed since is there, the new one is not.
    const firstInto = join(lifeboat.dir, 'restored-first');
    await lifeboat.run('restore', { target: 'media', backupId: backups[0]!.backupId, into: firstInto });
    const first = await describeTree(firstInto);
    assert.ok(first.has('d000/s00/f000006.txt') && !first.has('new-upload.jpg'));
    assert.equal((await stat(join(firstInto, 'private.key'))).mode & 0o777, 0o600);
  });

  test('a damaged pack is read from the other repository; with no good copy the restore fails with ChecksumMismatch and writes nothing', async () => {
    // The local repository again, as a full copy of S3.
    const fresh = await backup();
    assert.equal(fresh.blobs.readFiles, 243, 'the packs of the parent are missing in the local repository: every file is read again');
    const manifest = await manifestOf(s3, fresh.backupId);
    const [victim] = (await readSharedObjects(s3, manifest)).sort((a, b) => b.sizeBytes - a.sizeBytes);
    assert.ok(victim);
    const path = join(lifeboat.dir, 'repository', victim.fullKey);
    const bytes = await readFile(path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(path, bytes);

    const drill = (await lifeboat.run('drill', { target: 'media' })) as DrillResult;
    assert.equal(drill.passed, true, JSON.stringify(drill.checks));
    assert.ok(drill.timeline.some((step) => step.name === 'restore-tree' && /local, s3|s3, local/.test(step.detail ?? '')), 'the pack came from S3');

    await lifeboat.writeConfig(lifeboat.baseConfig({ media: { type: 'blobs', path: root, repositories: ['local'], packSizeMiB: 2 } }));
    const into = join(lifeboat.dir, 'restored-damaged');
    const failure = await failureOf(lifeboat.run('restore', { target: 'media', into }));
    assert.equal(failure.type, 'ChecksumMismatch', failure.message);
    assert.match(failure.message, new RegExp(victim.key));
    assert.equal(await stat(into).then(() => true, () => false), false, 'nothing at the destination');
    assert.equal(await stat(`${into}.partial`).then(() => true, () => false), false, 'no partial tree left');
    await writeFile(path, (bytes[Math.floor(bytes.length / 2)]! ^= 0x01, bytes));
  });

  test('a drill restores the newest backup into scratch, checks every blob and the configured paths, and removes the scratch copy', async () => {
    await lifeboat.writeConfig(
      lifeboat.baseConfig({ media: { type: 'blobs', path: root, repositories: ['local', 's3'], packSizeMiB: 2, drill: { mustExist: ['latest.txt', 'missing.txt'] } } }),
    );
    const drill = (await lifeboat.run('drill', { target: 'media' })) as DrillResult;
    assert.equal(drill.passed, false);
    assert.deepEqual(drill.checks.map((check) => [check.name, check.passed]), [
      ['every file restored, every blob sha256 matched', true],
      ['latest.txt exists', true],
      ['missing.txt exists', false],
    ]);
    assert.ok(drill.timeline.some((step) => step.name === 'remove-scratch' && step.status === 'completed'));
  });

  test('restore in place keeps the live tree as a safety copy and swaps the restored one in', async () => {
    const expected = await describeTree(root);
    await writeFile(join(root, 'written-after-the-backup.txt'), 'not in the backup');
    const result = await lifeboat.run('restore', { target: 'media' });
    assert.equal(result.restoredTo, root);
    assert.ok(result.safetyCopy);
    assert.deepEqual(await describeTree(root), expected);
    assert.ok((await readdir(result.safetyCopy)).includes('written-after-the-backup.txt'));
    await rm(result.safetyCopy, { recursive: true });
  });

  test('verify reads each pack once per repository, in the same rotating subsets, and names a damaged or missing pack in every backup that uses it', async () => {
    await lifeboat.writeConfig(lifeboat.baseConfig({ media: { type: 'blobs', path: root, repositories: ['local', 's3'], packSizeMiB: 2 } }));
    const packs = await packsIn(s3);
    const ids = await s3.listBackupIds('media');
    const ownObjects = 2 * ids.length; // each backup's index and listing

    // Two runs of half the data each read every pack and every index exactly once.
    const halves = [(await lifeboat.run('verify', { target: 'media', readData: '1/2' })) as VerifyReport, (await lifeboat.run('verify', { target: 'media', readData: '1/2' })) as VerifyReport];
    const inS3 = halves.map((report) => report.repositories.find((r) => r.repository === 's3')!);
    assert.ok(halves.every((report) => report.valid));
    assert.equal(inS3[0]!.objectsRead + inS3[1]!.objectsRead, packs.length + ownObjects);
    assert.ok(inS3[1]!.backups.every((b) => b.valid && b.lastReadInFullAt !== null), 'every backup read in full over the two runs');

    // A flipped byte in a pack of the local repository: every backup there that uses it is damaged, S3's copies are not.
    const manifest = await manifestOf(local, (await local.listBackupIds('media'))[0]!);
    const [victim] = await readSharedObjects(local, manifest);
    const path = join(lifeboat.dir, 'repository', victim!.fullKey);
    const bytes = await readFile(path);
    bytes[7]! ^= 0x01;
    await writeFile(path, bytes);
    const flipped = (await lifeboat.run('verify', { target: 'media', readData: 'full' })) as VerifyReport;
    assert.equal(flipped.valid, false);
    const localReport = flipped.repositories.find((r) => r.repository === 'local')!;
    assert.equal(localReport.objectsRead, manifest.shared!.count + 2, 'each pack read once');
    assert.match(localReport.backups[0]!.problems.join('\n'), new RegExp(`${victim!.fullKey}: read back as sha256`));
    assert.equal(localReport.backups[0]!.lastReadInFullAt, null);
    assert.ok(flipped.repositories.find((r) => r.repository === 's3')!.valid);
    bytes[7]! ^= 0x01;
    await writeFile(path, bytes);

    // A missing pack is found without reading data (one listing of the packs).
    await rename(path, `${path}.away`);
    const missing = (await lifeboat.run('verify', { target: 'media' })) as VerifyReport;
    assert.deepEqual(missing.repositories.find((r) => r.repository === 'local')!.backups[0]!.problems, [`${victim!.fullKey}: missing`]);
    await rename(`${path}.away`, path);
    assert.equal(((await lifeboat.run('verify', { target: 'media', readData: 'full' })) as VerifyReport).valid, true);
  });

  test('retention removes the older backups, then the packs no retained backup references; a backup running meanwhile defers the sweep', async () => {
    await lifeboat.writeConfig(lifeboat.baseConfig({ media: { type: 'blobs', path: root, repositories: ['local', 's3'], packSizeMiB: 2, retention: { keepLast: 1 } } }));
    const ids = await s3.listBackupIds('media');
    assert.ok(ids.length > 1);
    const newest = await manifestOf(s3, ids[0]!);
    const referenced = new Set((await readSharedObjects(s3, newest)).map((object) => object.fullKey));
    const stale = (await packsIn(s3)).filter((key) => !referenced.has(key));
    assert.ok(stale.length > 0, 'the older backups had packs of their own');

    // A backup running now (its folder has no manifest yet) may be storing packs: the sweep waits.
    const running = makeBackupId(new Date(), 'abc');
    await s3.backend.put(`media/backups/${running}/attempt-1/in-progress`, Readable.from([Buffer.from('{}')]));
    const first = (await lifeboat.run('retention', { target: 'media' })) as RetentionResult;
    const planned = first.plan.repositories.find((r) => r.repository === 's3')!;
    assert.deepEqual(planned.backups.filter((b) => b.action === 'remove').map((b) => b.id).sort(), ids.slice(1).sort());
    assert.equal(planned.shared?.freed.count, stale.length, 'the plan says which packs the sweep frees');
    const outcome = first.outcome.find((o) => o.repository === 's3')!;
    assert.deepEqual(outcome.removed.sort(), ids.slice(1).sort());
    assert.match(outcome.shared?.deferred ?? '', new RegExp(`backup ${running} has no manifest yet`));
    assert.deepEqual((await packsIn(s3)).filter((key) => !referenced.has(key)), stale, 'no pack removed while a backup may be storing');

    // Once it is gone, the next run sweeps (nothing else to remove: the unreferenced packs are the work).
    await s3.backend.delete(`media/backups/${running}/attempt-1/in-progress`);
    const second = (await lifeboat.run('retention', { target: 'media' })) as RetentionResult;
    assert.equal(second.decision, 'applied');
    const swept = second.outcome.find((o) => o.repository === 's3')!.shared!;
    assert.deepEqual({ removed: swept.removed, deferred: swept.deferred }, { removed: stale.length, deferred: null });
    assert.deepEqual((await packsIn(s3)).sort(), [...referenced].sort());

    const into = join(lifeboat.dir, 'restored-after-sweep');
    await lifeboat.run('restore', { target: 'media', backupId: newest.id, into });
    assert.equal((await describeTree(into)).size, (await describeTree(root)).size);
  });

  test('encrypted backups: the index and packs are encrypted, and a restore without the key fails with EncryptionKeyUnavailable', async () => {
    const keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    const target = { type: 'blobs', path: root, repositories: ['local', 's3'], packSizeMiB: 2 };
    await lifeboat.writeConfig(lifeboat.baseConfig({ media: target }, { encryption: { keyFile } }));
    const encrypted = await backup();
    assert.equal(encrypted.blobs.parent, null, 'a backup with another key reuses nothing');
    const manifest = await manifestOf(local, encrypted.backupId);
    assert.equal(manifest.index.object, 'attempt-1/index.jsonl.zst.enc');
    const [pack] = await readSharedObjects(local, manifest);
    assert.equal((await readFile(join(lifeboat.dir, 'repository', pack!.fullKey))).subarray(0, 7).toString('latin1'), 'LBENC1\n');
    const into = join(lifeboat.dir, 'restored-encrypted');
    await lifeboat.run('restore', { target: 'media', into });
    assert.deepEqual(await describeTree(into), await describeTree(root));

    await lifeboat.writeConfig(lifeboat.baseConfig({ media: target }));
    const failure = await failureOf(lifeboat.run('restore', { target: 'media', into: join(lifeboat.dir, 'no-key') }));
    assert.equal(failure.type, 'EncryptionKeyUnavailable');
  });

  test('bad input: a missing root, an --into that exists or is inside the tree', async () => {
    await lifeboat.writeConfig(lifeboat.baseConfig({ media: { type: 'blobs', path: root, repositories: ['local'] }, gone: { type: 'blobs', path: join(lifeboat.dir, 'nope'), repositories: ['local'] } }));
    const missing = await failureOf(lifeboat.run('backup', { target: 'gone' }));
    assert.equal(missing.type, 'SourceNotFound');
    assert.match(missing.message, /nope does not exist/);
    assert.deepEqual(await local.backend.list('gone/backups/'), [], 'nothing left behind');
    assert.deepEqual(await local.backend.list('gone/blobs/'), []);
    assert.equal((await local.backend.list('gone/audit/')).length, 1, 'the failed run is in the audit log');

    const exists = await failureOf(lifeboat.run('restore', { target: 'media', into: join(lifeboat.dir, 'restored') }));
    assert.equal(exists.type, 'InvalidInput');
    assert.match(exists.message, /already exists/);
    const inside = await failureOf(lifeboat.run('restore', { target: 'media', into: join(root, 'nested') }));
    assert.equal(inside.type, 'InvalidInput');
    assert.match(inside.message, /inside the live tree/);
  });
});
