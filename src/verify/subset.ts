import { createHash } from 'node:crypto';
import { LifeboatError } from '../errors.js';

/**
 * How much stored data a verification reads back and hashes:
 * - none: manifests parse and every object exists with its size (no data read);
 * - full: every object;
 * - subset n/t: the objects of n of t slices. An object's slice is fixed by its key (sha256 of the
 *   key, modulo t), so adding or removing backups never moves another object to another slice. A
 *   cursor kept in the repository says which slices the next run reads: each run reads the n
 *   slices after the previous run's, so every object is read at least once every ceil(t/n) runs
 *   (every t runs for 1/t, each object exactly once per t runs), whatever happens between runs
 *   (new backups, removed backups, full reads, failed runs, runs with another t: each t has its own cursor).
 * "x%" is the fraction x/100 in lowest terms ("10%" = 1/10, "2.5%" = 1/40).
 */
export type ReadData = { mode: 'none' } | { mode: 'full' } | { mode: 'subset'; n: number; t: number };

/** Parses what `--read-data-subset` (or the runbook's readData field) says; InvalidInput otherwise. */
export function parseReadData(value: unknown): ReadData {
  if (value === undefined || value === null || value === 'none' || value === false) return { mode: 'none' };
  if (value === 'full' || value === true) return { mode: 'full' };
  const text = typeof value === 'string' ? value.trim() : undefined;
  const fraction = text === undefined ? null : /^(\d+)\/(\d+)$/.exec(text);
  if (fraction) {
    const n = Number(fraction[1]);
    const t = Number(fraction[2]);
    if (n >= 1 && t >= 1 && n <= t && t <= 10_000) return n === t ? { mode: 'full' } : { mode: 'subset', ...lowestTerms(n, t) };
  }
  const percent = text === undefined ? null : /^(\d{1,3})(?:\.(\d{1,2}))?%$/.exec(text);
  if (percent) {
    const decimals = percent[2] ?? '';
    const scale = 10 ** decimals.length;
    const n = Number(percent[1]) * scale + Number(decimals || '0');
    const t = 100 * scale;
    if (n >= 1 && n <= t) return n === t ? { mode: 'full' } : { mode: 'subset', ...lowestTerms(n, t) };
  }
  throw new LifeboatError(
    'InvalidInput',
    `read-data subset ${JSON.stringify(value)} is not "n/t" (1 <= n <= t <= 10000) or a percentage between 0 and 100`,
    'Write e.g. "1/7" (a seventh of the data per run, all of it every 7 runs), "10%" or "2.5%"; "full" reads everything',
  );
}

function lowestTerms(n: number, t: number): { n: number; t: number } {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const divisor = gcd(n, t);
  return { n: n / divisor, t: t / divisor };
}

export function describeReadData(readData: ReadData): string {
  return readData.mode === 'subset' ? `${readData.n}/${readData.t}` : readData.mode;
}

/** The slice (0 ... t-1) an object belongs to, from its key alone. */
export function sliceOf(key: string, t: number): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) % t;
}

/** The slices a run starting at `cursor` reads, and the cursor of the run after it. */
export function slicesFrom(cursor: number, readData: { n: number; t: number }): { slices: Set<number>; next: number } {
  const slices = new Set<number>();
  for (let i = 0; i < readData.n; i++) slices.add((cursor + i) % readData.t);
  return { slices, next: (cursor + readData.n) % readData.t };
}
