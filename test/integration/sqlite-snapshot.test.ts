/**
 * A SQLite snapshot (src/sqlite/snapshot.ts) reads the database through the descriptor it pinned:
 * a restore renaming another database onto the path during a backup changes what the path names,
 * not what the backup reads.
 */
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { sha256OfFile } from '../../src/pipeline/hash.js';
import { openSnapshot } from '../../src/sqlite/snapshot.js';
import { createDatabase, fingerprint } from '../helpers/lifeboat.js';

describe('a SQLite snapshot reads through the descriptor it pinned', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-sqlite-snapshot-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a database renamed onto the path after the pin changes nothing of what the snapshot streams and hashes', async () => {
    const live = join(dir, 'live.sqlite');
    createDatabase(live, 4);
    const original = fingerprint(live);
    const replacement = join(dir, 'restored.sqlite');
    createDatabase(replacement, 2);
    const db = new Database(replacement);
    db.exec("INSERT INTO events (kind, note, payload) VALUES ('restore', 'a different database', x'00')");
    db.close();
    assert.notDeepEqual(fingerprint(replacement), original);

    const snapshot = await openSnapshot(live, { integrityCheck: 'quick_check' });
    try {
      // What a restore does: the new database renamed into place, journal files with it.
      const replaced = fingerprint(replacement);
      await rename(replacement, live);
      assert.deepEqual(fingerprint(live), replaced, 'the path now names the other database');

      const copy = join(dir, 'copy.sqlite');
      await pipeline(snapshot.stream(), createWriteStream(copy));
      assert.deepEqual(fingerprint(copy), original, 'the snapshot streamed the database it pinned');
      const hashed = await sha256OfFile(snapshot.file, { length: snapshot.sizeBytes });
      assert.deepEqual(hashed, await sha256OfFile(copy), 'and hashes it through the same descriptor');
      assert.equal((await snapshot.integrity).ok, true);
    } finally {
      await snapshot.release();
    }
  });
});
