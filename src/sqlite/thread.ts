import { Worker } from 'node:worker_threads';

/**
 * Starts a thread module of this folder (a plain .mjs file), so long synchronous SQLite calls do
 * not block the event loop (heartbeats, streams). The thread modules are JavaScript on purpose:
 * Node 20 does not hand module hooks on to worker threads, so a TypeScript thread would have to
 * load tsx itself, which costs about 30 MB per thread.
 */
export function startSqliteThread(moduleName: 'snapshot-holder' | 'check-thread', workerData: unknown): Worker {
  return new Worker(new URL(`./${moduleName}.mjs`, import.meta.url), { workerData });
}
