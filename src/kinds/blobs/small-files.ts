import { closeSync, fchmodSync, fchownSync, fstatSync, futimesSync, openSync, readSync, writeSync, constants } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Small files are read and written with synchronous calls on the main thread. Each promise-based
 * file system call costs a hop to libuv's thread pool and back, tens of microseconds of overhead
 * for a file of a few kilobytes; a tree of 100,000 small files makes ~500,000 such calls per
 * backup or restore. The synchronous ones cost the system call alone. The event loop is given a
 * turn every few milliseconds (heartbeats, the zstd pipes) by `yieldNow`.
 */
export const smallFileBytes = 256 << 10;

let lastTurn = performance.now();

/** Lets the event loop run when synchronous work has held it for more than `ms`. */
export async function yieldNow(ms = 10): Promise<void> {
  if (performance.now() - lastTurn < ms) return;
  await nextTurn();
  lastTurn = performance.now();
}

export interface SmallFileRead {
  data: Buffer;
  before: { size: number; mtimeMs: number };
  after: { size: number; mtimeMs: number; ino: number; mode: number };
}

/** Reads a whole small file (stat before and after); undefined when it is gone. */
export function readSmallFile(path: string): SmallFileRead | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const before = fstatSync(fd);
    const buffer = Buffer.allocUnsafe(before.size);
    let filled = 0;
    while (filled < buffer.length) {
      const read = readSync(fd, buffer, filled, buffer.length - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    const after = fstatSync(fd);
    return { data: filled === buffer.length ? buffer : buffer.subarray(0, filled), before: { size: before.size, mtimeMs: before.mtimeMs }, after: { size: after.size, mtimeMs: after.mtimeMs, ino: after.ino, mode: after.mode & 0o7777 } };
  } finally {
    closeSync(fd);
  }
}

/** Writes a file of one blob whole, with its mode, mtime (and owner, as root) set on the same descriptor. */
export function writeSmallFile(path: string, data: Buffer, meta: { mode: number; mtimeMs: number; uid?: number; gid?: number }): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, done);
    if (meta.uid !== undefined && meta.gid !== undefined) fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, meta.mode);
    futimesSync(fd, meta.mtimeMs / 1000, meta.mtimeMs / 1000);
  } finally {
    closeSync(fd);
  }
}
