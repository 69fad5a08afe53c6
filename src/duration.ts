/**
 * Durations as the config writes them: a whole number and a unit, "90s", "10m", "1h", "7d" (the
 * units of systemd timers and restic's flags, minus the ones nobody can agree on: months, years).
 */
const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const durationPattern = /^(\d+)(ms|s|m|h|d)$/;

export const durationRule = 'a duration: a whole number and a unit, e.g. "30s", "10m", "1h" or "1d" (units ms, s, m, h, d)';

/** Milliseconds of a duration the schema has already validated; throws on anything else. */
export function durationMs(text: string): number {
  const match = durationPattern.exec(text);
  if (!match) throw new Error(`"${text}" is not ${durationRule}`);
  return Number(match[1]) * unitMs[match[2] as keyof typeof unitMs];
}

/** The shortest exact form of a number of milliseconds: 600000 -> "10m", 90000 -> "90s". */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms !== 0 && ms % unitMs[unit] === 0) return `${ms / unitMs[unit]}${unit}`;
  }
  return ms === 0 ? '0s' : `${ms}ms`;
}
