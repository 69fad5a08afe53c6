// @ts-check
/**
 * Runs in a worker thread (see snapshot.ts). It pins a consistent read snapshot of a live SQLite
 * database whose every page is in the main database file, reports its size, runs the integrity
 * check against that same snapshot, and keeps the snapshot open until the parent says "release".
 *
 * Why the main file alone is enough: while a write lock stops new commits, a checkpoint copies
 * every WAL frame into the main file; a read transaction begun at that moment sees exactly the
 * main file. While that reader lives, SQLite never lets a checkpoint overwrite pages it can see,
 * so the file's first pageCount pages stay equal to the snapshot while writers keep appending to
 * the WAL. That lets the backup stream the file with no temporary copy.
 *
 * Plain JavaScript (type-checked through JSDoc): a thread that had to load the TypeScript loader
 * first would cost the worker about 30 MB more per backup.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { useCheckCache } from './check-cache.mjs';
import { isDamage } from './damage.mjs';

/** @typedef {import('./holder-protocol.js').HolderInput} HolderInput */
/** @typedef {import('./holder-protocol.js').HolderMessage} HolderMessage */

const input = /** @type {HolderInput} */ (workerData);
const port = parentPort;
if (!port) throw new Error('snapshot-holder must run as a worker thread');

/** @param {HolderMessage} message */
function send(message) {
  port?.postMessage(message);
}

/** @param {number} ms */
function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** @returns {{ reader: Database.Database; attempts: number }} */
function pinSnapshot() {
  // The locker holds the write lock (so nothing commits) while the checkpointer empties the WAL;
  // the reader then begins its transaction and the locker lets writers go again.
  const open = () => new Database(input.path, { fileMustExist: true, timeout: input.busyTimeoutMs });
  const locker = open();
  const checkpointer = open();
  const reader = open();
  const closeHelpers = () => {
    locker.close();
    checkpointer.close();
  };
  const deadline = Date.now() + input.settleTimeoutMs;
  // Most of the WAL is copied before writers are held back: the locked checkpoint below then only
  // has the frames committed since, and writers wait for milliseconds, not for a large WAL.
  checkpointer.pragma('wal_checkpoint(PASSIVE)');
  for (let attempt = 1; ; attempt++) {
    locker.exec('BEGIN IMMEDIATE');
    try {
      const [result] = /** @type {Array<{ busy: number; log: number; checkpointed: number }>} */ (checkpointer.pragma('wal_checkpoint(PASSIVE)'));
      const settled = result !== undefined && result.busy === 0 && result.log === result.checkpointed;
      if (settled) {
        reader.exec('BEGIN');
        // A read transaction starts lazily: touch the schema to take the snapshot now.
        reader.prepare('SELECT count(*) FROM sqlite_schema').get();
        closeHelpers();
        return { reader, attempts: attempt };
      }
    } finally {
      if (locker.open) locker.exec('ROLLBACK');
    }
    if (Date.now() > deadline) {
      reader.close();
      closeHelpers();
      throw Object.assign(
        new Error(
          `could not fold the WAL of ${input.path} into the main file within ${input.settleTimeoutMs} ms: ` +
            'long-running readers keep old pages pinned; the step retries',
        ),
        { code: 'SnapshotBusy' },
      );
    }
    sleep(Math.min(200, 10 * attempt));
  }
}

function main() {
  /** @type {ReturnType<typeof pinSnapshot>} */
  let pinned;
  try {
    pinned = pinSnapshot();
  } catch (error) {
    const code = /** @type {{ code?: string }} */ (error).code ?? 'SnapshotFailed';
    send({ kind: 'error', code, message: /** @type {Error} */ (error).message });
    return;
  }
  const { reader, attempts } = pinned;

  const pageSize = /** @type {number} */ (reader.pragma('page_size', { simple: true }));
  const pageCount = /** @type {number} */ (reader.pragma('page_count', { simple: true }));
  const journalMode = /** @type {string} */ (reader.pragma('journal_mode', { simple: true }));
  const sqliteVersion = /** @type {{ v: string }} */ (reader.prepare('SELECT sqlite_version() AS v').get()).v;
  send({
    kind: 'pinned',
    pageSize,
    pageCount,
    journalMode,
    sqliteVersion,
    snapshotAt: new Date().toISOString(),
    settleAttempts: attempts,
  });

  if (input.integrityCheck !== 'none') {
    useCheckCache(reader);
    const started = Date.now();
    /** @type {string[]} */
    let problems;
    try {
      const rows = /** @type {Array<Record<string, string>>} */ (reader.pragma(`${input.integrityCheck}(100)`, { simple: false }));
      problems = rows.map((row) => Object.values(row)[0] ?? '').filter((line) => line !== 'ok');
    } catch (error) {
      // On some damage SQLite stops the check with an error instead of listing problems: that too
      // is a failed check of this snapshot, not a reason to try again.
      const { code, message } = /** @type {{ code?: string; message: string }} */ (error);
      if (!isDamage(code)) throw error;
      problems = [`${code}: ${message}`];
    }
    send({ kind: 'integrity', ok: problems.length === 0, problems, durationMs: Date.now() - started });
  }

  port?.once('message', () => {
    reader.exec('COMMIT');
    reader.close();
    port.close();
  });
}

main();
