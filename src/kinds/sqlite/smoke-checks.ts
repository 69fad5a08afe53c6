import Database from 'better-sqlite3';
import type { SmokeCheck } from '../../config/common.js';
import type { SmokeCheckResult } from '../contract.js';
import { actualOf, expectedOf } from '../smoke-check-values.js';

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
