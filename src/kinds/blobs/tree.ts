import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError } from '../../errors.js';
import { yieldNow } from './small-files.js';
import type { IndexEntry } from './tree-index.js';

/** Runs `work` over items with at most `limit` at once; the first failure stops the rest and is thrown. */
export async function forEachLimited<T>(items: Iterable<T>, limit: number, work: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failure: unknown;
  const lane = async () => {
    for (let next = iterator.next(); !next.done && failure === undefined; next = iterator.next()) {
      if (signal?.aborted) throw signal.reason;
      await work(next.value);
    }
  };
  const lanes = Array.from({ length: Math.max(1, limit) }, () =>
    lane().catch((error: unknown) => {
      failure ??= error;
    }),
  );
  await Promise.all(lanes);
  if (failure !== undefined) throw failure;
}

export function entryOf(path: string, info: Stats, type: IndexEntry['t']): IndexEntry {
  return { p: path, t: type, z: type === 'f' ? info.size : 0, m: info.mode & 0o7777, u: info.uid, g: info.gid, mt: info.mtimeMs, i: info.ino };
}

/**
 * Every directory, regular file and symlink under root (root itself excluded), as index entries
 * sorted by path, with their lstat. Other kinds of file (sockets, devices, FIFOs) are not
 * uploads: counted in `skipped`. Directories are read one level at a time, entries stat'ed
 * `parallel` at once (a tree of 100,000 files is 100,000 lstat calls).
 */
export async function walkTree(root: string, options: { parallel?: number; signal?: AbortSignal; onProgress?: (entries: number) => void } = {}): Promise<{ entries: IndexEntry[]; skipped: string[] }> {
  const rootInfo = await lstat(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new LifeboatError('SourceNotFound', `the root ${root} does not exist`, 'Check the target\'s path in lifeboat.config.yaml');
    throw error;
  });
  if (!rootInfo.isDirectory()) throw new LifeboatError('InvalidConfig', `the root ${root} is not a directory`, 'A blobs target\'s path is the directory that holds the uploads');
  const entries: IndexEntry[] = [];
  const skipped: string[] = [];
  let directories = [''];
  while (directories.length > 0) {
    const next: string[] = [];
    for (const relative of directories) {
      if (options.signal?.aborted) throw options.signal.reason;
      // Synchronous calls, a turn for the event loop every few ms: see small-files.ts.
      const names = readdirSync(relative === '' ? root : join(root, relative)).sort();
      for (const name of names) {
        await yieldNow();
        const path = relative === '' ? name : `${relative}/${name}`;
        let info: Stats;
        try {
          info = lstatSync(join(root, path));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while the tree was read
          throw error;
        }
        if (info.isFile()) entries.push(entryOf(path, info, 'f'));
        else if (info.isDirectory()) {
          entries.push(entryOf(path, info, 'd'));
          next.push(path);
        } else if (info.isSymbolicLink()) {
          const entry = entryOf(path, info, 'l');
          entry.l = readlinkSync(join(root, path));
          entries.push(entry);
        } else skipped.push(path);
      }
      options.onProgress?.(entries.length);
    }
    directories = next.sort();
  }
  entries.sort((a, b) => (a.p < b.p ? -1 : a.p > b.p ? 1 : 0));
  return { entries, skipped };
}
