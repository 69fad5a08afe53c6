import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { LifeboatError } from '../errors.js';
import type { HolderInput, HolderMessage } from './holder-protocol.js';
import { isDamage } from './damage.mjs';
import { startSqliteThread } from './thread.js';

export type IntegrityCheckKind = 'integrity_check' | 'quick_check' | 'none';

export interface IntegrityResult {
  kind: IntegrityCheckKind;
  ok: boolean;
  problems: string[];
  durationMs: number;
}

/**
 * A consistent, point-in-time view of a live SQLite database, streamed straight from its main file
 * (no temporary copy) while writers keep committing to the WAL. See snapshot-holder.mjs for why the
 * main file is enough.
 *
 * Everything is read through one descriptor, opened before the snapshot is pinned and checked to
 * name the same file as the path once it is: a restore that renames a new file onto the path
 * during the backup changes what the path names, not what this descriptor reads (the file the
 * snapshot holder pinned). Never reopen the path to read a snapshot.
 */
export interface SqliteSnapshot {
  path: string;
  /** The database file as it was when the snapshot was pinned; closed by release(). Read it with positioned reads. */
  file: FileHandle;
  pageSize: number;
  pageCount: number;
  sizeBytes: number;
  /**
   * The file is exactly the snapshot's size (the usual case right after the checkpoint), so a
   * reader of the whole file from offset 0 reads exactly the snapshot.
   */
  fileMatchesSnapshot: boolean;
  journalMode: string;
  sqliteVersion: string;
  /** When the snapshot was pinned: the recovery point of a backup made from it. */
  snapshotAt: string;
  /** The integrity check of this very snapshot, running concurrently with the read. */
  integrity: Promise<IntegrityResult>;
  /** The database bytes as of snapshotAt; may be called once. */
  stream(highWaterMark?: number): Readable;
  /** Lets checkpoints run again; always call it (finally). Safe to call twice. */
  release(): Promise<void>;
}

export interface SnapshotOptions {
  integrityCheck?: IntegrityCheckKind;
  settleTimeoutMs?: number;
  busyTimeoutMs?: number;
}

const sqliteMagic = Buffer.from('SQLite format 3\0', 'latin1');

/** Throws SourceNotFound or NotASqliteDatabase with what was found at path. */
export async function assertSqliteFile(path: string): Promise<void> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') {
      throw new LifeboatError('SourceNotFound', `database file ${path} does not exist`, 'Check the target\'s path in the config');
    }
    throw error;
  });
  if (!info.isFile()) {
    throw new LifeboatError('NotASqliteDatabase', `${path} is not a regular file`, 'Point the target\'s path at the SQLite database file');
  }
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(sqliteMagic.length);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < header.length || !header.equals(sqliteMagic)) {
      throw new LifeboatError(
        'NotASqliteDatabase',
        `${path} is not a SQLite database (${info.size} bytes, header does not start with "SQLite format 3")`,
        'Point the target\'s path at the SQLite database file',
      );
    }
  } finally {
    await handle.close();
  }
}

/** What to do when the database being backed up turns out damaged. */
export const damagedSourceHint = 'The live database is damaged: do not overwrite older backups; restore or repair it (sqlite3 .recover)';

/** A damaged file is a typed, final failure; anything else (locks, I/O) may pass on a retry. */
function snapshotFailure(path: string, code: string, message: string): Error {
  if (isDamage(code)) {
    return new LifeboatError(
      'IntegrityCheckFailed',
      `${path} is damaged: SQLite cannot read it (${code}: ${message})`,
      damagedSourceHint,
    );
  }
  return new Error(`snapshot of ${path} failed (${code}): ${message}`);
}

/** What a thread threw arrives as a structured clone (a SqliteError loses its class): make it an Error again. */
function threadError(path: string, error: unknown): Error {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return snapshotFailure(path, typeof code === 'string' ? code : 'ThreadFailed', typeof message === 'string' ? message : String(error));
}

