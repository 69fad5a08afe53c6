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
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface HolderInput {
  path: string;
  integrityCheck: 'integrity_check' | 'quick_check' | 'none';
  /** How long to keep trying to get every WAL frame into the main file. */
  settleTimeoutMs: number;
  busyTimeoutMs: number;
}

export type HolderMessage =
  | {
      kind: 'pinned';
      pageSize: number;
      pageCount: number;
      journalMode: string;
      sqliteVersion: string;
      snapshotAt: string;
      settleAttempts: number;
    }
  | { kind: 'integrity'; ok: boolean; problems: string[]; durationMs: number }
  | { kind: 'error'; code: string; message: string };

const input = workerData as HolderInput;
const port = parentPort;
if (!port) throw new Error('snapshot-holder must run as a worker thread');

function send(message: HolderMessage): void {
  port!.postMessage(message);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pinSnapshot(): { reader: Database.Database; attempts: number } {
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
  for (let attempt = 1; ; attempt++) {
    locker.exec('BEGIN IMMEDIATE');
    try {
      const [result] = checkpointer.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
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

function main(): void {
  let pinned: ReturnType<typeof pinSnapshot>;
  try {
    pinned = pinSnapshot();
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'SnapshotFailed';
    send({ kind: 'error', code, message: (error as Error).message });
    return;
  }
  const { reader, attempts } = pinned;

  const pageSize = reader.pragma('page_size', { simple: true }) as number;
  const pageCount = reader.pragma('page_count', { simple: true }) as number;
  const journalMode = reader.pragma('journal_mode', { simple: true }) as string;
  const sqliteVersion = (reader.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
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
    const started = Date.now();
    const rows = reader.pragma(`${input.integrityCheck}(100)`, { simple: false }) as Array<Record<string, string>>;
    const problems = rows.map((row) => Object.values(row)[0] ?? '').filter((line) => line !== 'ok');
    send({ kind: 'integrity', ok: problems.length === 0, problems, durationMs: Date.now() - started });
  }

  port!.once('message', () => {
    reader.exec('COMMIT');
    reader.close();
    port!.close();
  });
}

main();
