import { ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

/**
 * The descriptor of the local file behind a stream, when the stream is a whole file opened and not
 * read yet (what the fs backend's get returns): a subprocess can then read the file itself instead
 * of being fed through a pipe by this process. Undefined for anything else (an S3 body, a range, a
 * stream already read from), and callers fall back to streaming. The descriptor stays owned by the
 * stream: destroy the stream once done with it.
 */
export function wholeFileDescriptor(stream: Readable): number | undefined {
  if (!(stream instanceof ReadStream)) return undefined;
  // fd, start and end are set by every fs.ReadStream but not declared in Node's typings.
  const { fd, start, end } = stream as ReadStream & { fd?: unknown; start?: unknown; end?: unknown };
  const whole = (start === undefined || start === 0) && (end === undefined || end === Infinity);
  const untouched = stream.bytesRead === 0 && stream.readableFlowing === null && !stream.destroyed;
  return typeof fd === 'number' && whole && untouched ? fd : undefined;
}

/** Waits up to `ms`, or less when `settled` resolves first; leaves no timer behind. */
function pause(ms: number, settled: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([settled, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).then(() => clearTimeout(timer));
}

/**
 * Makes a file that another process is writing (appending) durable while it grows: an fdatasync
 * every `intervalMs` while the writer runs, so the disk writes overlap the writing instead of all
 * waiting for the end, then a full fsync once `written` has resolved. Resolves only after that last
 * fsync, i.e. when everything the writer wrote is on disk; rejects if `written` does.
 */
export async function syncWhileGrowing(path: string, written: Promise<unknown>, options: { intervalMs?: number } = {}): Promise<void> {
  const intervalMs = options.intervalMs ?? 250;
  let finished = false;
  let failure: unknown;
  const writerDone = written.then(
    () => {
      finished = true;
    },
    (error: unknown) => {
      failure = error;
      finished = true;
    },
  );
  // The writer creates the file: wait until it exists (or the writer has already given up).
  let handle: FileHandle | undefined;
  while (!handle) {
    handle = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT' || finished) throw failure ?? error;
      return undefined;
    });
    if (!handle) await pause(10, writerDone);
  }
  try {
    while (!finished) {
      await handle.datasync();
      await pause(intervalMs, writerDone);
    }
    if (failure !== undefined) throw failure;
    await handle.sync();
  } finally {
    await handle.close();
  }
}
