import { open, type FileHandle } from 'node:fs/promises';
import { execa } from 'execa';

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

/** How to read a file that `writer` appends to until it exits: poll every pollMs, and stop once the writer has ended and everything was read. */
export function untilWriterExits(writer: Writer, pollMs: number): Pick<GrowingFileOptions, 'complete' | 'writerFinished' | 'waitForData'> {
  return { complete: () => false, writerFinished: () => writer.ended(), waitForData: () => pause(pollMs, writer.settled) };
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
export async function scanGrowingFile(path: string, options: GrowingFileOptions & Pick<GrowingFileChunksOptions, 'handle'>, onChunk: (chunk: Buffer) => void): Promise<number> {
  let bytes = 0;
  for await (const chunk of growingFileChunks(path, { ...options, reuseBuffer: true })) {
    bytes += chunk.length;
    onChunk(chunk);
  }
  return bytes;
}

export interface GrowingFileChunksOptions extends GrowingFileOptions {
  /** The file, already open for reading (see openOnceCreated); the caller closes it. Default: path is opened, and closed at the end. */
  handle?: FileHandle;
  /** Yield the same buffer every time (the consumer is done with a chunk when it asks for the next). */
  reuseBuffer?: boolean;
  /**
   * Punch a hole (fallocate) in what was handed on, every this many bytes: a file that only passes
   * through (written by one process, streamed away by this one) then takes about this much disk, not
   * its whole size. Best effort: on a file system without hole punching the file keeps its blocks.
   */
  releaseEveryBytes?: number;
}

/** The chunks of a growing file, as scanGrowingFile reads them, for streaming (a fresh buffer each unless reuseBuffer). */
export async function* growingFileChunks(path: string, options: GrowingFileChunksOptions): AsyncGenerator<Buffer> {
  const handle = options.handle ?? (await open(path, 'r'));
  const owned = options.handle === undefined;
  try {
    const bufferBytes = options.bufferBytes ?? 4 << 20;
    const shared = options.reuseBuffer ? Buffer.allocUnsafe(bufferBytes) : undefined;
    const releaser = options.releaseEveryBytes ? new ReadRangeReleaser(path, options.releaseEveryBytes) : undefined;
    let position = 0;
    for (;;) {
      options.signal?.throwIfAborted();
      // Only a size read after the writer had exited is final.
      const writerFinished = options.writerFinished();
      const { size } = await handle.stat();
      if (size < position) throw new Error(`${path} shrank from ${position} to ${size} bytes while it was read`);
      while (position < size) {
        options.signal?.throwIfAborted();
        const buffer = shared ?? Buffer.allocUnsafe(Math.min(bufferBytes, size - position));
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
        if (bytesRead === 0) throw new Error(`${path} ended at byte ${position}, expected ${size} bytes`);
        position += bytesRead;
        yield buffer.subarray(0, bytesRead);
        await releaser?.handedOn(position);
      }
      if (writerFinished || options.complete()) return;
      await options.waitForData();
    }
  } finally {
    if (owned) await handle.close();
  }
}

/** Punches holes in the part of a file already read, in steps of `everyBytes`; gives up quietly where the file system cannot. */
class ReadRangeReleaser {
  private releasedTo = 0;
  private supported = true;

  constructor(
    private readonly path: string,
    private readonly everyBytes: number,
  ) {}

  async handedOn(position: number): Promise<void> {
    if (!this.supported || position - this.releasedTo < this.everyBytes) return;
    // Node has no fallocate(2); util-linux's fallocate is in every Debian (essential package).
    const result = await execa('fallocate', ['--punch-hole', `--offset=${this.releasedTo}`, `--length=${position - this.releasedTo}`, this.path], { reject: false, stdin: 'ignore' });
    if (result.failed) this.supported = false;
    else this.releasedTo = position;
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
