import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { parse as parseYaml } from 'yaml';
import { runbookFailure } from '../../src/client.js';
import type { RestoreResult } from '../../workflows/restore.js';
import { createLifeboat, createDatabase, fingerprint, type Lifeboat } from '../helpers/lifeboat.js';

describe('SQLite runbooks on a real Temporal server, local disk and S3', () => {
  let lifeboat: Lifeboat;
  let dbPath: string;

  before(async () => {
    lifeboat = await createLifeboat('runbooks');
    dbPath = join(lifeboat.dir, 'shop.sqlite');
    createDatabase(dbPath, 8);
    const keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, randomBytes(32));
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          shop: {
            type: 'sqlite',
            path: dbPath,
            repositories: ['local', 's3'],
            drill: {
              rtoTargetSeconds: 120,
              rpoTargetSeconds: 3600,
              smokeChecks: [
                { name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 },
                { name: 'kinds are known', sql: "SELECT count(*) FROM events WHERE kind NOT IN ('order','refund','login','logout','view')", expect: 0 },
              ],
            },
          },
          plain: { type: 'sqlite', path: join(lifeboat.dir, 'plain.sqlite'), repositories: ['local'] },
        },
        { encryption: { keyFile } },
      ),
    );
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  /** Runs a restore of "shop" with stop/start hooks and a health URL answering healthStatus. */
  async function withHooks(
    healthStatus: number,
    body: (context: { hookLog: string; run: () => Promise<RestoreResult> }) => Promise<void>,
  ): Promise<void> {
    const server = createServer((_request, response) => response.writeHead(healthStatus).end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const hookLog = join(lifeboat.dir, `hooks-${healthStatus}.log`);
    const original = await readFile(lifeboat.configPath, 'utf8');
    const config = parseYaml(original) as { targets: { shop: Record<string, unknown> } };
    config.targets.shop.hooks = {
      stop: `echo stop >> ${hookLog}`,
      start: `echo start >> ${hookLog}`,
      healthUrl: `http://127.0.0.1:${port}/health`,
      healthTimeoutSeconds: 2,
    };
    await lifeboat.writeConfig(config);
    try {
      await lifeboat.run('backup', { target: 'shop' });
      const db = new Database(dbPath);
      db.prepare("INSERT INTO events (kind, note, payload) VALUES ('order', 'after the backup', x'00')").run();
      db.close();
      await body({ hookLog, run: () => lifeboat.run('restore', { target: 'shop' }) });
    } finally {
      server.close();
      await writeFile(lifeboat.configPath, original);
    }
  }

  test('a backup stores an encrypted, verified copy in every repository, manifest last, and records its timeline', async () => {
    const result = await lifeboat.run('backup', { target: 'shop' });
    assert.match(result.backupId, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    assert.deepEqual(result.repositories, ['local', 's3']);
    assert.deepEqual(
      result.timeline.map((step) => [step.name, step.status]),
      [
        ['resolve-target', 'completed'],
        ['snapshot-and-upload', 'completed'],
        ['write-manifest', 'completed'],
        ['verify-stored', 'completed'],
      ],
    );
    assert.ok(result.storedBytes > 0 && result.storedBytes < result.sourceBytes, 'the payload is compressed');
    const manifest = JSON.parse(await readFile(join(lifeboat.dir, 'repository', 'shop', 'backups', result.backupId, 'manifest.json'), 'utf8'));
    assert.equal(manifest.encryption.algorithm, 'aes-256-gcm-chunked');
    assert.equal(manifest.objects[0].name, 'attempt-1/db.sqlite.zst.enc', 'stored under the name of the attempt that wrote it');
    assert.equal(manifest.source.integrityCheck, 'quick_check', 'the default check of the snapshot');
    const stored = await readFile(join(lifeboat.dir, 'repository', 'shop', 'backups', result.backupId, 'attempt-1', 'db.sqlite.zst.enc'));
    assert.equal(stored.includes(Buffer.from('lorem ipsum')), false, 'no plaintext in the stored object');
  });

  test('`lifeboat backups` lists the backups from the repositories alone, newest first', async () => {
    const second = await lifeboat.run('backup', { target: 'shop' });
    const listed = await lifeboat.cli(['backups', 'shop', '--json']);
    assert.equal(listed.exitCode, 0, listed.all);
    const rows = JSON.parse(listed.stdout) as Array<{ id: string; repository: string }>;
    assert.equal(rows[0]?.id, second.backupId);
    assert.deepEqual(new Set(rows.map((r) => r.repository)), new Set(['local', 's3']));
    const ids = rows.map((r) => r.id);
    assert.deepEqual(ids, [...ids].sort().reverse());
  });

  test('restore --into writes the newest backup to a new path, byte-for-byte the snapshot, without touching the live database', async () => {
    const before = fingerprint(dbPath);
    const liveBytes = await readFile(dbPath);
    const into = join(lifeboat.dir, 'copy.sqlite');
    const result = await lifeboat.run('restore', { target: 'shop', into });
    assert.equal(result.restoredTo, into);
    assert.equal(result.safetyCopy, null);
    assert.deepEqual(fingerprint(into), before);
    assert.equal((await stat(into)).mode & 0o777, 0o600, 'a restored copy is readable by its owner only');
    assert.ok((await readFile(dbPath)).equals(liveBytes), 'live database untouched');
  });

  test('restore --into is idempotent: a path that already holds exactly that backup counts as restored (a retried step after a crash finds its own file)', async () => {
    const into = join(lifeboat.dir, 'copy-twice.sqlite');
    const first = await lifeboat.run('restore', { target: 'shop', into });
    const bytes = await readFile(into);
    const second = await lifeboat.run('restore', { target: 'shop', into });
    assert.equal(second.backupId, first.backupId);
    assert.ok((await readFile(into)).equals(bytes), 'the file was left as it was');
  });

  test('a restore whose first repository holds a damaged copy takes the good copy from the next one', async () => {
    const backup = await lifeboat.run('backup', { target: 'shop' });
    const localCopy = join(lifeboat.dir, 'repository', 'shop', 'backups', backup.backupId, 'attempt-1', 'db.sqlite.zst.enc');
    const bytes = await readFile(localCopy);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(localCopy, bytes);
    const into = join(lifeboat.dir, 'from-s3.sqlite');
    const result = await lifeboat.run('restore', { target: 'shop', backupId: backup.backupId, into });
    assert.match(result.timeline.find((s) => s.name === 'fetch-and-verify')?.detail ?? '', /from s3/);
    assert.deepEqual(fingerprint(into), fingerprint(dbPath));
  });

  test('restore in place keeps the old database as a safety copy and swaps in the backup atomically', async () => {
    const backup = await lifeboat.run('backup', { target: 'shop' });
    const atBackup = fingerprint(dbPath);
    const db = new Database(dbPath);
    db.prepare("INSERT INTO events (kind, note, payload) VALUES ('order', 'written after the backup', x'00')").run();
    db.close();
    const changed = fingerprint(dbPath);
    assert.notDeepEqual(changed, atBackup);

    const result = await lifeboat.run('restore', { target: 'shop', backupId: backup.backupId });
    assert.equal(result.backupId, backup.backupId);
    assert.deepEqual(fingerprint(dbPath), atBackup, 'live database now holds the backup');
    assert.ok(result.safetyCopy && existsSync(result.safetyCopy));
    assert.deepEqual(fingerprint(result.safetyCopy), changed, 'the safety copy is the database as it was');
    assert.deepEqual((await readdir(lifeboat.dir)).filter((name) => name.includes('.lifeboat-restore-')), [], 'no staging file left behind');
  });

  test('restore in place gives the restored database the live one\'s permissions and owner, so the application can still open it', async () => {
    const backup = await lifeboat.run('backup', { target: 'shop' });
    const original = await stat(dbPath);
    // As root the test can hand the file to another user, as an application's database would be.
    const owner = process.getuid?.() === 0 ? { uid: 4321, gid: 4322 } : { uid: original.uid, gid: original.gid };
    await chmod(dbPath, 0o640);
    await chown(dbPath, owner.uid, owner.gid);
    try {
      await lifeboat.run('restore', { target: 'shop', backupId: backup.backupId });
      const restored = await stat(dbPath);
      assert.equal(restored.mode & 0o7777, 0o640);
      assert.deepEqual({ uid: restored.uid, gid: restored.gid }, owner);
    } finally {
      await chown(dbPath, original.uid, original.gid);
      await chmod(dbPath, original.mode & 0o7777);
    }
  });

  test('restore runs the stop hook before the swap and the start hook after, then waits for the health URL', async () => {
    await withHooks(200, async ({ hookLog, run }) => {
      const result = await run();
      assert.deepEqual((await readFile(hookLog, 'utf8')).trim().split('\n'), ['stop', 'start']);
      assert.deepEqual(
        result.timeline.map((s) => s.name),
        ['resolve-target', 'locate-backup', 'fetch-and-verify', 'integrity-check', 'stop-hook', 'swap', 'start-hook', 'health-check', 'verify-live'],
      );
    });
  });

  test('a health check that keeps failing after the swap stops the application, puts the previous database back and starts it again', async () => {
    await withHooks(503, async ({ hookLog, run }) => {
      const before = fingerprint(dbPath);
      await assert.rejects(run(), (error: unknown) => runbookFailure(error).type === 'HealthCheckFailed');
      assert.deepEqual(fingerprint(dbPath), before, 'the live database is the one from before the restore');
      assert.deepEqual((await readFile(hookLog, 'utf8')).trim().split('\n'), ['stop', 'start', 'stop', 'start']);
    });
  });

  test('a drill restores into scratch, runs the smoke checks, measures RTO and RPO, stores a report, and removes the scratch copy', async () => {
    const report = await lifeboat.run('drill', { target: 'shop' });
    assert.equal(report.passed, true, JSON.stringify(report.failure));
    assert.deepEqual(report.checks.map((c) => [c.name, c.passed]), [['events exist', true], ['kinds are known', true]]);
    assert.ok(report.rto && report.rto.seconds > 0 && report.rto.met === true);
    assert.ok(report.rpo && report.rpo.seconds >= 0 && report.rpo.met === true);
    const scratch = report.timeline.find((s) => s.name === 'prepare-scratch')?.detail;
    assert.ok(scratch && !existsSync(scratch), 'scratch directory removed');
    const stored = JSON.parse(await readFile(join(lifeboat.dir, 'repository', 'shop', 'reports', `${report.workflowId}.json`), 'utf8'));
    assert.equal(stored.passed, true);
    assert.equal(stored.backupId, report.backupId);
  });

  test('a drill whose smoke check fails completes with passed=false, says which check failed, and still cleans up', async () => {
    const config = lifeboat.baseConfig({
      shop: {
        type: 'sqlite',
        path: dbPath,
        repositories: ['local'],
        drill: { smokeChecks: [{ name: 'impossible', sql: 'SELECT count(*) FROM events', expect: -1 }] },
      },
    }, { encryption: { keyFile: join(lifeboat.dir, 'backup.key') } });
    const original = await readFile(lifeboat.configPath, 'utf8');
    await lifeboat.writeConfig(config);
    try {
      const report = await lifeboat.run('drill', { target: 'shop' });
      assert.equal(report.passed, false);
      assert.equal(report.failure?.type, 'SmokeCheckFailed');
      assert.match(report.failure?.message ?? '', /impossible: returned \d+, expected -1/);
      const scratch = report.timeline.find((s) => s.name === 'prepare-scratch')?.detail;
      assert.ok(scratch && !existsSync(scratch));
    } finally {
      await writeFile(lifeboat.configPath, original);
    }
  });

  test('a backup taken while writers keep committing is a consistent snapshot that passes integrity_check', async () => {
    const busyPath = join(lifeboat.dir, 'busy.sqlite');
    createDatabase(busyPath, 16);
    const setup = new Database(busyPath);
    setup.exec('CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL); CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 1), sum INTEGER NOT NULL, count INTEGER NOT NULL); INSERT INTO totals VALUES (1, 0, 0);');
    setup.close();
    const original = await readFile(lifeboat.configPath, 'utf8');
    await lifeboat.writeConfig(lifeboat.baseConfig({ busy: { type: 'sqlite', path: busyPath, repositories: ['local'] } }));

    // Each transaction adds a ledger row and updates the running total: a torn snapshot breaks the invariant.
    const writer = new Thread(
      `const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
       const { parentPort } = require('node:worker_threads');
       const db = new Database(${JSON.stringify(busyPath)}, { timeout: 10000 });
       const add = db.transaction((amount) => {
         db.prepare('INSERT INTO ledger (amount) VALUES (?)').run(amount);
         db.prepare('UPDATE totals SET sum = sum + ?, count = count + 1 WHERE id = 1').run(amount);
         db.prepare("INSERT INTO events (kind, note, payload) VALUES ('order', 'concurrent', randomblob(200))").run();
       });
       let stop = false; let n = 0;
       parentPort.on('message', () => { stop = true; });
       (function loop() { for (let i = 0; i < 50; i++) add(1 + (n++ % 97)); if (n === 50) parentPort.postMessage('committed'); if (stop) { db.close(); parentPort.postMessage(n); } else setImmediate(loop); })();`,
      { eval: true },
    );
    // Listening at once (before any await): the thread cannot post before this turn ends.
    const firstCommits = once(writer, 'message');
    try {
      await firstCommits; // the snapshot then holds some rows, however slowly the thread started
      const result = await lifeboat.run('backup', { target: 'busy' });
      const restored = join(lifeboat.dir, 'busy-restored.sqlite');
      await lifeboat.run('restore', { target: 'busy', backupId: result.backupId, into: restored });
      const db = new Database(restored, { readonly: true });
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      const ledger = db.prepare('SELECT coalesce(sum(amount), 0) AS sum, count(*) AS count FROM ledger').get() as { sum: number; count: number };
      const totals = db.prepare('SELECT sum, count FROM totals').get() as { sum: number; count: number };
      db.close();
      assert.deepEqual(ledger, totals, 'ledger rows and running totals agree in the snapshot');
      assert.ok(totals.count > 0, 'writers committed before the snapshot');
    } finally {
      writer.postMessage('stop');
      const written = await new Promise<number>((resolve) => writer.once('message', resolve));
      await writer.terminate();
      assert.ok(written > 0);
      await writeFile(lifeboat.configPath, original);
    }
  });
});
