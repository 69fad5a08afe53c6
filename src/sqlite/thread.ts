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

