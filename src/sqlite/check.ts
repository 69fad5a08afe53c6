import { once } from 'node:events';
import { LifeboatError } from '../errors.js';
import { startSqliteThread } from './thread.js';

export type CheckKind = 'integrity_check' | 'quick_check';

export interface CheckRequest {
  path: string;
  kind: CheckKind;
  maxProblems: number;
  readonly: boolean;
}

export type CheckResponse = { problems: string[] } | { openError: string };

/**
 * Runs PRAGMA integrity_check or quick_check on a database file in a worker thread (a 1 GiB
 * database takes seconds, and the event loop must keep heartbeating meanwhile). Throws
 * IntegrityCheckFailed with the first problems SQLite reports.
 */
export async function checkDatabase(
  path: string,
  kind: CheckKind,
  options: { readonly?: boolean; signal?: AbortSignal } = {},
): Promise<{ durationMs: number }> {
  const started = Date.now();
  const request: CheckRequest = { path, kind, maxProblems: 20, readonly: options.readonly ?? false };
  const thread = startSqliteThread('check-thread', request);
  let response: CheckResponse;
  try {
    // once() with a signal rejects when it aborts: a cancelled check stops instead of running on.
    const settled = options.signal ? { signal: options.signal } : {};
    [response] = (await Promise.race([
      once(thread, 'message', settled),
      once(thread, 'error', settled).then(([error]) => Promise.reject(error as Error)),
    ])) as [CheckResponse];
  } finally {
    await thread.terminate();
  }
  if ('openError' in response) {
    throw new LifeboatError('IntegrityCheckFailed', `cannot open ${path} as SQLite: ${response.openError}`);
  }
  if (response.problems.length) {
    throw new LifeboatError('IntegrityCheckFailed', `${kind} of ${path} failed: ${response.problems.join('; ')}`);
  }
  return { durationMs: Date.now() - started };
}
