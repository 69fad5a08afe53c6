// @ts-check
/**
 * Worker-thread side of check.ts: runs one SQLite check and posts its rows. Plain JavaScript
 * (type-checked through JSDoc), so the thread does not load the TypeScript loader.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { useCheckCache } from './check-cache.mjs';

const request = /** @type {import('./check.js').CheckRequest} */ (workerData);
/** @type {import('./check.js').CheckResponse} */
let response;
try {
  const db = new Database(request.path, { fileMustExist: true, readonly: request.readonly });
  try {
    useCheckCache(db);
    const rows = /** @type {Array<Record<string, string>>} */ (db.pragma(`${request.kind}(${request.maxProblems})`));
    response = { problems: rows.map((row) => Object.values(row)[0] ?? '').filter((line) => line !== 'ok') };
  } finally {
    db.close();
  }
} catch (error) {
  response = { openError: /** @type {Error} */ (error).message };
}
parentPort?.postMessage(response);
