import type { SmokeCheck } from '../config/common.js';

/** What a smoke check asks for, in words, as reports show it: `= 1`, `at least 3 rows`, `the query runs`. */
export function expectedOf(check: SmokeCheck): string {
  const parts = [
    ...(check.expect !== undefined ? [`= ${JSON.stringify(check.expect)}`] : []),
    ...(check.minRows !== undefined ? [`at least ${check.minRows} row${check.minRows === 1 ? '' : 's'}`] : []),
  ];
  return parts.length ? parts.join(', ') : 'the query runs';
}

/** What the copy answered: the first column of the first row, and the row count. */
export function actualOf(rows: unknown[][]): string {
  const first = rows[0]?.[0];
  return `${first === undefined ? 'no rows' : JSON.stringify(first)} (${rows.length} row${rows.length === 1 ? '' : 's'})`;
}
