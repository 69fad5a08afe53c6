import { LifeboatError } from '../errors.js';
import { assertTimeZone, isoWeek, parseSpan, subtractSpan, wallTime, type WallTime } from './calendar.js';

/**
 * The retention planner: which backups a policy keeps and why, with restic's `forget` semantics.
 * Pure (no I/O, the clock is an argument), so the retention runbook, `lifeboat status` and the
 * tests all get the same answer from the same manifests.
 *
 * Semantics (restic's, evaluated per group, newest first):
 * - keepLast n keeps the n newest backups.
 * - keepHourly/Daily/Weekly/Monthly/Yearly n keep the newest backup of each of the n newest
 *   calendar buckets (hour, day, ISO week, month, year) that hold a backup, on the wall clock of
 *   the policy's time zone. A count that is not used up when the oldest backup is reached keeps
 *   that oldest backup too ("oldest daily 5/7"), which keeps the longest history the count allows.
 * - keepWithin d keeps every backup newer than d before the newest backup (not before now: a
 *   target whose backups stopped does not lose them all when d has passed).
 * - The rules are ORed: a backup kept by any rule is kept, and every rule that keeps it is named.
 * - On top of the policy, never removed: the `minimumRedundancy` newest backups, the newest
 *   verified backup, and every backup in use by a running restore, drill, verify or copy.
 */

export const countRules = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
export type CountRule = (typeof countRules)[number];

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** A duration in restic's notation ("30d", "1y6m"): keep everything this much newer than the newest backup. */
  keepWithin?: string;
  /** The newest this-many backups are never removed, whatever the rules say. Default 1. */
  minimumRedundancy?: number;
  /** The calendar of the buckets; default "UTC". */
  timezone?: string;
}

/** One complete backup as the planner sees it. */
export interface RetentionCandidate {
  id: string;
  /** Backups are planned per group: a policy keeps n daily dumps and n daily base backups of one target. */
  group: string;
  /** When the backed-up data is from (the manifest's snapshotAt), ISO 8601. */
  time: string;
}

export interface PlanContext {
  now: Date;
  /** Ids of backups that verification read in full and found valid (see src/verify/state.ts). */
  verified?: ReadonlySet<string>;
  /** Backup id -> the runs (workflow ids) holding a live lease on it. */
  inUse?: ReadonlyMap<string, readonly string[]>;
}

export interface PlannedBackup {
  id: string;
  group: string;
  time: string;
  action: 'keep' | 'remove';
  /** Why it is kept ("daily 3/7", "within 30d", "newest verified", "minimum redundancy", "in use by drill-..."), or why not. */
  reasons: string[];
}

const bucketLabels: Record<CountRule, string> = {
  keepLast: 'last',
  keepHourly: 'hourly',
  keepDaily: 'daily',
  keepWeekly: 'weekly',
  keepMonthly: 'monthly',
  keepYearly: 'yearly',
};

/** The calendar bucket of a backup for each rule (keepLast: every backup is its own). */
function bucketOf(rule: CountRule, wall: WallTime, index: number): string {
  switch (rule) {
    case 'keepLast':
      return `#${index}`;
    case 'keepHourly':
      return `${wall.year}-${wall.month}-${wall.day}T${wall.hour}`;
    case 'keepDaily':
      return `${wall.year}-${wall.month}-${wall.day}`;
    case 'keepWeekly': {
      const { year, week } = isoWeek(wall.year, wall.month, wall.day);
      return `${year}-W${week}`;
    }
    case 'keepMonthly':
      return `${wall.year}-${wall.month}`;
    case 'keepYearly':
      return `${wall.year}`;
  }
}

/** True when the policy has no rule that keeps anything (minimumRedundancy and timezone are not rules). */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  return countRules.every((rule) => !((policy[rule] ?? 0) > 0)) && !policy.keepWithin;
}

/** Throws InvalidConfig for a policy that keeps nothing, a bad count, duration or time zone. */
export function assertUsablePolicy(policy: RetentionPolicy, where: string): void {
  if (isEmptyPolicy(policy)) {
    throw new LifeboatError(
      'InvalidConfig',
      `the retention policy of ${where} has no rule that keeps a backup (${describePolicy(policy)})`,
      'Set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly or keepWithin under retention: an empty policy would remove every backup but the newest, so it is refused',
    );
  }
  for (const rule of [...countRules, 'minimumRedundancy'] as const) {
    const value = policy[rule];
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      throw new LifeboatError('InvalidConfig', `retention ${rule} of ${where} is ${String(value)}; it must be a whole number >= 0`);
    }
  }
  if (policy.keepWithin) parseSpan(policy.keepWithin);
  assertTimeZone(policy.timezone ?? 'UTC');
}

