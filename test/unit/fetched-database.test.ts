import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { verifyAndFlush } from '../../src/kinds/sqlite/restore.js';
import { LifeboatError } from '../../src/errors.js';
import { sha256OfFile } from '../../src/pipeline/hash.js';
import { checkDatabase } from '../../src/sqlite/check.js';

describe('a restored database is verified end to end when it is made durable (the integrity-check step)', () => {
  let dir: string;
  let path: string;
  let fetched: { sha256: string; sizeBytes: number };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-fetched-'));
    path = join(dir, 'restored.db');
    const db = new Database(path);
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); CREATE INDEX notes_by_body ON notes (body)');
    const insert = db.prepare('INSERT INTO notes (body) VALUES (?)');
    for (let i = 0; i < 2000; i++) insert.run(`note ${i}`);
    db.close();
    const { sha256, bytes } = await sha256OfFile(path);
    fetched = { sha256, sizeBytes: bytes };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('the file as fetched passes and is flushed', async () => {
    await verifyAndFlush(path, fetched);
  });

  test('a file a machine crash left empty passes SQLite integrity_check, but not this verification (ChecksumMismatch)', async () => {
    await truncate(path, 0);
    await checkDatabase(path, 'integrity_check'); // why the hash is needed: SQLite calls an empty file a valid database
    await assert.rejects(verifyAndFlush(path, fetched), (error: unknown) => {
      assert.ok(error instanceof LifeboatError);
      assert.equal(error.type, 'ChecksumMismatch');
      assert.match(error.message, /is not the database that was backed up: sha256 \w+ \(0 bytes\), expected/);
      return true;
    });
  });
});
