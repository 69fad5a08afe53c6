/** Worker-thread side of check.ts: runs one SQLite check and posts its rows. */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { CheckRequest, CheckResponse } from './check.js';

const request = workerData as CheckRequest;
let response: CheckResponse;
try {
  const db = new Database(request.path, { fileMustExist: true, readonly: request.readonly });
  try {
    const rows = db.pragma(`${request.kind}(${request.maxProblems})`) as Array<Record<string, string>>;
    response = { problems: rows.map((row) => Object.values(row)[0] ?? '').filter((line) => line !== 'ok') };
  } finally {
    db.close();
  }
} catch (error) {
  response = { openError: (error as Error).message };
}
parentPort!.postMessage(response);
