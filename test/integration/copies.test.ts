/**
 * Copies that heal (3-2-1): a backup that lands in minCopies of its repositories while another does
 * not answer; restore reading from the first repository that serves a backup intact; and the copy
 * runbook (`lifeboat copy`) bringing a lagging repository up to date, backups and WAL, resumably.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { loadConfig } from '../../src/config/load.js';
import { openWalArchive, pushWal, walArchiveSpec, walObjectKey, walRecordKey } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { CopyInput, CopyResult } from '../../workflows/copy.js';
import { sha256, tamper } from '../helpers/assertions.js';
import { writeFixtureBaseBackup } from '../helpers/backup-fixture.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

describe('copies that heal', () => {
  let lifeboat: Lifeboat;
  let local: Repository;
  let spare: Repository;
  let config: ReturnType<Lifeboat['baseConfig']>;

  before(async () => {
    lifeboat = await createLifeboat('copies');
    const database = (name: string) => {
      const path = join(lifeboat.dir, `${name}.sqlite`);
      createDatabase(path, 1);
      return path;
    };
    // "gone" is a repository that cannot be written or read: its directory is a file.
    await writeFile(join(lifeboat.dir, 'gone'), 'not a directory');
    await mkdir(join(lifeboat.dir, 'media', 'photos'), { recursive: true });
    for (let n = 0; n < 30; n++) await writeFile(join(lifeboat.dir, 'media', 'photos', `p${n}.bin`), randomBytes(40_000 + n));
    config = lifeboat.baseConfig({
      orders: { type: 'sqlite', path: database('orders'), repositories: ['local', 's3', 'spare'] },
      shaky: { type: 'sqlite', path: database('shaky'), repositories: ['gone', 'local'], minCopies: 1 },
      strict: { type: 'sqlite', path: database('strict'), repositories: ['local', 'nobucket'] },
      empty: { type: 'sqlite', path: database('empty'), repositories: ['local', 'spare'] },
      ledger: { type: 'postgres', repositories: ['local', 'spare'] },
      media: { type: 'blobs', path: join(lifeboat.dir, 'media'), repositories: ['local', 'spare'], packSizeMiB: 1 },
    });
    const repositories = config.repositories as Record<string, unknown>;
    repositories.spare = { type: 'fs', path: join(lifeboat.dir, 'spare') };
    repositories.gone = { type: 'fs', path: join(lifeboat.dir, 'gone') };
    // "nobucket" answers, and says its bucket does not exist (a typed failure, not retried).
    repositories.nobucket = { ...(repositories.s3 as Record<string, unknown>), bucket: 'no-such-bucket' };
    await lifeboat.writeConfig(config);
    const loaded = loadConfig(lifeboat.configPath);
    local = new Repository('local', openBackend(loaded.repositories.local!));
    spare = new Repository('spare', openBackend(loaded.repositories.spare!));
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  /** Every stored object of a target in a repository (key -> sha256), leaving out what each run writes for itself. */
  async function storedObjects(repository: Repository, target: string): Promise<Map<string, string>> {
    // A blobs backup's in-progress marker is the backup run's own (it tells a sweep a backup may be storing packs), not part of the backup.
    const objects = (await repository.backend.list(`${target}/`)).filter((o) => !/\/(reports|verify|leases|audit|latest-backup)\//.test(o.key) && !o.key.endsWith('/in-progress'));
    const hashed = new Map<string, string>();
    for (const object of objects) hashed.set(object.key, sha256(await buffer(await repository.backend.get(object.key))));
    return hashed;
  }

  test('minCopies: a backup lands in the repositories that answer, the manifest and the result say where it is missing, and restore falls back past the unreachable one', async () => {
    const backup = await lifeboat.run('backup', { target: 'shaky' });
    assert.deepEqual(backup.repositories, ['local']);
    assert.equal(backup.missing?.length, 1);
    assert.equal(backup.missing![0]!.repository, 'gone');
    assert.match(backup.missing![0]!.reason, /gone|ENOTDIR|not a directory/i);
    const manifest = await local.readManifest('shaky', backup.backupId);
    assert.deepEqual(manifest.copies, ['local']);
    assert.deepEqual(manifest.missing?.map((m) => m.repository), ['gone']);

    const into = join(lifeboat.dir, 'shaky-restored.sqlite');
    const restored = await lifeboat.run('restore', { target: 'shaky', into });
    assert.equal(restored.backupId, backup.backupId);
    assert.match(restored.timeline.find((s) => s.name === 'fetch-and-verify')!.detail ?? '', /from local/);
  });

  test('a backup that lands in fewer than minCopies repositories fails and leaves nothing behind', async () => {
    await assert.rejects(lifeboat.run('backup', { target: 'strict' }), (error: unknown) => {
      const failure = runbookFailure(error);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, /no-such-bucket/);
      return true;
    });
    assert.deepEqual((await local.listBackups('strict')).manifests, []);
    assert.deepEqual(await local.backend.list('strict/backups/'), [], 'the copy that did land was discarded');
  });

  test('lifeboat copy brings a lagging repository up to date, newest first, and a second run copies nothing', async () => {
    const first = await lifeboat.run('backup', { target: 'orders' });
    const second = await lifeboat.run('backup', { target: 'orders' });
    // "spare" loses everything (a new, empty repository); then half of one backup comes back (an earlier copy cut off).
    await rm(join(lifeboat.dir, 'spare', 'orders'), { recursive: true, force: true });
    const payload = (await local.readManifest('orders', second.backupId)).objects[0]!;
    await spare.backend.put(local.objectKey('orders', second.backupId, payload.name), await local.backend.get(local.objectKey('orders', second.backupId, payload.name)));

    const cli = await lifeboat.cli(['copy', 'orders', '--to', 'spare', '--wait', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as CopyResult;
    assert.deepEqual(result.backups.map((b) => [b.backupId, b.from, b.alreadyThere]), [[second.backupId, 'local', false], [first.backupId, 'local', false]], 'newest first, from the first repository');
    assert.equal(result.backups[0]!.objectsSkipped, 1, 'the object already there with the right sha256 was not copied again');
    assert.equal(result.backups[1]!.objectsCopied, 1);
    assert.equal(result.complete, true);
    assert.match(cli.stderr, /copy of orders into spare: 2 backups copied/);
    assert.deepEqual(await storedObjects(spare, 'orders'), await storedObjects(local, 'orders'), 'spare holds what local holds, byte for byte');
    assert.equal(await spare.backend.head(spare.manifestKey('orders', first.backupId)).then((o) => o?.sizeBytes), await local.backend.head(local.manifestKey('orders', first.backupId)).then((o) => o?.sizeBytes));

    const again = await lifeboat.run('copy', { target: 'orders', to: 'spare' });
    assert.deepEqual(again.backups, []);
    assert.equal(again.alreadyThere, 2);
    assert.equal(again.timeline.find((s) => s.name === 'copy-wal')?.status, 'skipped');
  });

  test('blobs: copy brings the packs a backup references along (before its manifest), each once; the copy alone restores the tree', async () => {
    const first = await lifeboat.run('backup', { target: 'media' });
    await writeFile(join(lifeboat.dir, 'media', 'photos', 'new.bin'), randomBytes(50_000));
    const second = await lifeboat.run('backup', { target: 'media' });
    await rm(join(lifeboat.dir, 'spare', 'media'), { recursive: true, force: true });

    const result = await lifeboat.run('copy', { target: 'media', to: 'spare' });
    assert.deepEqual(result.backups.map((b) => b.backupId), [second.backupId, first.backupId]);
    const packs = async (repository: Repository) => (await repository.backend.list('media/blobs/')).map((o) => o.key).sort();
    assert.ok((await packs(local)).length >= 2, 'the second backup added a pack of its own');
    assert.deepEqual(await packs(spare), await packs(local), 'every pack, none twice');
    assert.ok(result.backups[1]!.objectsSkipped > 0, 'the older backup found the packs it shares with the newer one already there');
    assert.deepEqual(await storedObjects(spare, 'media'), await storedObjects(local, 'media'), 'spare holds what local holds, byte for byte');

    // The copy alone is enough: local gone, the tree restores from spare with every blob checked.
    await lifeboat.writeConfig({ ...lifeboat.baseConfig({ media: { type: 'blobs', path: join(lifeboat.dir, 'media'), repositories: ['spare'] } }), repositories: { spare: { type: 'fs', path: join(lifeboat.dir, 'spare') } } });
    try {
      const into = join(lifeboat.dir, 'media-from-spare');
      await lifeboat.run('restore', { target: 'media', into });
      assert.deepEqual(await readFile(join(into, 'photos', 'new.bin')), await readFile(join(lifeboat.dir, 'media', 'photos', 'new.bin')));
      assert.equal((await readdir(join(into, 'photos'))).length, 31);
    } finally {
      await lifeboat.writeConfig(config);
    }
  });

  test('a damaged first copy: restore reads the next repository, and copy takes it from there and repairs the withdrawn one', async () => {
    const backup = await lifeboat.run('backup', { target: 'orders' });
    const object = (await local.readManifest('orders', backup.backupId)).objects[0]!;
    const key = local.objectKey('orders', backup.backupId, object.name);
    await tamper(local, key);

    const into = join(lifeboat.dir, 'orders-restored.sqlite');
    const restored = await lifeboat.run('restore', { target: 'orders', backupId: backup.backupId, into });
    assert.match(restored.timeline.find((s) => s.name === 'fetch-and-verify')!.detail ?? '', /from s3/);

    // Withdrawn (verify --withdraw-damaged does this), the damaged copy is repaired from s3.
    await local.backend.delete(local.manifestKey('orders', backup.backupId));
    const copied = await lifeboat.run('copy', { target: 'orders', to: 'local' });
    assert.deepEqual(copied.backups.map((b) => [b.backupId, b.from, b.objectsCopied]), [[backup.backupId, 's3', 1]]);
    assert.equal(sha256(await buffer(await local.backend.get(key))), object.sha256, 'the damaged object was replaced by good bytes');
    assert.ok(await local.readManifestIfAny('orders', backup.backupId));
  });

  test('a source whose copy is damaged is passed over for the next one; with --from it is a ChecksumMismatch and nothing is written', async () => {
    const backup = await lifeboat.run('backup', { target: 'orders' });
    const object = (await local.readManifest('orders', backup.backupId)).objects[0]!;
    await tamper(local, local.objectKey('orders', backup.backupId, object.name));
    await rm(join(lifeboat.dir, 'spare', 'orders', 'backups', backup.backupId), { recursive: true, force: true });

    await assert.rejects(lifeboat.run('copy', { target: 'orders', to: 'spare', from: 'local' }), (error: unknown) => {
      const failure = runbookFailure(error);
      assert.equal(failure.type, 'ChecksumMismatch');
      assert.match(failure.message, /"local" is damaged/);
      return true;
    });
    assert.equal(await spare.readManifestIfAny('orders', backup.backupId), undefined, 'no manifest for a backup not copied whole');

    const result = await lifeboat.run('copy', { target: 'orders', to: 'spare' });
    const copied = result.backups.find((b) => b.backupId === backup.backupId)!;
    assert.equal(copied.from, 's3');
    assert.equal(copied.passedOver[0]!.repository, 'local');
    assert.ok(await spare.readManifestIfAny('orders', backup.backupId));
  });

  test('PostgreSQL: the WAL missing at the destination (segments and timeline history) is copied, record last, each payload checked', async () => {
    const walDir = join(lifeboat.dir, 'fake-wal');
    await mkdir(walDir, { recursive: true });
    const archive = openWalArchive(walArchiveSpec(loadConfig(lifeboat.configPath), 'ledger'), lifeboat.env);
    const names = ['000000010000000000000001', '000000010000000000000002', '00000002.history', '000000020000000000000003'];
    for (const name of names) {
      await writeFile(join(walDir, name), name.endsWith('.history') ? '1\t0/3000000\tno recovery target specified\n' : `segment ${name}`);
      await pushWal(archive, join(walDir, name));
    }
    // spare already has the first segment (it was there when it joined); the rest is missing.
    await rm(join(lifeboat.dir, 'spare', 'ledger', 'wal'), { recursive: true, force: true });
    for (const key of [walObjectKey('ledger', names[0]!), walRecordKey('ledger', names[0]!)]) await spare.backend.put(key, await local.backend.get(key));
    const base = await writeFixtureBaseBackup(local, 'ledger', { time: new Date('2026-03-01T10:00:00Z'), startLsn: '0/1000028', stopLsn: '0/1000138' });

    const result = await lifeboat.run('copy', { target: 'ledger', to: 'spare' });
    assert.deepEqual(result.backups.map((b) => [b.backupId, b.kind]), [[base.id, 'postgres-base']]);
    assert.equal(result.wal?.filesCopied, 3);
    assert.deepEqual(result.wal?.from, { local: 3 });
    assert.deepEqual(result.wal?.notCopied, []);
    assert.deepEqual(await storedObjects(spare, 'ledger'), await storedObjects(local, 'ledger'));
    const verified = await lifeboat.run('verify', { target: 'ledger', readData: 'full' });
    assert.equal(verified.repositories.find((r) => r.repository === 'spare')!.wal!.valid, true);
    await rm(walDir, { recursive: true, force: true });
  });

  test('bad input: an unknown repository, --from equal to --to, a one-repository target, nothing to copy', async () => {
    const unknown = await lifeboat.cli(['copy', 'orders', '--to', 'nowhere']);
    assert.equal(unknown.exitCode, 2);
    assert.match(unknown.stderr, /--to nowhere: target "orders" has no repository of that name \(its repositories: local, s3, spare\)/);
    const same = await lifeboat.cli(['copy', 'orders', '--to', 'spare', '--from', 'spare']);
    assert.equal(same.exitCode, 2);
    assert.match(same.stderr, /--from and --to both name repository "spare"/);
    const noTo = await lifeboat.cli(['copy', 'orders']);
    assert.equal(noTo.exitCode, 2);
    assert.doesNotMatch(`${unknown.stderr}${same.stderr}${noTo.stderr}`, /started copy/);

    // Started another way (a schedule, the UI): the run fails with a typed error, and writes nothing.
    const failsWith = async (input: CopyInput, type: string, message: RegExp) =>
      assert.rejects(lifeboat.run('copy', input), (error: unknown) => {
        const failure = runbookFailure(error);
        assert.equal(failure.type, type);
        assert.match(failure.message, message);
        return true;
      });
    await failsWith({ target: 'orders', to: 'nowhere' }, 'InvalidInput', /--to "nowhere" is not a repository of target "orders"/);
    await failsWith({ target: 'orders', to: 'spare', from: 'gone' }, 'InvalidInput', /--from "gone" is not a repository of target "orders"/);
    await failsWith({ target: 'orders', to: 'local', from: 'local' }, 'InvalidInput', /both name repository "local"/);
    await failsWith({ target: 'empty', to: 'spare' }, 'BackupNotFound', /holds a complete backup of target "empty": there is nothing to copy/);
    assert.deepEqual(await readdir(join(lifeboat.dir, 'spare', 'empty')).then((entries) => entries.includes('backups')), false, 'nothing but the audit record');
  });
});
