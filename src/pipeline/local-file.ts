import { ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
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

/** fsync(2) of a file or a directory (what makes a rename or a new directory entry durable). */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes every byte of the buffers, in order, at the file's position, in as few system calls as
 * the kernel allows (one writev each); resolves to their total. A short write continues where it
 * stopped.
 */
export async function writeAll(handle: { writev(buffers: Buffer[]): Promise<{ bytesWritten: number }> }, buffers: Buffer[]): Promise<number> {
  let pending = buffers.filter((buffer) => buffer.length > 0);
  let total = 0;
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending);
    total += bytesWritten;
    while (pending.length > 0 && bytesWritten >= pending[0]!.length) bytesWritten -= pending.shift()!.length;
    if (bytesWritten > 0) pending[0] = pending[0]!.subarray(bytesWritten);
  }
  return total;
}