/** The policy in words: "keep 7 daily, 4 weekly, all within 30d of the newest; minimum redundancy 1; UTC". */
export function describePolicy(policy: RetentionPolicy): string {
  const counts = countRules.filter((rule) => (policy[rule] ?? 0) > 0).map((rule) => `${policy[rule]} ${rule === 'keepLast' ? 'latest' : bucketLabels[rule]}`);
  const rules = [...counts, ...(policy.keepWithin ? [`all within ${policy.keepWithin} of the newest`] : [])];
  return `${rules.length ? `keep ${rules.join(', ')}` : 'no rule'}; minimum redundancy ${policy.minimumRedundancy ?? 1}; ${policy.timezone ?? 'UTC'}`;
}

/**
 * Keep or remove for every candidate, newest first, with every reason. Throws InvalidConfig for
 * an unusable policy (see assertUsablePolicy): an empty policy is never applied.
 */
export function planRetention(candidates: readonly RetentionCandidate[], policy: RetentionPolicy, context: PlanContext): PlannedBackup[] {
  assertUsablePolicy(policy, 'this target');
  const groups = new Map<string, RetentionCandidate[]>();
  for (const candidate of candidates) {
    const group = groups.get(candidate.group) ?? [];
    group.push(candidate);
    groups.set(candidate.group, group);
  }
  const planned = [...groups.values()].flatMap((group) => planGroup(group, policy, context));
  return planned.sort(newestFirst);
}

function newestFirst(a: { time: string; id: string }, b: { time: string; id: string }): number {
  const byTime = Date.parse(b.time) - Date.parse(a.time);
  return byTime !== 0 ? byTime : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function planGroup(group: RetentionCandidate[], policy: RetentionPolicy, context: PlanContext): PlannedBackup[] {
  const timeZone = policy.timezone ?? 'UTC';
  const sorted = [...group].sort(newestFirst);
  const times = sorted.map((backup) => {
    const ms = Date.parse(backup.time);
    if (Number.isNaN(ms)) throw new LifeboatError('BackupCorrupt', `backup ${backup.id} has no valid time (${JSON.stringify(backup.time)})`);
    return ms;
  });
  // The newest backup that is not in the future (a clock that jumped must not push keepWithin forward).
  const nowMs = context.now.getTime();
  const latest = times.find((ms) => ms <= nowMs) ?? times.at(-1);
  const withinCutoff = policy.keepWithin && latest !== undefined ? subtractSpan(latest, parseSpan(policy.keepWithin), timeZone) : undefined;
  const counters = countRules
    .filter((rule) => (policy[rule] ?? 0) > 0)
    .map((rule) => ({ rule, count: policy[rule]!, used: 0, lastBucket: undefined as string | undefined }));
  const minimumRedundancy = policy.minimumRedundancy ?? 1;
  const newestVerified = sorted.find((backup) => context.verified?.has(backup.id))?.id;

  return sorted.map((backup, index) => {
    const ms = times[index]!;
    const wall = wallTime(ms, timeZone);
    const oldest = index === sorted.length - 1;
    const reasons: string[] = [];
    for (const counter of counters) {
      if (counter.used >= counter.count) continue;
      const bucket = bucketOf(counter.rule, wall, index);
      const newBucket = bucket !== counter.lastBucket;
      if (!newBucket && !oldest) continue;
      counter.used++;
      counter.lastBucket = bucket;
      reasons.push(`${newBucket ? '' : 'oldest '}${bucketLabels[counter.rule]} ${counter.used}/${counter.count}`);
    }
    if (withinCutoff !== undefined && ms > withinCutoff) reasons.push(`within ${policy.keepWithin}`);
    if (backup.id === newestVerified) reasons.push('newest verified');
    if (index < minimumRedundancy) reasons.push('minimum redundancy');
    for (const holder of context.inUse?.get(backup.id) ?? []) reasons.push(`in use by ${holder}`);
    const keep = reasons.length > 0;
    return { id: backup.id, group: backup.group, time: backup.time, action: keep ? 'keep' : 'remove', reasons: keep ? reasons : ['matches no rule'] };
  });
}

/** How many backups a plan keeps and removes. */
export function countPlan(planned: readonly PlannedBackup[]): { keep: number; remove: number } {
  const remove = planned.filter((backup) => backup.action === 'remove').length;
  return { keep: planned.length - remove, remove };
}

/** A policy with per-repository overrides applied field by field (a 0 there turns a rule off). */
export function effectivePolicy(policy: RetentionPolicy & { repositories?: Record<string, RetentionPolicy> | undefined }, repository: string): RetentionPolicy {
  const merged: Record<string, unknown> = { ...policy, ...(policy.repositories?.[repository] ?? {}) };
  const effective: RetentionPolicy = {};
  for (const field of [...countRules, 'keepWithin', 'minimumRedundancy', 'timezone'] as const) {
    if (merged[field] !== undefined) (effective as Record<string, unknown>)[field] = merged[field];
  }
  return effective;
}