export async function openSnapshot(path: string, options: SnapshotOptions = {}): Promise<SqliteSnapshot> {
  await assertSqliteFile(path);
  const file = await open(path, 'r');
  try {
    return await pinThrough(path, file, options);
  } catch (error) {
    await file.close().catch(() => undefined);
    throw error;
  }
}

async function pinThrough(path: string, file: FileHandle, options: SnapshotOptions): Promise<SqliteSnapshot> {
  const opened = await file.stat();
  const integrityCheck = options.integrityCheck ?? 'integrity_check';
  const input: HolderInput = {
    path,
    integrityCheck,
    settleTimeoutMs: options.settleTimeoutMs ?? 10_000,
    busyTimeoutMs: options.busyTimeoutMs ?? 10_000,
  };
  const worker = startSqliteThread('snapshot-holder', input);

  let exited = false;
  const exit = new Promise<void>((resolve) => worker.once('exit', () => {
    exited = true;
    resolve();
  }));

  const pinned = await new Promise<Extract<HolderMessage, { kind: 'pinned' }>>((resolve, reject) => {
    const onMessage = (message: HolderMessage) => {
      if (message.kind === 'pinned') {
        worker.off('message', onMessage);
        resolve(message);
      } else if (message.kind === 'error') {
        reject(snapshotFailure(path, message.code, message.message));
      }
    };
    worker.on('message', onMessage);
    worker.once('error', (error: unknown) => reject(threadError(path, error)));
    void exit.then(() => reject(new Error(`snapshot holder for ${path} exited before pinning a snapshot`)));
  });

  const integrity: Promise<IntegrityResult> =
    integrityCheck === 'none'
      ? Promise.resolve({ kind: 'none', ok: true, problems: [], durationMs: 0 })
      : new Promise((resolve, reject) => {
          worker.on('message', (message: HolderMessage) => {
            if (message.kind === 'integrity') resolve({ kind: integrityCheck, ok: message.ok, problems: message.problems, durationMs: message.durationMs });
          });
          worker.once('error', (error: unknown) => reject(threadError(path, error)));
          void exit.then(() => reject(new Error(`snapshot holder for ${path} exited before its integrity check finished`)));
        });
  // A caller that fails before awaiting the check must not crash the process with an unhandled rejection.
  integrity.catch(() => undefined);

  // The holder opened the path after the descriptor was: if the path still names the descriptor's
  // file now, the holder pinned that file (unless it was renamed away and back in between).
  const named = await stat(path).catch(() => undefined);
  if (named?.ino !== opened.ino || named.dev !== opened.dev) {
    worker.postMessage('release');
    await exit;
    throw new Error(`${path} was replaced by another file while its snapshot was pinned (a restore renaming a new database into place?); the step tries again`);
  }
  const sizeBytes = pinned.pageSize * pinned.pageCount;
  const { size: fileSize } = await file.stat();
  if (fileSize < sizeBytes) {
    worker.postMessage('release');
    await exit;
    throw new Error(`${path} is ${fileSize} bytes but its snapshot needs ${sizeBytes}: the file changed underneath the snapshot`);
  }

  let streamed = false;
  return {
    path,
    file,
    pageSize: pinned.pageSize,
    pageCount: pinned.pageCount,
    sizeBytes,
    fileMatchesSnapshot: fileSize === sizeBytes,
    journalMode: pinned.journalMode,
    sqliteVersion: pinned.sqliteVersion,
    snapshotAt: pinned.snapshotAt,
    integrity,
    stream(highWaterMark = 1 << 20) {
      if (streamed) throw new Error('a snapshot can be streamed once');
      streamed = true;
      // Positioned reads (start given) through the pinned descriptor; the handle stays open for release().
      return file.createReadStream({ start: 0, end: sizeBytes - 1, highWaterMark, autoClose: false });
    },
    async release() {
      if (!exited) {
        // The holder waits for the integrity check to end before it reads the message.
        worker.postMessage('release');
        const timer = setTimeout(() => void worker.terminate(), 60_000);
        await exit;
        clearTimeout(timer);
      }
      await file.close().catch(() => undefined);
    },
  };
}
