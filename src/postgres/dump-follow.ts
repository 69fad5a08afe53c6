import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { GrowingFileOptions } from '../pipeline/growing-file.js';

/*
 * Storing a directory-format dump while pg_dump is still writing it. pg_dump -Fd -j N writes each
 * table's data into its own file (<dumpId>.dat), N at a time, and toc.dat last. Each data file is
 * fingerprinted while it grows, close behind pg_dump (the server produces the data on one core,
 * the fingerprint runs on another), and compressed and uploaded as soon as it is complete, while
 * pg_dump goes on with the other tables. A table's file is complete once it ends with pg_dump's
 * end marker (see endsCopyText), which finalSizeOf sees from its last bytes alone; any other file
 * once pg_dump has exited. What is left after pg_dump exits is compressing the files completed
 * last, which a plain `pg_dump; zstd` has to do as well.
 *
 * zstd reads each complete file itself (see createFileCompressor): piping the bytes through this
 * process instead, to compress while the file grows, costs the worker about as much CPU again
 * as the fingerprint (pipe writes, a fresh buffer per chunk), and on a machine whose cores the
 * database server needs too, that slows pg_dump down by more than it saves.
 */

/** Wakes whoever waits for "something changed" (the writer exited, a file appeared), or after a timeout. */
export class Wakeup {
  private waiters = new Set<() => void>();

  /** Resolves at the next notify(), or after `ms` at the latest. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/**
 * The final size of a file another process appends to, as soon as it is known: when its last
 * `tailBytes` bytes show that it is complete, or when the writer has exited. Reads nothing but
 * those bytes (bytes once written do not change), so it knows long before a reader of the whole
 * file that lags behind the writer would.
 */
export async function finalSizeOf(
  path: string,
  options: Omit<GrowingFileOptions, 'complete' | 'bufferBytes'> & { tailBytes: number; ended(tail: Buffer): boolean },
): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const tail = Buffer.alloc(options.tailBytes);
    let checked = -1;
    for (;;) {
      options.signal?.throwIfAborted();
      const writerFinished = options.writerFinished();
      const { size } = await handle.stat();
      if (writerFinished) return size;
      if (size !== checked) {
        const length = Math.min(size, tail.length);
        const { bytesRead } = await handle.read(tail, 0, length, size - length);
        checked = size;
        if (bytesRead === length && options.ended(tail.subarray(0, length))) return size;
      }
      await options.waitForData();
    }
  } finally {
    await handle.close();
  }
}

export interface FileInProgress {
  name: string;
  path: string;
  /** Whether the writer has exited successfully (every file's size is final). */
  writerFinished(): boolean;
  /** Waits up to the poll interval for more bytes or for the writer's exit. */
  waitForData(): Promise<void>;
}

export interface StoreAsWrittenOptions<T> {
  directory: string;
  /** The writer (pg_dump): resolves when it exited successfully, rejects with its failure. */
  writer: Promise<void>;
  /** Files worth starting on while the writer runs (the others wait for its exit, e.g. toc.dat). */
  follow(name: string): boolean;
  /** Files handled at once (pg_dump -j N writes N files at a time). */
  concurrency: number;
  /** Stores one file; reads it with scanGrowingFile (and finalSizeOf) while it may still grow. */
  store(file: FileInProgress): Promise<T>;
  /** Called once, with the first failure, to stop the writer and every store in progress. */
  abort(reason: unknown): void;
  /** How often the directory is listed and a caught-up reader looks for more bytes. */
  pollMs?: number;
}

/**
 * Stores every file a writer puts in a directory, starting on the files `follow` picks as soon as
 * they appear, and on all the others once the writer exited. Returns each file's result by name.
 * The first failure (the writer's or a store's) aborts everything; this waits for the writer and
 * every store to settle before it rethrows that failure, so nothing still runs afterwards.
 */
export async function storeAsWritten<T>(options: StoreAsWrittenOptions<T>): Promise<Map<string, T>> {
  const { directory, concurrency } = options;
  const pollMs = options.pollMs ?? 20;
  const wakeup = new Wakeup();
  let writer: 'running' | 'finished' | 'failed' = 'running';
  let listedAll = false;
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    if (failure) return;
    failure = { error };
    options.abort(error);
    wakeup.notify();
  };
  const writing = options.writer.then(
    () => {
      writer = 'finished';
      wakeup.notify();
    },
    (error: unknown) => {
      writer = 'failed';
      fail(error);
    },
  );

  const seen = new Set<string>();
  const queue: string[] = [];
  const results = new Map<string, T>();
  const list = async (all: boolean) => {
    const names = await readdir(directory).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[]; // the writer has not created it yet
      throw error;
    });
    let added = false;
    for (const name of names.sort()) {
      if (seen.has(name) || !(all || options.follow(name))) continue;
      seen.add(name);
      queue.push(name);
      added = true;
    }
    if (added) wakeup.notify();
  };
  const lister = async () => {
    try {
      while (writer === 'running' && !failure) {
        const started = performance.now();
        await list(false);
        // A directory of many thousand tables takes a while to list: do not spend a core on it.
        await wakeup.wait(Math.max(pollMs * 2, 4 * (performance.now() - started)));
      }
      if (writer === 'finished' && !failure) await list(true);
    } catch (error) {
      fail(error);
    } finally {
      listedAll = true;
      wakeup.notify();
    }
  };
  const file = (name: string): FileInProgress => ({
    name,
    path: join(directory, name),
    writerFinished: () => writer === 'finished',
    waitForData: () => wakeup.wait(pollMs),
  });
  const worker = async () => {
    while (!failure) {
      const name = queue.shift();
      if (name === undefined) {
        if (listedAll) return;
        await wakeup.wait(pollMs * 2);
        continue;
      }
      try {
        results.set(name, await options.store(file(name)));
      } catch (error) {
        fail(error);
      }
    }
  };
  await Promise.all([writing, lister(), ...Array.from({ length: Math.max(1, concurrency) }, worker)]);
  if (failure) throw failure.error;
  return results;
}

