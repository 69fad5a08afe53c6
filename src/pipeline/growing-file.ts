import { open, type FileHandle } from 'node:fs/promises';

/*
 * Files that another process is still writing (appending only): zstd decoding a restore, pg_dump
 * writing a table. Reading them while they grow lets the hashing, fingerprinting or syncing finish
 * moments after the writer does, instead of costing a second pass afterwards.
 */

/** Waits up to `ms`, or less when `settled` resolves first; leaves no timer behind. */
export function pause(ms: number, settled: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([settled, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).then(() => clearTimeout(timer));
}

/** The state of a writer given as the promise of its completion. */
export interface Writer {
  /** Whether it has ended, successfully or not (a size read after this is final). */
  ended(): boolean;
  /** Its failure, once it has ended with one. */
  failure(): { error: unknown } | undefined;
  /** Resolves (never rejects) when it ends. */
  readonly settled: Promise<void>;
}

export function watchWriter(written: Promise<unknown>): Writer {
  let ended = false;
  let failure: { error: unknown } | undefined;
  const settled = written.then(
    () => {
      ended = true;
    },
    (error: unknown) => {
      failure = { error };
      ended = true;
    },
  );
  return { ended: () => ended, failure: () => failure, settled };
}

/** Opens path for reading once the writer has created it; rejects with the writer's failure if it ends without creating it. */
export async function openOnceCreated(path: string, writer: Writer, pollMs: number): Promise<FileHandle> {
  for (;;) {
    const handle = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT' || writer.ended()) throw writer.failure()?.error ?? error;
      return undefined;
    });
    if (handle) return handle;
    await pause(pollMs, writer.settled);
  }
}

export interface GrowingFileOptions {
  /**
   * Whether what was read so far is all the file will ever hold, judged from its content (a
   * table's COPY text ends with an end marker). Asked only when every byte written so far was read.
   */
  complete(): boolean;
  /** Whether the writer has exited, so that the size of the file is final. */
  writerFinished(): boolean;
  /** Waits a little while for more bytes (or for the writer to exit). */
  waitForData(): Promise<void>;
  signal?: AbortSignal;
  bufferBytes?: number;
}

/**
 * Reads a file that another process appends to, from its first byte until it is complete: either
 * its content says so, or the writer has exited and every byte up to the final size was read.
 * One reused buffer: `onChunk` must be done with each piece when it returns. Returns the bytes read.
 */
export async function scanGrowingFile(path: string, options: GrowingFileOptions, onChunk: (chunk: Buffer) => void): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(options.bufferBytes ?? 4 << 20);
    let position = 0;
    for (;;) {
      options.signal?.throwIfAborted();
      // Only a size read after the writer had exited is final.
      const writerFinished = options.writerFinished();
      const { size } = await handle.stat();
      if (size < position) throw new Error(`${path} shrank from ${position} to ${size} bytes while it was read`);
      while (position < size) {
        options.signal?.throwIfAborted();
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
        if (bytesRead === 0) throw new Error(`${path} ended at byte ${position}, expected ${size} bytes`);
        position += bytesRead;
        onChunk(buffer.subarray(0, bytesRead));
      }
      if (writerFinished || options.complete()) return position;
      await options.waitForData();
    }
  } finally {
    await handle.close();
  }
}

/**
 * Makes a file that another process is writing (appending) durable while it grows: an fdatasync
 * every `intervalMs` while the writer runs, so the disk writes overlap the writing instead of all
 * waiting for the end, then a full fsync once `written` has resolved. Resolves only after that last
 * fsync, i.e. when everything the writer wrote is on disk; rejects if `written` does.
 */
export async function syncWhileGrowing(path: string, written: Promise<unknown>, options: { intervalMs?: number } = {}): Promise<void> {
  const intervalMs = options.intervalMs ?? 250;
  const writer = watchWriter(written);
  const handle = await openOnceCreated(path, writer, 10);
  try {
    while (!writer.ended()) {
      await handle.datasync();
      await pause(intervalMs, writer.settled);
    }
    const failure = writer.failure();
    if (failure) throw failure.error;
    await handle.sync();
  } finally {
    await handle.close();
  }
}
