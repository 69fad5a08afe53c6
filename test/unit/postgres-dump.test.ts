import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { dumpDigest } from '../../src/kinds/postgres/dump.js';
import { CopyFingerprinter, copyEndMarker, copyTextTailBytes, endsCopyText } from '../../src/postgres/dump-archive.js';
import { databaseConninfo, pgpassLookup } from '../../src/postgres/dump-connection.js';
import { scanGrowingFile } from '../../src/pipeline/growing-file.js';
import { finalSizeOf, storeAsWritten, Wakeup } from '../../src/postgres/dump-follow.js';

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-dump-follow-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** COPY text of `rows` rows of about 100 bytes, with pg_dump's end marker. */
function copyText(rows: number, seed: string): Buffer {
  const lines = Array.from({ length: rows }, (_, i) => `${i}\t${seed}\t${'x'.repeat(80)}\n`);
  return Buffer.concat([Buffer.from(lines.join('')), copyEndMarker]);
}

/** Appends `data` to `path` (created first, when missing) in pieces with pauses, as pg_dump writes a table's file. */
async function writeSlowly(path: string, data: Buffer, piece = 64 * 1024, pauseMs = 2): Promise<void> {
  await appendFile(path, '');
  for (let at = 0; at < data.length; at += piece) {
    await appendFile(path, data.subarray(at, at + piece));
    await sleep(pauseMs);
  }
}

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

  test('COPY text has ended only with the end marker as its own last line, which no row can imitate', () => {
    const ended = (...pieces: string[]) => {
      const fingerprinter = new CopyFingerprinter();
      for (const piece of pieces) fingerprinter.update(Buffer.from(piece));
      return fingerprinter.ended();
    };
    assert.equal(ended('\\.\n\n\n'), true, 'an empty table');
    assert.equal(ended('1\tone\n', '\\.\n', '\n\n'), true);
    assert.equal(ended('1\tone\n\\.\n'), false, 'pg_dump has not written all of the marker yet');
    // A value "\." is written escaped ("\\."), and two empty strings as empty lines: not the marker.
    assert.equal(ended('\\\\.\n\n\n'), false);
    assert.equal(ended('a\\\\.\n\n\n'), false);

    const partial = new CopyFingerprinter();
    partial.update(Buffer.from('1\tone\n2\ttw'));
    assert.deepEqual(partial.finishFile(), { rows: undefined, bytes: 10, sha256: sha256('1\tone\n2\ttw') }, 'not complete COPY text: no row count');
  });

  test('a growing file is read to its end: done when its content says so, or when the writer exited', async () => {
    await withTempDir(async (dir) => {
      const data = copyText(30_000, 'growing');
      const path = join(dir, '3345.dat');
      await writeFile(path, '');
      const writing = writeSlowly(path, data);
      const wakeup = new Wakeup();
      const fingerprint = new CopyFingerprinter();
      let chunks = 0;
      const bytes = await scanGrowingFile(
        path,
        { complete: () => fingerprint.ended(), writerFinished: () => false, waitForData: () => wakeup.wait(1), bufferBytes: 256 * 1024 },
        (chunk) => {
          fingerprint.update(chunk);
          chunks++;
        },
      );
      await writing;
      assert.equal(bytes, data.length, 'the writer never "exited": the end marker ended the read');
      assert.ok(chunks > 1, 'read while it grew');
      assert.deepEqual(fingerprint.finish(), { rows: 30_000, bytes: data.length, sha256: sha256(data) });

      // Content that never says it is complete: read until the writer exits, then to the final size.
      const other = join(dir, 'blobs.toc');
      await writeFile(other, '');
      const blob = randomBytes(300_000);
      let exited = false;
      const otherWriting = writeSlowly(other, blob, 32 * 1024).then(() => {
        exited = true;
      });
      const hash = createHash('sha256');
      const otherBytes = await scanGrowingFile(other, { complete: () => false, writerFinished: () => exited, waitForData: () => sleep(1) }, (chunk) => hash.update(chunk));
      await otherWriting;
      assert.equal(otherBytes, blob.length);
      assert.equal(hash.digest('hex'), sha256(blob));

      // The final size from the last bytes alone, as soon as pg_dump wrote the end marker.
      const sized = join(dir, '3346.dat');
      const sizedData = copyText(20_000, 'sized');
      await writeFile(sized, '');
      const sizedWriting = writeSlowly(sized, sizedData);
      const tailOptions = { tailBytes: copyTextTailBytes, ended: endsCopyText, writerFinished: () => false, waitForData: () => sleep(1) };
      assert.equal(await finalSizeOf(sized, tailOptions), sizedData.length, 'the writer never "exited": the end marker told');
      await sizedWriting;
      const lookalike = join(dir, '3347.dat');
      await writeFile(lookalike, 'a\\\\.\n\n\n');
      let finished = false;
      setTimeout(() => {
        finished = true;
      }, 30);
      assert.equal(await finalSizeOf(lookalike, { ...tailOptions, writerFinished: () => finished }), 7);
      assert.ok(finished, 'an escaped "\\." line is not the end: the writer\'s exit is');

      const stop = new AbortController();
      stop.abort(new Error('stopped'));
      await assert.rejects(scanGrowingFile(path, { complete: () => false, writerFinished: () => false, waitForData: () => sleep(1), signal: stop.signal }, () => undefined), /stopped/);
    });
  });

  test('files are stored while the writer works: data files as they appear, the rest after it exited; each whole', async () => {
    await withTempDir(async (dir) => {
      const directory = join(dir, 'dump');
      const tables = { '3356.dat': copyText(20_000, 'a'), '3357.dat': copyText(5, 'b'), '3358.dat': copyText(40_000, 'c') };
      const toc = randomBytes(5000);
      let writerDone = false;
      // The writer runs on until every table's store has started (however slowly the machine lists
      // the directory), so "started while the writer was still running" holds by construction.
      let everyTableStarted!: () => void;
      const tablesStarted = new Promise<void>((resolve) => (everyTableStarted = resolve));
      const writer = (async () => {
        await sleep(30); // the directory does not exist yet at first
        await mkdir(directory);
        await Promise.all(Object.entries(tables).map(([name, data]) => writeSlowly(join(directory, name), data)));
        await tablesStarted;
        await writeFile(join(directory, 'toc.dat'), toc);
        await sleep(20);
        writerDone = true;
      })();
      const started: Record<string, boolean> = {};
      const stored = await storeAsWritten({
        directory,
        writer,
        follow: (name) => /^\d+\.dat$/.test(name),
        concurrency: 2,
        pollMs: 2,
        abort: (reason) => assert.fail(`nothing fails here: ${String(reason)}`),
        store: async (file) => {
          started[file.name] = writerDone;
          if (Object.keys(tables).every((name) => name in started)) everyTableStarted();
          const fingerprint = new CopyFingerprinter();
          const bytes = await scanGrowingFile(file.path, { complete: () => file.name !== 'toc.dat' && fingerprint.ended(), writerFinished: file.writerFinished, waitForData: file.waitForData }, (chunk) =>
            fingerprint.update(chunk),
          );
          const fingerprinted = fingerprint.finishFile();
          assert.equal(fingerprinted.bytes, bytes);
          return fingerprinted;
        },
      });
      assert.deepEqual([...stored.keys()].sort(), ['3356.dat', '3357.dat', '3358.dat', 'toc.dat']);
      for (const [name, data] of Object.entries(tables)) {
        assert.equal(started[name], false, `${name} was started on while the writer was still running`);
        assert.deepEqual(stored.get(name), { bytes: data.length, rows: data.toString().split('\n').length - 4, sha256: sha256(data) });
      }
      assert.equal(started['toc.dat'], true, 'toc.dat waited for the writer');
      assert.equal(stored.get('toc.dat')?.sha256, sha256(await readFile(join(directory, 'toc.dat'))));
    });
  });

  test('the first failure stops everything: a failed store aborts the writer, a failed writer the stores; both settle first', async () => {
    await withTempDir(async (dir) => {
      // A store fails: abort() is told once, the writer is stopped through it, the store's error is thrown.
      const aborted: unknown[] = [];
      let writerSettled = false;
      const stopWriter = new AbortController();
      const writer = (async () => {
        await mkdir(join(dir, 'a'));
        await writeFile(join(dir, 'a', '1.dat'), 'partial');
        // The store may fail, and abort, while writeFile is still running: a listener added after that would never fire.
        await new Promise((_, reject) => {
          const killed = () => reject(new Error('writer killed'));
          if (stopWriter.signal.aborted) killed();
          else stopWriter.signal.addEventListener('abort', killed);
        });
      })().finally(() => {
        writerSettled = true;
      });
      await assert.rejects(
        storeAsWritten({
          directory: join(dir, 'a'),
          writer: writer.then(() => undefined),
          follow: () => true,
          concurrency: 2,
          pollMs: 2,
          abort: (reason) => {
            aborted.push(reason);
            stopWriter.abort(reason);
          },
          store: () => Promise.reject(new Error('repository full')),
        }),
        /repository full/,
      );
      assert.equal(aborted.length, 1);
      assert.ok(writerSettled, 'the writer had settled');

      // The writer fails: a store waiting for more bytes of its file is stopped, the writer's error is thrown.
      const stopStores = new AbortController();
      let storeStarted!: () => void;
      const storing = new Promise<void>((resolve) => (storeStarted = resolve));
      let storeSettled = false;
      await assert.rejects(
        storeAsWritten({
          directory: join(dir, 'b'),
          writer: (async () => {
            await mkdir(join(dir, 'b'));
            await writeFile(join(dir, 'b', '2.dat'), '1\tone\n');
            await storing; // fail while the store waits for more of 2.dat, not before it started
            throw new Error('pg_dump exited with status 1');
          })(),
          follow: () => true,
          concurrency: 1,
          pollMs: 2,
          abort: (reason) => stopStores.abort(reason),
          store: async (file) => {
            storeStarted();
            try {
              return await scanGrowingFile(file.path, { complete: () => false, writerFinished: file.writerFinished, waitForData: file.waitForData, signal: stopStores.signal }, () => undefined);
            } finally {
              storeSettled = true;
            }
          },
        }),
        /pg_dump exited with status 1/,
      );
      assert.ok(storeSettled, 'the store had settled');
    });
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
