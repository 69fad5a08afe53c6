/**
 * PostgreSQL's WAL archive in Lifeboat repositories (src/postgres/wal-archive.ts), against a real
 * PostgreSQL 15 whose archive_command and restore_command are the real `lifeboat wal-push %p` and
 * `lifeboat wal-fetch %f %p`, into an fs repository and
 * an S3 repository (versitygw on loopback, or the shared one of `npm test`).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/dev/ports.js';
import { LifeboatError } from '../../src/errors.js';
import { adoptDataDirectory, markForRecovery, startCluster, writeClusterSettings, type RunningCluster } from '../../src/postgres/cluster.js';
import { runPgTool } from '../../src/postgres/tools.js';
import {
  archiveStatus,
  fetchWal,
  openWalArchive,
  pushWal,
  walArchiveSpec,
  walFetch,
  walTargetFrom,
  walObjectKey,
  walRecordKey,
  walRecordSchema,
  type WalArchive,
  type WalArchiveSpec,
  type WalRecord,
} from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import type { Repository } from '../../src/repository/repository.js';
import { lifeboatError, sha256, tamper } from '../helpers/assertions.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { sharedOrOwnS3, testStackEnv } from '../helpers/stack.js';
import { runArchiveStatus, runCli, runWalCommand, walCommand, writeWalArchiveConfig, type WalArchiveConfig } from '../helpers/wal-archive-command.js';

const MiB = 1024 * 1024;
/** S3 credentials reach the archive commands through the server's environment, under these names. */
const s3Env = { key: 'LIFEBOAT_TEST_WAL_S3_KEY_ID', secret: 'LIFEBOAT_TEST_WAL_S3_SECRET' };

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error('cleanup failed:', error));
});

// As bin/lifeboat.js does: the SDK's notice about future Node versions says nothing actionable.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const s3 = await sharedOrOwnS3(cleanups);
// In-process pushes and fetches read the S3 credentials under the same names the archive commands do.
Object.assign(process.env, { [s3Env.key]: s3.accessKeyId, [s3Env.secret]: s3.secretAccessKey });
const s3Prefix = `wal-test-${randomUUID().slice(0, 8)}/`;
cleanups.push(async () => {
  // A shared S3 server outlives this file: remove what it stored there (an own server goes whole).
  if (!process.env[testStackEnv.s3Endpoint]) return;
  const backend = openBackend(archiveSpec('cleanup', '/nonexistent').repositories[1]!.repository);
  for (const { key } of await backend.list('')) await backend.delete(key);
});

