import Database from 'better-sqlite3';
import type { SmokeCheck } from '../src/config/schema.js';

export interface SmokeCheckResult {
  name: string;
  passed: boolean;
  detail: string;
  durationMs: number;
  /** What the check asks for, in words: `= 1`, `at least 3 rows`, `the query runs` (absent in results of older runs). */
  expected?: string;
  /** What the copy answered: the first column of the first row and the row count, or the query's error. */
  actual?: string;
}

/** The expected and actual values of a smoke check, as reports show them. */
export function expectedOf(check: SmokeCheck): string {
  const parts = [
    ...(check.expect !== undefined ? [`= ${JSON.stringify(check.expect)}`] : []),
    ...(check.minRows !== undefined ? [`at least ${check.minRows} row${check.minRows === 1 ? '' : 's'}`] : []),
  ];
  return parts.length ? parts.join(', ') : 'the query runs';
}

export function actualOf(rows: unknown[][]): string {
  return `${describe(rows[0]?.[0])} (${rows.length} row${rows.length === 1 ? '' : 's'})`;
}

function describe(value: unknown): string {
  return value === undefined ? 'no rows' : JSON.stringify(value);
}

/**
 * Runs the target's smoke checks read-only against a restored copy. Never throws for a failed
 * check: the drill reports pass/fail per check.
 */
export function runSmokeChecks(input: { path: string; checks: SmokeCheck[] }): SmokeCheckResult[] {
  const db = new Database(input.path, { readonly: true, fileMustExist: true });
  try {
    return input.checks.map((check) => {
      const started = Date.now();
      try {
        const rows = db.prepare(check.sql).raw(true).all() as unknown[][];
        const first = rows[0]?.[0];
        const problems: string[] = [];
        if (check.minRows !== undefined && rows.length < check.minRows) problems.push(`returned ${rows.length} rows, expected at least ${check.minRows}`);
        if (check.expect !== undefined && String(first) !== String(check.expect)) problems.push(`returned ${describe(first)}, expected ${JSON.stringify(check.expect)}`);
        return {
          name: check.name,
          passed: problems.length === 0,
          detail: problems.length ? problems.join('; ') : `returned ${describe(first)}`,
          durationMs: Date.now() - started,
          expected: expectedOf(check),
          actual: actualOf(rows),
        };
      } catch (error) {
        const failed = `query failed: ${(error as Error).message}`;
        return { name: check.name, passed: false, detail: failed, durationMs: Date.now() - started, expected: expectedOf(check), actual: failed };
      }
    });
  } finally {
    db.close();
  }
}
