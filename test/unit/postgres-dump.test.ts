import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { dumpDigest } from '../../activities/postgres-dump.js';
import { CopyFingerprinter, copyEndMarker } from '../../src/postgres/dump-archive.js';
import { databaseConninfo, pgpassLookup } from '../../src/postgres/dump-connection.js';

const connection = { host: 'db.internal', port: 5432, database: 'orders', user: 'lifeboat', maintenanceDatabase: 'postgres' };

describe('pg_dump fingerprints and connection settings', () => {
  test('a table fingerprint is the sha256 of its COPY text and the rows before the end marker, however it is chunked', () => {
    const text = Buffer.concat([Buffer.from('1\tone\\nline\n2\ttwo\n3\tthree\n'), copyEndMarker]);
    for (const size of [1, 2, 7, text.length]) {
      const fingerprinter = new CopyFingerprinter();
      for (let i = 0; i < text.length; i += size) fingerprinter.update(text.subarray(i, i + size));
      assert.deepEqual(fingerprinter.finish(), { rows: 3, bytes: text.length, sha256: createHash('sha256').update(text).digest('hex') });
    }
    const empty = new CopyFingerprinter();
    empty.update(copyEndMarker);
    assert.equal(empty.finish().rows, 0);
  });

  test('table data without pg_dump\'s end marker is an incomplete dump', () => {
    const fingerprinter = new CopyFingerprinter();
    fingerprinter.update(Buffer.from('1\tone\n2\ttw'));
    assert.throws(() => fingerprinter.finish(), /end-of-data marker/);
  });

  test('the dump digest is what `sha256sum * | sha256sum` prints in the dump directory, in any listing order', () => {
    const files = [
      { name: 'toc.dat', sha256: 'b'.repeat(64) },
      { name: '3345.dat', sha256: 'a'.repeat(64) },
    ];
    const expected = createHash('sha256').update(`${'a'.repeat(64)}  3345.dat\n${'b'.repeat(64)}  toc.dat\n`).digest('hex');
    assert.equal(dumpDigest(files), expected);
    assert.equal(dumpDigest([...files].reverse()), expected);
  });

  test('pgpass lookup follows libpq: first match wins, * matches anything, \\: and \\\\ are escapes', () => {
    const file = ['# comment', 'other:5432:*:lifeboat:nope', 'db.internal:5432:orders:lifeboat:pa\\:ss\\\\word', '*:*:*:*:fallback'].join('\n');
    assert.equal(pgpassLookup(file, connection, 'orders'), 'pa:ss\\word');
    assert.equal(pgpassLookup(file, connection, 'postgres'), 'fallback');
    assert.equal(pgpassLookup('db.internal:5432:orders:someone:x', connection, 'orders'), undefined);
    assert.equal(pgpassLookup('localhost:5432:*:lifeboat:sock', { ...connection, host: '/var/run/postgresql' }, 'orders'), 'sock', 'a socket directory matches localhost');
  });

  test('database names go to libpq as a quoted dbname, so "=" or quotes cannot turn them into a connection string', () => {
    assert.equal(databaseConninfo("we'ird = db"), "dbname='we\\'ird = db'");
    assert.equal(databaseConninfo('back\\slash'), "dbname='back\\\\slash'");
  });
});