describe('the WAL archive of a running PostgreSQL', () => {
  let db: TestCluster;
  let spec: WalArchiveSpec;
  let specFile: WalArchiveConfig;
  let archive: WalArchive;
  /** A segment PostgreSQL archived in the first test; later tests push it again. */
  let segment: string;

  before(async () => {
    db = await createTestCluster({
      archive: true,
      // Archived segments stay in pg_wal, so tests can compare the archive with the original.
      settings: { wal_keep_size: '1GB' },
      env: {
        [s3Env.key]: s3.accessKeyId,
        [s3Env.secret]: s3.secretAccessKey,
        // The SDK's notice about future Node versions would end up in the server log on every push.
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
    });
    cleanups.push(() => db.close());
    // The archive command runs as the server user: the fs repository lives in its directory.
    spec = archiveSpec('orders', join(db.dir, 'repository'));
    specFile = await writeWalArchiveConfig(db.dir, 'archive.yaml', spec);
    archive = openWalArchive(spec);
    await db.configure({ archive_command: walCommand(specFile, 'push') });
  });

  it('stores each segment PostgreSQL completes in every repository, zstd-compressed, with the sha256 of the original and of the stored bytes', async () => {
    await db.query('CREATE TABLE ledger (id serial PRIMARY KEY, note text NOT NULL)');
    await db.query(`INSERT INTO ledger (note) SELECT 'entry ' || g FROM generate_series(1, 5000) g`);
    segment = await switchWal(db);
    await waitUntilArchived(archive, segment, db);

    const original = await readFile(join(db.dataDir, 'pg_wal', segment));
    assert.equal(original.length, 16 * MiB);
    for (const repository of archive.repositories) {
      const record = await readRecord(repository, 'orders', segment);
      const stored = await buffer(await repository.backend.get(walObjectKey('orders', segment)));
      assert.deepEqual(record.original, { sizeBytes: original.length, sha256: sha256(original) }, `${repository.name}: the original's size and sha256`);
      assert.deepEqual(
        { sizeBytes: record.stored.sizeBytes, sha256: record.stored.sha256, compression: record.stored.compression.algorithm },
        { sizeBytes: stored.length, sha256: sha256(stored), compression: 'zstd' },
        `${repository.name}: the stored bytes' size and sha256`,
      );
      assert.equal(stored.subarray(0, 4).toString('hex'), '28b52ffd', `${repository.name}: a zstd frame`);
      assert.ok(stored.length < original.length / 4, `${repository.name}: compressed (${stored.length} bytes)`);
      assert.equal(record.kind, 'segment');
    }

    const destination = join(await scratchDir(), 'RECOVERYXLOG');
    assert.equal(await fetchWal(archive, segment, destination), 'fetched');
    assert.ok((await readFile(destination)).equals(original), 'wal-fetch returns the exact bytes');
  });

  it('accepts the same segment pushed again and leaves the archived copy as it was', async () => {
    const storedPath = join(db.dir, 'repository', walObjectKey('orders', segment));
    const before = await stat(storedPath);

    const result = await pushWal(archive, join(db.dataDir, 'pg_wal', segment));

    assert.deepEqual(
      result.repositories.map((r) => [r.name, r.outcome]),
      [
        ['local', 'already-archived'],
        ['s3', 'already-archived'],
      ],
    );
    const after = await stat(storedPath);
    assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], 'not rewritten');
  });

  it('refuses different content under an archived name, loudly and with both sha256s, and keeps the archived copy', async () => {
    const archived = await Promise.all(archive.repositories.map((repository) => readRecord(repository, 'orders', segment)));
    const impostor = join(await scratchDir(), segment);
    await writeFile(impostor, randomBytes(16 * MiB));
    const impostorSha = sha256(await readFile(impostor));

    await assert.rejects(pushWal(archive, impostor), (error: unknown) => {
      assert.ok(error instanceof LifeboatError && error.type === 'ObjectConflict', String(error));
      assert.ok(error.message.includes(archived[0]!.original.sha256), 'names the archived sha256');
      assert.ok(error.message.includes(impostorSha), "names the new file's sha256");
      return true;
    });
    // What PostgreSQL sees as archive_command: a failure, with the reason in its log.
    const command = await runWalCommand(specFile, ['push', impostor]);
    assert.equal(command.exitCode, 1);
    assert.match(command.stderr, /ObjectConflict.*already archived.*different content/);

    const after = await Promise.all(archive.repositories.map((repository) => readRecord(repository, 'orders', segment)));
    assert.deepEqual(after, archived, 'every repository still holds the original');
    await assert.doesNotReject(fetchWal(archive, segment, join(await scratchDir(), 'check')), 'and it still verifies');
  });

  it('reports the last archived segment, the failures while a repository is unreachable, and the recovery from them', async () => {
    const healthy = await archiveStatus(db.client);
    assert.equal(healthy.lastArchivedWal, segment);
    assert.equal(healthy.failing, false);
    assert.equal(healthy.failedCount, 0);
    assert.equal(healthy.walSegmentSizeBytes, 16 * MiB);
    assert.equal(healthy.lag?.segments, 0, 'every completed segment is archived');
    assert.ok(healthy.lastArchivedAt !== null && Date.parse(healthy.lastArchivedAt) <= Date.now());

    // An S3 repository nobody listens on.
    const unreachable = archiveSpec('orders', join(db.dir, 'repository'), { endpoint: `http://127.0.0.1:${await freePort()}` });
    await db.configure({ archive_command: walCommand(await writeWalArchiveConfig(db.dir, 'unreachable.yaml', unreachable), 'push') });
    await db.query(`INSERT INTO ledger (note) VALUES ('while s3 is down')`);
    const stuck = await switchWal(db);
    const failing = await eventually(async () => {
      const status = await archiveStatus(db.client);
      return status.failing && status.lastFailedWal === stuck ? status : undefined;
    }, `archiving ${stuck} to fail`);
    assert.ok(failing.failedCount > 0);
    assert.equal(failing.lastArchivedWal, segment, 'nothing newer was archived');
    assert.ok(failing.lag !== null && failing.lag.segments >= 1, `${stuck} is waiting (lag ${JSON.stringify(failing.lag)})`);
    assert.equal(await archive.repositories[0]!.backend.head(walRecordKey('orders', stuck)), undefined, 'a failed push records nothing, not even in the reachable repository');
    assert.match(await readFile(db.logFile, 'utf8'), new RegExp(`lifeboat wal-push: .*${stuck}.*repository "s3".*ECONNREFUSED`), 'the reason is in the server log');
    // What an operator or a monitoring check sees: `lifeboat archive-status` fails and says why.
    const statusConfig = await writeWalArchiveConfig(db.dir, 'status.yaml', spec, { host: db.cluster.socketDir, port: db.cluster.port, user: db.cluster.user });
    const unhealthy = await runArchiveStatus(statusConfig);
    assert.equal(unhealthy.exitCode, 1, unhealthy.stderr);
    assert.equal(unhealthy.report.healthy, false);
    assert.match(unhealthy.report.problems.join(' '), /archive_command is failing/);

    await db.configure({ archive_command: walCommand(specFile, 'push') });
    const recovered = await eventually(async () => {
      const status = await archiveStatus(db.client);
      return !status.failing && status.lastArchivedWal === stuck ? status : undefined;
    }, `${stuck} to be archived once the repository is back`);
    assert.ok(recovered.failedCount >= failing.failedCount, 'the failures stay counted');
    assert.equal(recovered.lag?.segments, 0);
    const healthyAgain = await runArchiveStatus(statusConfig);
    assert.equal(healthyAgain.exitCode, 0, healthyAgain.stderr);
    assert.deepEqual(healthyAgain.report.problems, []);
  });

  it("archives PostgreSQL's backup label of a base backup", async () => {
    await db.query(`SELECT pg_backup_start('lifeboat-test', true)`);
    await db.query('SELECT * FROM pg_backup_stop()');
    const label = await eventually(async () => {
      const keys = (await archive.repositories[1]!.backend.list('orders/wal/')).map((o) => o.key);
      return keys.find((key) => key.endsWith('.backup.json'));
    }, 'the backup label to be archived');
    const name = label.slice('orders/wal/'.length, -'.json'.length);
    assert.match(name, /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/);
    const destination = join(await scratchDir(), name);
    assert.equal(await fetchWal(archive, name, destination), 'fetched');
    assert.match(await readFile(destination, 'utf8'), /^START WAL LOCATION: .*\nLABEL: lifeboat-test$/ms);
  });

  it('recovers a base backup to the last archived transaction, with wal-fetch as restore_command', async () => {
    await db.query(`INSERT INTO ledger (note) VALUES ('before the base backup')`);
    const restored = join(db.dir, 'restored');
    await runPgTool('pg_basebackup', ['--pgdata', restored, '--host', db.cluster.socketDir, '--port', String(db.cluster.port), '--username', 'postgres', '--wal-method', 'none', '--checkpoint', 'fast', '--no-sync'], {
      timeoutMs: 120_000,
    });
    await db.query(`INSERT INTO ledger (note) SELECT 'after the base backup ' || g FROM generate_series(1, 1000) g`);
    const [expected] = await db.query<{ count: string; last: string }>(`SELECT count(*)::text AS count, max(note) AS last FROM ledger`);
    const last = await switchWal(db);
    await waitUntilArchived(archive, last, db);

    // What a point-in-time recovery does with a base backup laid out in a new data directory.
    await adoptDataDirectory(restored);
    await writeClusterSettings(restored, {
      restore_command: walCommand(specFile, 'fetch'),
      recovery_target_action: 'promote',
      // The copy must never write into the source's archive.
      archive_mode: 'off',
    });
    await markForRecovery(restored);
    const copy: RunningCluster = await startCluster({
      dataDir: restored,
      logFile: join(db.dir, 'restored.log'),
      env: { [s3Env.key]: s3.accessKeyId, [s3Env.secret]: s3.secretAccessKey, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      timeoutSeconds: 180,
    });
    cleanups.push(() => copy.stop({ mode: 'immediate' }));
    const client = await copy.connect();
    try {
      // PostgreSQL replays until wal-fetch says "missing", probes for the next timeline's history
      // file (also "missing"), then promotes.
      await eventually(async () => !(await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r, 'the restored copy to finish recovery', 180_000);
      const { rows } = await client.query<{ count: string; last: string }>(`SELECT count(*)::text AS count, max(note) AS last FROM ledger`);
      assert.deepEqual(rows[0], expected, 'every archived transaction is there');
      const timeline = await client.query<{ tli: string }>('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli');
      assert.equal(timeline.rows[0]?.tli, '00000002', 'the copy continues on a timeline of its own');
    } finally {
      await client.end();
    }
    await copy.stop();
    assert.equal(await archive.repositories[0]!.backend.head(walRecordKey('orders', '00000002.history')), undefined, 'the copy did not archive into the source archive');
  });
});

describe('wal-push and wal-fetch on their own', () => {
  let dir: string;
  let archive: WalArchive;
  let specFile: WalArchiveConfig;

  before(async () => {
    dir = await scratchDir();
    const spec = archiveSpec('files', join(dir, 'repository'));
    archive = openWalArchive(spec);
    specFile = await writeWalArchiveConfig(dir, 'archive.yaml', spec);
  });

  it('answers a file that is not archived with "missing", quickly and without writing anything, as restore_command must', async () => {
    // PostgreSQL asks for the next timeline's history file at the end of every recovery.
    const destination = join(dir, 'pg_wal-missing', 'RECOVERYHISTORY');
    await mkdir(join(dir, 'pg_wal-missing'));
    const started = performance.now();
    assert.equal(await fetchWal(archive, '00000063.history', destination), 'missing');
    assert.equal(await fetchWal(archive, '000000630000000000000001', destination), 'missing');
    assert.ok(performance.now() - started < 2_000, `answered in ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(await readdir(join(dir, 'pg_wal-missing')), [], 'nothing written');

    const command = await runWalCommand(specFile, ['fetch', '00000063.history', destination]);
    assert.equal(command.exitCode, 1, 'the status PostgreSQL reads as "not in the archive"');
    assert.ok(command.durationMs < 20_000, `the command took ${command.durationMs} ms`);
  });

  it('a restore_command that cannot even start (a usage error) exits 126, which stops recovery, never 1 or 2 ("not in the archive")', async () => {
    const usage = await runCli(['--config', specFile.configFile, 'wal-fetch', '--no-such-option', '00000063.history', join(dir, 'x')]);
    assert.equal(usage.exitCode, 126, String(usage.stderr));
    assert.match(String(usage.stderr), /unknown option '--no-such-option'/);
    const missingArgument = await runCli(['--config', specFile.configFile, 'wal-fetch', '00000063.history']);
    assert.equal(missingArgument.exitCode, 126, String(missingArgument.stderr));
    const help = await runCli(['wal-fetch', '--help']);
    assert.equal(help.exitCode, 0);
  });

  it('fetches from another repository when one holds a damaged copy, and refuses when no intact copy is left', async () => {
    const name = '000000010000000000000042';
    const original = await walLike(join(dir, name), 2 * MiB);
    await pushWal(archive, join(dir, name));
    const [local, remote] = archive.repositories as [Repository, Repository];

    await tamper(local, walObjectKey('files', name));
    const warnings: string[] = [];
    const destination = join(dir, 'pg_wal-tampered', 'RECOVERYXLOG');
    await mkdir(join(dir, 'pg_wal-tampered'));
    assert.equal(await fetchWal(archive, name, destination, { onWarning: (message) => warnings.push(message) }), 'fetched');
    assert.ok((await readFile(destination)).equals(original), 'the intact copy');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /repository "local" could not serve .*sha256.*fetched it from "s3"/);

    await tamper(remote, walObjectKey('files', name));
    await rm(destination);
    await assert.rejects(fetchWal(archive, name, destination), (error: unknown) => {
      assert.ok(error instanceof LifeboatError && error.type === 'ChecksumMismatch', String(error));
      assert.match(error.message, /"local".*"s3"/s);
      return true;
    });
    assert.deepEqual(await readdir(join(dir, 'pg_wal-tampered')), [], 'nothing written, no temp file left');

    // As restore_command: a status that makes PostgreSQL stop, not one it reads as "end of archive".
    const command = await runWalCommand(specFile, ['fetch', name, destination]);
    assert.equal(command.exitCode, 126);
    assert.match(command.stderr, /ChecksumMismatch/);
  });

  it('refuses a stored copy whose record was altered', async () => {
    const name = '000000010000000000000043';
    await walLike(join(dir, name), MiB);
    await pushWal(archive, join(dir, name));
    for (const repository of archive.repositories) {
      const record = await readRecord(repository, 'files', name);
      const forged: WalRecord = { ...record, original: { ...record.original, sha256: sha256(Buffer.from('something else')) } };
      await repository.backend.put(walRecordKey('files', name), Readable.from([Buffer.from(JSON.stringify(forged))]));
    }
    await assert.rejects(fetchWal(archive, name, join(dir, 'forged'), { onWarning: () => {} }), /ChecksumMismatch|decodes to sha256/);
  });

  it('archives and restores timeline history files, partial segments and backup labels byte for byte', async () => {
    const files: Array<[string, Buffer, string]> = [
      ['00000002.history', Buffer.from('1\t0/3000000\tno recovery target specified\n'), 'history'],
      ['000000010000000000000044.partial', await walLike(join(dir, 'partial-source'), MiB), 'partial'],
      ['000000010000000000000044.00000028.backup', Buffer.from('START WAL LOCATION: 0/44000028 (file 000000010000000000000044)\nLABEL: x\n'), 'backup-label'],
    ];
    for (const [name, content, kind] of files) {
      await writeFile(join(dir, name), content);
      const pushed = await pushWal(archive, join(dir, name));
      assert.equal(pushed.kind, kind);
      const destination = join(dir, `fetched-${name}`);
      assert.equal(await fetchWal(archive, name, destination), 'fetched');
      assert.ok((await readFile(destination)).equals(content), `${name} comes back byte for byte`);
    }
  });

  it('stores a file again only where its copy is missing, and ignores a copy whose push was interrupted', async () => {
    const name = '000000010000000000000045';
    const content = await walLike(join(dir, name), MiB);
    await pushWal(archive, join(dir, name));
    const [local, remote] = archive.repositories as [Repository, Repository];

    // The payload is lost from one repository; its record survived.
    await remote.backend.delete(walObjectKey('files', name));
    const repaired = await pushWal(archive, join(dir, name));
    assert.deepEqual(
      repaired.repositories.map((r) => [r.name, r.outcome]),
      [
        ['local', 'already-archived'],
        ['s3', 'stored'],
      ],
    );
    const destination = join(dir, `repaired-${name}`);
    assert.equal(await fetchWal({ ...archive, repositories: [remote] }, name, destination), 'fetched', 'the s3 copy is whole again');
    assert.ok((await readFile(destination)).equals(content));

    // A payload without a record is what a push killed halfway leaves: it is not archived yet.
    const interrupted = '000000010000000000000046';
    await local.backend.put(walObjectKey('files', interrupted), Readable.from([Buffer.from('half a push')]));
    assert.equal(await fetchWal(archive, interrupted, join(dir, interrupted)), 'missing');
    await walLike(join(dir, interrupted), MiB);
    const completed = await pushWal(archive, join(dir, interrupted));
    assert.ok(completed.repositories.every((r) => r.outcome === 'stored'));
    assert.equal(await fetchWal(archive, interrupted, join(dir, `fetched-${interrupted}`)), 'fetched');
  });

  it('refuses names PostgreSQL never archives, before touching any repository', async () => {
    await writeFile(join(dir, 'RECOVERYXLOG'), 'x');
    await assert.rejects(pushWal(archive, join(dir, 'RECOVERYXLOG')), lifeboatError('InvalidInput'));
    await assert.rejects(pushWal(archive, '/etc/passwd'), lifeboatError('InvalidInput'));
    await assert.rejects(fetchWal(archive, '../000000010000000000000001', join(dir, 'x')), lifeboatError('InvalidInput'));
    await assert.rejects(fetchWal(archive, '000000010000000000000001.zst', join(dir, 'x')), lifeboatError('InvalidInput'));
    assert.deepEqual(
      (await archive.repositories[0]!.backend.list('')).filter((o) => !o.key.startsWith('files/wal/')),
      [],
      'nothing stored outside <target>/wal/',
    );
  });

  it('reports a pushed file that does not exist as SourceNotFound', async () => {
    await assert.rejects(pushWal(archive, join(dir, '0000000100000000000000FF')), lifeboatError('SourceNotFound'));
  });
});

describe('the WAL archive of a configured target', () => {
  it('is only for postgres targets, and names the target that is missing', async () => {
    const dir = await scratchDir();
    const configPath = join(dir, 'lifeboat.config.yaml');
    await writeFile(
      configPath,
      ['repositories:', `  local: { type: fs, path: ${join(dir, 'repository')} }`, 'targets:', `  app: { type: sqlite, path: ${join(dir, 'app.sqlite')}, repositories: [local] }`, ''].join('\n'),
    );
    await assert.rejects(walFetch({ configPath, target: 'app', name: '00000002.history', destination: join(dir, 'x') }), lifeboatError('InvalidInput', /sqlite target; WAL archiving is for postgres targets/));
    await assert.rejects(walFetch({ configPath, target: 'nope', name: '00000002.history', destination: join(dir, 'x') }), lifeboatError('TargetNotFound', /no target named "nope"/));
  });

  it('takes the target from --target, else from LIFEBOAT_TARGET, and asks for one when neither is set', () => {
    assert.equal(walTargetFrom('orders', { LIFEBOAT_TARGET: 'other' }), 'orders');
    assert.equal(walTargetFrom(undefined, { LIFEBOAT_TARGET: 'other' }), 'other');
    assert.throws(() => walTargetFrom(undefined, {}), lifeboatError('InvalidInput', /--target <name> or set LIFEBOAT_TARGET/));
  });

  it('resolves a postgres target to its repositories in the order the target lists them', () => {
    const spec = walArchiveSpec(
      {
        repositories: { a: { type: 'fs', path: '/a' }, b: { type: 'fs', path: '/b' } },
        targets: { pg: { type: 'postgres', repositories: ['b', 'a'] } },
        compression: { level: 3, threads: 2 },
      },
      'pg',
    );
    assert.deepEqual(spec, {
      target: 'pg',
      repositories: [
        { name: 'b', repository: { type: 'fs', path: '/b' } },
        { name: 'a', repository: { type: 'fs', path: '/a' } },
      ],
      compression: { level: 3, threads: 2 },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// helpers

function archiveSpec(target: string, fsPath: string, s3Overrides: { endpoint?: string } = {}): WalArchiveSpec {
  return {
    target,
    repositories: [
      { name: 'local', repository: { type: 'fs', path: fsPath } },
      {
        name: 's3',
        repository: {
          type: 's3',
          endpoint: s3Overrides.endpoint ?? s3.endpoint,
          bucket: s3.bucket,
          prefix: s3Prefix,
          region: 'us-east-1',
          forcePathStyle: true,
          accessKeyIdEnv: s3Env.key,
          secretAccessKeyEnv: s3Env.secret,
          partSizeMiB: 5,
        },
      },
    ],
    compression: { level: 3, threads: 1 },
  };
}

/** Writes the spec where the server user can read it. */
async function readRecord(repository: Repository, target: string, name: string): Promise<WalRecord> {
  const raw = await buffer(await repository.backend.get(walRecordKey(target, name)));
  return walRecordSchema.parse(JSON.parse(raw.toString('utf8')));
}

/** Completes the current segment (after some writes) and returns its name. */
async function switchWal(db: TestCluster): Promise<string> {
  const [row] = await db.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
  assert.ok(row?.name, 'pg_switch_wal completed a segment');
  return row.name;
}

/** Waits until every repository has name's record; on timeout, shows why from the server log. */
async function waitUntilArchived(archive: WalArchive, name: string, db?: TestCluster): Promise<void> {
  try {
    await eventually(async () => {
      const held = await Promise.all(archive.repositories.map((r) => r.backend.head(walRecordKey(archive.target, name))));
      return held.every((info) => info !== undefined);
    }, `${name} to be archived in every repository`);
  } catch (error) {
    if (!db || !(error instanceof Error)) throw error;
    const log = await readFile(db.logFile, 'utf8').catch(() => '(unreadable)');
    error.message += `\nlast lines of the server log ${db.logFile} (archive_command runs as the server user: can it read the checkout?):\n${log.trimEnd().split('\n').slice(-15).join('\n')}`;
    throw error;
  }
}

async function eventually<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Bytes shaped like WAL (long runs of zeros and repeated records), so compression has something to do. */
async function walLike(path: string, size: number): Promise<Buffer> {
  const content = Buffer.alloc(size);
  for (let offset = 0; offset < size / 2; offset += 8192) randomBytes(512).copy(content, offset);
  await writeFile(path, content);
  return content;
}


async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-wal-test-'));
  await chmod(dir, 0o700);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}


