/**
 * What the latency suites (chatops, monitoring) share: the nearest-rank percentile of their
 * samples, and how a standalone suite ends (every missed target said, exit code 1 when any was).
 */

/** The p-th percentile (nearest rank) of samples sorted ascending; NaN when there are none. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Says every missed target; the suite's exit code: 1 when any was missed. */
export function verdict(say: (line: string) => void, failures: string[]): number {
  for (const failure of failures) say(`TARGET MISSED: ${failure}`);
  return failures.length ? 1 : 0;
}

/** Runs a standalone suite and exits with its code; an error is said (with its stack) and exits 1. */
export function runSuite(say: (line: string) => void, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      say(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exit(1);
    },
  );
}
