/**
 * Physical base backups of a real PostgreSQL 15 (src/postgres/base-backup.ts, base-restore.ts):
 * pg_basebackup streamed into fs and S3 repositories in parts, restored into a new data directory
 * and checked by pg_verifybackup, then started.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { keyId } from '../../src/pipeline/encrypt.js';
import {
  baseBackupManifestSchema,
  listBaseBackups,
  takeBaseBackup,
  writeBaseBackupManifest,
  type BaseBackupManifest,
  type BaseBackupOptions,
} from '../../src/postgres/base-backup.js';
import { restoreBaseBackup, stagingDirFor } from '../../src/postgres/base-restore.js';
import type { PostgresConnection } from '../../src/postgres/dump-connection.js';
import { connectRecovered, recoverToTarget, removeRecoveredCluster, type RecoveryResult } from '../../src/postgres/recovery.js';
import { chownToServerUser, serverUser } from '../../src/postgres/tools.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { lifeboatError, sha256, tamper } from '../helpers/assertions.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { sharedOrOwnS3, type TestS3 } from '../helpers/stack.js';

const MiB = 1024 * 1024;
const target = 'orders';
const workflow = { workflowId: 'test-base-backup', runId: 'run-1' };

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error('cleanup failed:', error));
});

describe('a base backup of a running PostgreSQL', () => {
  let db: TestCluster;
  let dir: string;
  let local: Repository;
  let spare: Repository;
  let manifest: BaseBackupManifest;
  let rowsAtBackup: number;

  before(async () => {
    db = await createTestCluster();
    cleanups.push(() => db.close());
    dir = await scratchDir();
    local = fsRepository('local', join(dir, 'local'));
    spare = fsRepository('spare', join(dir, 'spare'));
    await db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
    // Rows that do not compress away, so the backup spans several parts of the small part size used here.
    await db.query(`INSERT INTO ledger SELECT g, (SELECT string_agg(md5(random()::text || g || s), '') FROM generate_series(1, 20) s) FROM generate_series(1, 8000) g`);
    rowsAtBackup = 8000;
  });

  it('streams the cluster, compressed by the server, into every repository in parts with their sha256, and records where replay becomes consistent', async () => {
    const progress: Array<{ bytesDone: number; storedBytes: number }> = [];
    const spoolDir = join(dir, 'spool');
    const result = await takeBaseBackup({ ...backupOptions(db, [local, spare], '20261122T010000Z-aaaaaa'), spoolDir, onProgress: (p) => progress.push(p) });
    manifest = await writeBaseBackupManifest([local, spare], result, { workflow });

    const parts = manifest.base.parts.map((p) => p.object);
    assert.ok(parts.length >= 3, `several parts (${parts.length})`);
    assert.deepEqual(parts, parts.map((_, i) => `attempt-1/base.tar.${String(i).padStart(3, '0')}.zst`), 'parts in stream order, under the name of the attempt that stored them');
    assert.deepEqual(manifest.objects.map((o) => o.name), [...parts, 'attempt-1/backup_manifest.zst'], 'every stored object: the parts, then the backup_manifest');
    assert.deepEqual(manifest.base.backupManifest, { object: 'attempt-1/backup_manifest.zst' });
    assert.equal(manifest.compression.implementation, 'pg_basebackup --compress=server-zstd (libzstd)');
    for (const repository of [local, spare]) {
      for (const [index, object] of manifest.objects.entries()) {
        const stored = await buffer(await repository.backend.get(repository.objectKey(target, manifest.id, object.name)));
        assert.deepEqual({ sizeBytes: stored.length, sha256: sha256(stored) }, { sizeBytes: object.sizeBytes, sha256: object.sha256 }, `${repository.name}/${object.name}`);
        if (index < parts.length - 1) assert.equal(stored.length, 1 * MiB, 'every part but the last has the part size');
      }
    }
    const storedTotal = manifest.objects.reduce((sum, o) => sum + o.sizeBytes, 0);
    const manifestObject = manifest.objects.at(-1)!;
    assert.equal(progress.at(-1)!.storedBytes, storedTotal - manifestObject.sizeBytes, 'progress counts the stored bytes of the tar');
    assert.equal(progress.at(-1)!.bytesDone, manifest.base.tar.sizeBytes, 'and what pg_basebackup sent');
    assert.deepEqual(await readdir(spoolDir), [], 'the spool pg_basebackup wrote into is gone');

    // What PostgreSQL says about itself.
    const [source] = await db.query<{ id: string; tli: number; lsn: string }>(
      `SELECT system_identifier::text AS id, (SELECT timeline_id FROM pg_control_checkpoint()) AS tli, pg_current_wal_lsn()::text AS lsn FROM pg_control_system()`,
    );
    assert.equal(manifest.source.systemIdentifier, source!.id);
    assert.equal(manifest.source.superuser, 'postgres');
    assert.equal(manifest.source.serverVersionNum >= 150000 && manifest.source.serverVersionNum < 160000, true);
    assert.equal(manifest.base.timeline, source!.tli);
    assert.ok(lsnValue(manifest.base.startLsn) <= lsnValue(manifest.base.stopLsn), 'start <= stop');
    assert.ok(lsnValue(manifest.base.stopLsn) <= lsnValue(source!.lsn), 'stop <= the server now');
    assert.ok(manifest.base.startTime <= manifest.base.stopTime && manifest.snapshotAt === manifest.base.stopTime);
    assert.equal(manifest.base.fileChecksums, 'CRC32C');
    assert.deepEqual(baseBackupManifestSchema.parse(JSON.parse((await buffer(await local.backend.get(local.manifestKey(target, manifest.id)))).toString())), manifest, 'manifest.json reads back');

    // The parts, concatenated and decoded, are the server's tar, backup_label first; the backup_manifest is stored beside it.
    const tarFile = join(dir, 'whole.tar');
    const compressed = Buffer.concat(await Promise.all(parts.map(async (name) => buffer(await local.backend.get(local.objectKey(target, manifest.id, name))))));
    assert.equal(compressed.subarray(0, 4).toString('hex'), '28b52ffd', 'a zstd stream');
    await execa('zstd', ['-d', '-q', '-o', tarFile], { input: compressed });
    const tarBytes = (await stat(tarFile)).size;
    const sent = manifest.base.tar.sizeBytes;
    assert.ok(tarBytes >= sent && tarBytes - sent < 64 * 1024, `the tar is what the server sent (${tarBytes} vs ${sent})`);
    const members = (await execa('tar', ['-tf', tarFile])).stdout.split('\n');
    assert.equal(members[0], 'backup_label');
    assert.ok(!members.includes('backup_manifest'));
    assert.ok(members.some((m) => /^pg_wal\/[0-9A-F]{24}$/.test(m)), 'the WAL the backup needs is inside (-X fetch)');
    const backupManifest = await execa('zstd', ['-d', '-q', '-c'], { input: await buffer(await local.backend.get(local.objectKey(target, manifest.id, manifestObject.name))) });
    const inner = JSON.parse(backupManifest.stdout) as { 'WAL-Ranges': Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>; Files: Array<{ Path: string }> };
    assert.deepEqual(inner['WAL-Ranges'], [{ Timeline: manifest.base.timeline, 'Start-LSN': manifest.base.startLsn, 'End-LSN': manifest.base.stopLsn }], 'the WAL range pg_basebackup reported is the one in backup_manifest');
    assert.ok(inner.Files.some((f) => f.Path === 'backup_label'), 'the backup_manifest lists the files of the tar');
    const label = (await execa('tar', ['-xOf', tarFile, 'backup_label'])).stdout;
    assert.match(label, new RegExp(`^START WAL LOCATION: ${manifest.base.startLsn} `, 'm'));
    assert.match(label, new RegExp(`^LABEL: lifeboat ${manifest.id}$`, 'm'));
  });

  it('is listed from the manifests alone, next to backups of other kinds', async () => {
    await local.backend.put(`${target}/backups/20261122T005959Z-bbbbbb/manifest.json`, Readable.from([Buffer.from('{"kind": "sqlite", "note": "not ours"}')]));
    const listing = await listBaseBackups([local, spare], target);
    assert.deepEqual(
      listing.backups.map((b) => [b.manifest.id, b.repository]),
      [[manifest.id, 'local']],
    );
    assert.deepEqual(listing.problems, []);
    await local.backend.delete(`${target}/backups/20261122T005959Z-bbbbbb/manifest.json`);
  });

  it('returns the recorded backup when asked again for the same id (idempotent), without a new pg_basebackup', async () => {
    const again = await takeBaseBackup(backupOptions(db, [local, spare], manifest.id));
    const { workflow: _w, timeline: _t, ...recorded } = manifest;
    assert.deepEqual(again, recorded);
  });

  it('restores into a new data directory owned by the server user, checked by pg_verifybackup, and the copy starts with the data of the backup', async () => {
    await db.query(`INSERT INTO ledger VALUES (999999, 'after the backup')`);
    const dataDir = join(dir, 'restored');
    const restored = await restoreBaseBackup({ manifest, repositories: [local], dataDir });
    assert.equal(restored.repository, 'local');
    assert.equal(restored.alreadyRestored, false);
    assert.deepEqual(Object.keys(restored.phasesMs ?? {}), ['holdsEveryPart', 'extract', 'placeManifest', 'verify', 'rename'], 'where the time went, phase by phase (the benchmark reports it)');
    assert.ok(Object.values(restored.phasesMs!).every((ms) => Number.isInteger(ms) && ms >= 0));
    const user = await serverUser();
    const info = await stat(dataDir);
    assert.equal(info.mode & 0o777, 0o700);
    assert.equal(info.uid, user.uid);
    assert.equal((await stat(join(dataDir, 'base'))).uid, user.uid, 'files belong to the server user');
    assert.ok(existsSync(join(dataDir, 'backup_label')) && existsSync(join(dataDir, 'backup_manifest')));
    assert.equal(existsSync(stagingDirFor(dataDir)), false, 'no staging directory left');

    const again = await restoreBaseBackup({ manifest, repositories: [local], dataDir });
    assert.equal(again.alreadyRestored, true, 'a second run accepts the verified copy');
    assert.equal(again.phasesMs, undefined, 'nothing was restored the second time');

    const recovered = await recoverToTarget({ dataDir, manifest, recoveryTarget: { kind: 'immediate' }, restoreCommand: 'false' });
    cleanups.push(() => removeRecoveredCluster(recovered.cluster));
    assert.deepEqual(await ledgerSummary(recovered), { rows: rowsAtBackup, max: rowsAtBackup }, 'the rows of the backup, not the one inserted after it');
    assert.equal(recovered.timeline, manifest.base.timeline + 1, 'promoted onto a new timeline');
    assert.equal(recovered.reached.stop?.record, 'consistency');
    await removeRecoveredCluster(recovered.cluster);
  });

  it('refuses a data directory that is not empty, and leaves it alone', async () => {
    const occupied = join(dir, 'occupied');
    await mkdir(occupied);
    await writeFile(join(occupied, 'keep.txt'), 'precious');
    await assert.rejects(restoreBaseBackup({ manifest, repositories: [local], dataDir: occupied }), lifeboatError('InvalidInput', /not empty/));
    assert.deepEqual(await readdir(occupied), ['keep.txt']);
    assert.equal(await readFile(join(occupied, 'keep.txt'), 'utf8'), 'precious');
  });

  it('takes the next repository when a part is damaged, and refuses when every copy is, leaving nothing behind', async () => {
    const object = manifest.objects[1]!;
    await tamper(local, local.objectKey(target, manifest.id, object.name));
    const dataDir = join(dir, 'from-spare');
    const restored = await restoreBaseBackup({ manifest, repositories: [local, spare], dataDir });
    assert.equal(restored.repository, 'spare');
    await rm(dataDir, { recursive: true, force: true });

    await tamper(spare, spare.objectKey(target, manifest.id, object.name));
    const nowhere = join(dir, 'nowhere');
    await assert.rejects(restoreBaseBackup({ manifest, repositories: [local, spare], dataDir: nowhere }), lifeboatError('ChecksumMismatch', new RegExp(`every copy.*${object.name}.*"local".*"spare"`, 's')));
    assert.equal(existsSync(nowhere), false, 'no data directory');
    assert.equal(existsSync(stagingDirFor(nowhere)), false, 'no staging directory');
  });

  it('leaves no manifest when aborted midway; the next attempt stores under names of its own, and an earlier attempt still writing cannot touch them', async () => {
    const id = '20261122T020000Z-cccccc';
    const controller = new AbortController();
    const spoolDir = join(dir, 'spool-aborted');
    const options = { ...backupOptions(db, [local], id), spoolDir };
    const prefix = `${target}/backups/${id}/`;
    const storedNames = async () => (await local.backend.list(prefix)).map((o) => o.key.slice(prefix.length)).sort();
    await assert.rejects(
      takeBaseBackup({ ...options, attempt: 1, signal: controller.signal, onProgress: (p) => p.storedBytes > 2 * MiB && controller.abort() }),
      (error: unknown) => error instanceof Error && error.name === 'AbortError',
    );
    assert.equal(await local.backend.head(local.manifestKey(target, id)), undefined, 'an aborted backup does not exist');
    assert.deepEqual(await readdir(spoolDir), [], 'nor does its spool');
    assert.ok((await storedNames()).some((name) => name.startsWith('attempt-1/')), 'the first attempt stored parts before it was stopped');

    const result = await takeBaseBackup({ ...options, attempt: 2 });
    assert.ok(result.objects.every((o) => o.name.startsWith('attempt-2/')), 'the second attempt writes different names');
    assert.deepEqual(await storedNames(), result.objects.map((o) => o.name).sort(), 'only the objects of the completed attempt are stored');

    // The first attempt lost its heartbeat, not its process: it goes on after the retry stored
    // everything. Its clean-up removes nothing of a later attempt, and what it writes lands beside.
    assert.equal(await local.discardUnfinishedBackup(target, id, { beforeAttempt: 1 }), 0);
    await local.backend.put(local.objectKey(target, id, 'attempt-1/base.tar.000.zst'), Readable.from([Buffer.from('a stale attempt\'s bytes')]));
    const written = await writeBaseBackupManifest([local], result, { workflow });
    for (const object of written.objects) {
      const stored = await buffer(await local.backend.get(local.objectKey(target, id, object.name)));
      assert.equal(sha256(stored), object.sha256, `${object.name} is what the manifest says`);
    }
    const restored = join(dir, 'restored-after-stale-attempt');
    await restoreBaseBackup({ manifest: written, repositories: [local], dataDir: restored });
    assert.ok(existsSync(join(restored, 'PG_VERSION')));
  });

  it('compresses in pg_basebackup instead with compressAt "client", into the same layout, restored the same way', async () => {
    const result = await takeBaseBackup({ ...backupOptions(db, [local], '20261122T021000Z-cccddd'), compressAt: 'client' });
    const clientManifest = await writeBaseBackupManifest([local], result, { workflow });
    assert.equal(clientManifest.compression.implementation, 'pg_basebackup --compress=client-zstd (libzstd)');
    assert.deepEqual(clientManifest.objects.map((o) => o.name).at(-1), 'attempt-1/backup_manifest.zst');
    const dataDir = join(dir, 'restored-client');
    await restoreBaseBackup({ manifest: clientManifest, repositories: [local], dataDir });
    assert.ok(existsSync(join(dataDir, 'backup_manifest')), 'pg_verifybackup had its backup_manifest');
  });

  it('refuses a cluster with tablespaces besides the default ones, before taking anything', async () => {
    const location = join(dir, 'tablespace');
    await mkdir(location);
    await chownToServerUser(location);
    await db.query(`CREATE TABLESPACE elsewhere LOCATION '${location}'`);
    try {
      const id = '20261122T022000Z-cccfff';
      await assert.rejects(takeBaseBackup(backupOptions(db, [local], id)), lifeboatError('InvalidInput', /tablespaces besides pg_default and pg_global \(elsewhere\)/));
      assert.deepEqual(await local.backend.list(`${target}/backups/${id}/`), [], 'nothing stored');
    } finally {
      await db.query('DROP TABLESPACE elsewhere');
    }
  });

  it('refuses a role that may not take base backups, with a typed error', async () => {
    const env = { LIFEBOAT_TEST_PG_PASSWORD: db.passwordRole.password };
    const connection: PostgresConnection = { host: '127.0.0.1', port: db.cluster.port, user: db.passwordRole.user, database: 'postgres', maintenanceDatabase: 'postgres', passwordEnv: 'LIFEBOAT_TEST_PG_PASSWORD' };
    await assert.rejects(takeBaseBackup({ ...backupOptions(db, [local], '20261122T030000Z-dddddd'), connection, env }), lifeboatError('PostgresAuthFailed', /REPLICATION/));
  });
});

describe('a base backup through S3, encrypted', () => {
  let db: TestCluster;
  let dir: string;
  let s3: Repository;
  let manifest: BaseBackupManifest;
  const key = randomBytes(32);

  before(async () => {
    db = await createTestCluster();
    cleanups.push(() => db.close());
    dir = await scratchDir();
    s3 = await s3Repository();
    await db.query(`CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)`);
    await db.query(`INSERT INTO ledger SELECT g, 'row ' || g FROM generate_series(1, 1000) g`);
  });

  it('round-trips: stored encrypted in S3, restored with the key, verified and started', async () => {
    const result = await takeBaseBackup({ ...backupOptions(db, [s3], '20261122T040000Z-eeeeee'), encryptionKey: key });
    manifest = await writeBaseBackupManifest([s3], result, { workflow });
    assert.deepEqual(manifest.encryption, { algorithm: 'aes-256-gcm-chunked', keyId: keyId(key) });
    assert.ok(manifest.objects.every((o) => o.name.endsWith('.zst.enc')));
    assert.deepEqual(manifest.base.backupManifest, { object: 'attempt-1/backup_manifest.zst.enc' });
    const first = await buffer(await s3.backend.get(s3.objectKey(target, manifest.id, manifest.objects[0]!.name)));
    assert.equal(first.subarray(0, 7).toString('latin1'), 'LBENC1\n', 'what S3 holds is encrypted');

    const dataDir = join(dir, 'restored');
    const restored = await restoreBaseBackup({ manifest, repositories: [s3], dataDir, encryptionKey: key });
    assert.equal(restored.repository, 's3');
    const recovered = await recoverToTarget({ dataDir, manifest, recoveryTarget: { kind: 'immediate' }, restoreCommand: 'false' });
    cleanups.push(() => removeRecoveredCluster(recovered.cluster));
    assert.deepEqual(await ledgerSummary(recovered), { rows: 1000, max: 1000 });
    await removeRecoveredCluster(recovered.cluster);
  });

  it('needs the right key, and says which one', async () => {
    const dataDir = join(dir, 'keyless');
    await assert.rejects(restoreBaseBackup({ manifest, repositories: [s3], dataDir }), lifeboatError('EncryptionKeyUnavailable', new RegExp(keyId(key))));
    await assert.rejects(restoreBaseBackup({ manifest, repositories: [s3], dataDir, encryptionKey: randomBytes(32) }), lifeboatError('WrongEncryptionKey', new RegExp(keyId(key))));
    assert.equal(existsSync(dataDir), false);
  });
});

// ---------------------------------------------------------------------------------------------
// helpers

function backupOptions(db: TestCluster, repositories: Repository[], backupId: string): BaseBackupOptions {
  return {
    connection: { host: db.cluster.socketDir, port: db.cluster.port, user: 'postgres', database: 'postgres', maintenanceDatabase: 'postgres' },
    target,
    backupId,
    repositories,
    compression: { level: 3, threads: 1 },
    partSizeBytes: 1 * MiB,
  };
}

async function ledgerSummary(recovered: RecoveryResult): Promise<{ rows: number; max: number }> {
  const client = await connectRecovered(recovered.cluster);
  try {
    const { rows } = await client.query<{ rows: number; max: number }>('SELECT count(*)::int AS rows, max(id) AS max FROM ledger');
    return rows[0]!;
  } finally {
    await client.end();
  }
}

function fsRepository(name: string, path: string): Repository {
  return new Repository(name, openBackend({ type: 'fs', path }));
}

let s3Server: TestS3 | undefined;
async function s3Repository(): Promise<Repository> {
  s3Server ??= await sharedOrOwnS3(cleanups);
  const prefix = `base-backup-test-${randomUUID().slice(0, 8)}/`;
  const env = { LIFEBOAT_TEST_BB_S3_KEY: s3Server.accessKeyId, LIFEBOAT_TEST_BB_S3_SECRET: s3Server.secretAccessKey };
  const backend = openBackend(
    {
      type: 's3',
      endpoint: s3Server.endpoint,
      bucket: s3Server.bucket,
      prefix,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyIdEnv: 'LIFEBOAT_TEST_BB_S3_KEY',
      secretAccessKeyEnv: 'LIFEBOAT_TEST_BB_S3_SECRET',
      partSizeMiB: 5,
    },
    env,
  );
  cleanups.push(async () => {
    for (const { key } of await backend.list('')) await backend.delete(key);
  });
  return new Repository('s3', backend);
}


/** A scratch directory the server user can reach (restored data directories live in it). */
async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-bb-test-'));
  await chownToServerUser(dir);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}


function lsnValue(lsn: string): bigint {
  const [high, low] = lsn.split('/') as [string, string];
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}
