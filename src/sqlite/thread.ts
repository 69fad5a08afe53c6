import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starts a module of this folder in a worker thread, so long synchronous SQLite calls do not block
 * the event loop (heartbeats, streams). Under tsx the module is TypeScript, and Node 20 does not
 * hand module hooks on to worker threads, so a two-line bootstrap registers tsx inside the thread.
 */
export function startSqliteThread(moduleName: string, workerData: unknown): Worker {
  const here = fileURLToPath(import.meta.url);
  const url = new URL(`./${moduleName}${extname(here)}`, import.meta.url).href;
  if (extname(here) !== '.ts') return new Worker(new URL(url), { workerData });
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/**
 * mmap window for connections that read a whole database (checks): page reads through mmap make
 * quick_check about 3x faster than read() calls. SQLite caps it at its compile-time maximum (2 GiB
 * in better-sqlite3's build); the rest of a larger file is read as usual.
 */
export const wholeFileMmapBytes = 2 ** 40;
