import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { isoWeek, parseSpan, subtractSpan, wallTime } from '../../src/retention/calendar.js';
import { countPlan, describePolicy, effectivePolicy, planRetention, type PlannedBackup, type RetentionCandidate, type RetentionPolicy } from '../../src/retention/plan.js';
import { lifeboatError } from '../helpers/assertions.js';

/** Backups at the given UTC times ("2026-03-01T10:00"), ids in time order. */
function backups(times: string[], group = 'sqlite'): RetentionCandidate[] {
  return times.map((time, index) => ({ id: `b${String(index).padStart(3, '0')}-${time}`, group, time: `${time}:00Z` }));
}

const now = new Date('2030-01-01T00:00:00Z');

function plan(candidates: RetentionCandidate[], policy: RetentionPolicy, extra: { verified?: string[]; inUse?: Record<string, string[]>; at?: Date } = {}): PlannedBackup[] {
  return planRetention(candidates, { minimumRedundancy: 1, ...policy }, {
    now: extra.at ?? now,
    ...(extra.verified ? { verified: new Set(extra.verified) } : {}),
    ...(extra.inUse ? { inUse: new Map(Object.entries(extra.inUse)) } : {}),
  });
}

/** The times of the kept backups, newest first. */
function kept(planned: PlannedBackup[]): string[] {
  return planned.filter((b) => b.action === 'keep').map((b) => b.time.slice(0, 16));
}

function reasonsOf(planned: PlannedBackup[], time: string): string[] {
  const backup = planned.find((b) => b.time.startsWith(time));
  assert.ok(backup, `a backup at ${time}`);
  return backup.reasons;
}

describe('retention plan: restic forget semantics', () => {
  test('keepLast keeps the n newest backups', () => {
    const planned = plan(backups(['2026-03-01T10:00', '2026-03-01T11:00', '2026-03-01T12:00', '2026-03-01T13:00']), { keepLast: 2 });
    assert.deepEqual(kept(planned), ['2026-03-01T13:00', '2026-03-01T12:00']);
    assert.deepEqual(reasonsOf(planned, '2026-03-01T12:00'), ['last 2/2']);
    assert.deepEqual(reasonsOf(planned, '2026-03-01T10:00'), ['matches no rule']);
  });

  test('keepDaily keeps the newest backup of each of the n newest days that hold one, skipping days without backups', () => {
    const planned = plan(
      backups(['2026-03-01T09:00', '2026-03-01T21:00', '2026-03-02T09:00', '2026-03-02T21:00', '2026-03-05T03:00', '2026-03-05T04:00']),
      { keepDaily: 2 },
    );
    assert.deepEqual(kept(planned), ['2026-03-05T04:00', '2026-03-02T21:00']);
    assert.deepEqual(reasonsOf(planned, '2026-03-05T04:00'), ['daily 1/2', 'minimum redundancy']);
    assert.deepEqual(reasonsOf(planned, '2026-03-02T21:00'), ['daily 2/2']);
  });

  test('a count not used up keeps the oldest backup as well', () => {
    // Two days of backups and keepDaily 5: the newest of each day, and then the oldest of all.
    const planned = plan(backups(['2026-03-01T09:00', '2026-03-01T21:00', '2026-03-02T09:00', '2026-03-02T21:00']), { keepDaily: 5, minimumRedundancy: 1 });
    assert.deepEqual(kept(planned), ['2026-03-02T21:00', '2026-03-01T21:00', '2026-03-01T09:00']);
    assert.deepEqual(reasonsOf(planned, '2026-03-01T09:00'), ['oldest daily 3/5']);
    assert.equal(planned.find((b) => b.time.startsWith('2026-03-02T09:00'))?.action, 'remove');
  });

  test('a used-up count does not keep the oldest backup', () => {
    const planned = plan(backups(['2026-03-01T09:00', '2026-03-01T21:00', '2026-03-02T09:00']), { keepDaily: 2 });
    assert.deepEqual(kept(planned), ['2026-03-02T09:00', '2026-03-01T21:00']);
  });

  test('rules are ORed and every rule that keeps a backup is named', () => {
    const times = Array.from({ length: 40 }, (_, day) => new Date(Date.UTC(2026, 0, 1 + day, 2)).toISOString().slice(0, 16));
    const planned = plan(backups(times), { keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 2 });
    // 2026-02-09 is a Monday: the newest backup is of ISO week 7, the previous Sunday ends week 6.
    assert.deepEqual(kept(planned), ['2026-02-09T02:00', '2026-02-08T02:00', '2026-02-07T02:00', '2026-01-31T02:00']);
    assert.deepEqual(reasonsOf(planned, '2026-02-09T02:00'), ['last 1/2', 'daily 1/3', 'weekly 1/2', 'monthly 1/2', 'minimum redundancy']);
    assert.deepEqual(reasonsOf(planned, '2026-02-08T02:00'), ['last 2/2', 'daily 2/3', 'weekly 2/2']);
    assert.deepEqual(reasonsOf(planned, '2026-02-07T02:00'), ['daily 3/3']);
    assert.deepEqual(reasonsOf(planned, '2026-01-31T02:00'), ['monthly 2/2']);
    assert.deepEqual(countPlan(planned), { keep: 4, remove: 36 });
  });

  test('weeks are ISO weeks: 2020-12-31 and 2021-01-03 are in the same week, 2021-01-04 starts the next', () => {
    assert.deepEqual(isoWeek(2020, 12, 31), { year: 2020, week: 53 });
    assert.deepEqual(isoWeek(2021, 1, 3), { year: 2020, week: 53 });
    assert.deepEqual(isoWeek(2021, 1, 4), { year: 2021, week: 1 });
    assert.deepEqual(isoWeek(2024, 12, 30), { year: 2025, week: 1 });
    const planned = plan(backups(['2020-12-28T12:00', '2020-12-31T12:00', '2021-01-03T12:00', '2021-01-04T12:00']), { keepWeekly: 2 });
    assert.deepEqual(kept(planned), ['2021-01-04T12:00', '2021-01-03T12:00']);
  });

  test('keepHourly, keepMonthly and keepYearly count their own buckets', () => {
    const hourly = plan(backups(['2026-03-01T10:05', '2026-03-01T10:55', '2026-03-01T11:05', '2026-03-01T12:30']), { keepHourly: 2 });
    assert.deepEqual(kept(hourly), ['2026-03-01T12:30', '2026-03-01T11:05']);
    const monthly = plan(backups(['2025-11-30T10:00', '2025-12-01T10:00', '2025-12-31T10:00', '2026-01-01T10:00']), { keepMonthly: 2 });
    assert.deepEqual(kept(monthly), ['2026-01-01T10:00', '2025-12-31T10:00']);
    const yearly = plan(backups(['2024-06-01T10:00', '2024-12-31T10:00', '2025-12-31T10:00', '2026-01-01T10:00']), { keepYearly: 3 });
    assert.deepEqual(kept(yearly), ['2026-01-01T10:00', '2025-12-31T10:00', '2024-12-31T10:00']);
  });

  test('keepWithin is relative to the newest backup, not to now, and keeps only strictly newer ones', () => {
    const planned = plan(backups(['2026-03-01T10:00', '2026-03-02T10:00', '2026-03-02T10:01', '2026-03-03T10:00', '2026-03-04T10:00']), { keepWithin: '2d' });
    assert.deepEqual(kept(planned), ['2026-03-04T10:00', '2026-03-03T10:00', '2026-03-02T10:01']);
    assert.deepEqual(reasonsOf(planned, '2026-03-02T10:01'), ['within 2d']);
    // A backup from the future (a clock that jumped) does not move the window.
    const withFuture = plan(backups(['2026-03-01T10:00', '2026-03-02T10:00', '2031-01-01T00:00']), { keepWithin: '1d' });
    assert.deepEqual(kept(withFuture), ['2031-01-01T00:00', '2026-03-02T10:00']);
  });

  test('keepWithin counts calendar months and years on the wall clock (March 31 minus one month is March 3)', () => {
    assert.deepEqual(parseSpan('1y2m3w4d5h'), { years: 1, months: 2, weeks: 3, days: 4, hours: 5 });
    const cutoff = subtractSpan(Date.parse('2026-03-31T12:00:00Z'), parseSpan('1m'), 'UTC');
    assert.equal(new Date(cutoff).toISOString(), '2026-03-03T12:00:00.000Z');
    const planned = plan(backups(['2026-03-03T12:00', '2026-03-03T12:01', '2026-03-31T12:00']), { keepWithin: '1m' });
    assert.deepEqual(kept(planned), ['2026-03-31T12:00', '2026-03-03T12:01']);
  });

  test('days are those of the configured time zone', () => {
    // 22:30 and 23:30 UTC on March 1 are 23:30 and 00:30 in Berlin (UTC+1): two Berlin days, one UTC day.
    const times = ['2026-02-27T10:00', '2026-03-01T22:30', '2026-03-01T23:30'];
    assert.deepEqual(kept(plan(backups(times), { keepDaily: 2, timezone: 'UTC' })), ['2026-03-01T23:30', '2026-02-27T10:00']);
    assert.deepEqual(kept(plan(backups(times), { keepDaily: 2, timezone: 'Europe/Berlin' })), ['2026-03-01T23:30', '2026-03-01T22:30']);
    // New York: 03:30 UTC on March 2 is still March 1 there.
    assert.deepEqual(wallTime(Date.parse('2026-03-02T03:30:00Z'), 'America/New_York').day, 1);
  });

  test('hours across a daylight-saving change are wall-clock hours (the repeated hour is one bucket)', () => {
    // Berlin falls back on 2026-10-25 at 03:00 CEST -> 02:00 CET: 00:30 and 01:30 UTC are both 02:30 local.
    const planned = plan(backups(['2026-10-25T00:30', '2026-10-25T01:30', '2026-10-25T02:30']), { keepHourly: 5, timezone: 'Europe/Berlin' });
    assert.deepEqual(reasonsOf(planned, '2026-10-25T02:30'), ['hourly 1/5', 'minimum redundancy']);
    assert.deepEqual(reasonsOf(planned, '2026-10-25T01:30'), ['hourly 2/5']);
    assert.deepEqual(reasonsOf(planned, '2026-10-25T00:30'), ['oldest hourly 3/5']);
  });

  test('the newest minimumRedundancy backups are never removed, whatever the rules say', () => {
    const planned = plan(backups(['2026-03-01T10:00', '2026-03-01T11:00', '2026-03-01T12:00', '2026-03-01T13:00']), { keepDaily: 1, minimumRedundancy: 3 });
    assert.deepEqual(kept(planned), ['2026-03-01T13:00', '2026-03-01T12:00', '2026-03-01T11:00']);
    assert.deepEqual(reasonsOf(planned, '2026-03-01T11:00'), ['minimum redundancy']);
  });

  test('the newest verified backup is kept even when no rule keeps it; older verified ones are not', () => {
    const candidates = backups(['2026-03-01T10:00', '2026-03-02T10:00', '2026-03-03T10:00', '2026-03-04T10:00']);
    const planned = plan(candidates, { keepLast: 1 }, { verified: [candidates[0]!.id, candidates[1]!.id] });
    assert.deepEqual(kept(planned), ['2026-03-04T10:00', '2026-03-02T10:00']);
    assert.deepEqual(reasonsOf(planned, '2026-03-02T10:00'), ['newest verified']);
  });

  test('a backup in use by a running restore, drill, verify or copy is kept and the run is named', () => {
    const candidates = backups(['2026-03-01T10:00', '2026-03-02T10:00', '2026-03-03T10:00']);
    const planned = plan(candidates, { keepLast: 1 }, { inUse: { [candidates[0]!.id]: ['drill-orders-20260303T100000Z', 'restore-orders-20260303T100500Z'] } });
    assert.deepEqual(reasonsOf(planned, '2026-03-01T10:00'), ['in use by drill-orders-20260303T100000Z', 'in use by restore-orders-20260303T100500Z']);
    assert.equal(planned.find((b) => b.time.startsWith('2026-03-02'))?.action, 'remove');
  });

  test('each kind of backup is planned on its own: dumps do not push base backups out', () => {
    const dumps = backups(['2026-03-01T01:00', '2026-03-02T01:00', '2026-03-03T01:00'], 'postgres-dump');
    const bases = backups(['2026-03-01T02:00', '2026-03-02T02:00'], 'postgres-base').map((b) => ({ ...b, id: `base-${b.id}` }));
    const planned = plan([...dumps, ...bases], { keepDaily: 1 });
    assert.deepEqual(kept(planned), ['2026-03-03T01:00', '2026-03-02T02:00']);
    assert.deepEqual(planned.map((b) => b.time.slice(0, 16)), ['2026-03-03T01:00', '2026-03-02T02:00', '2026-03-02T01:00', '2026-03-01T02:00', '2026-03-01T01:00'], 'newest first');
  });

  test('an empty policy is refused, and so is a bad duration or time zone', () => {
    const candidates = backups(['2026-03-01T10:00']);
    assert.throws(() => plan(candidates, {}), lifeboatError('InvalidConfig', /no rule that keeps a backup/));
    assert.throws(() => plan(candidates, { keepDaily: 0, minimumRedundancy: 5 }), lifeboatError('InvalidConfig', /no rule/));
    assert.throws(() => plan(candidates, { keepWithin: '30 days' }), lifeboatError('InvalidConfig', /not a duration/));
    assert.throws(() => plan(candidates, { keepWithin: '5m3y' }), lifeboatError('InvalidConfig', /not a duration/));
    assert.throws(() => plan(candidates, { keepDaily: 1, timezone: 'Mars/Olympus' }), lifeboatError('InvalidConfig', /not a time zone/));
    assert.throws(() => plan(candidates, { keepDaily: 1.5 }), lifeboatError('InvalidConfig', /whole number/));
  });

  test('no backups: nothing to plan', () => {
    assert.deepEqual(plan([], { keepDaily: 7 }), []);
  });

  test('describePolicy says the rules in words', () => {
    assert.equal(describePolicy({ keepDaily: 7, keepWeekly: 4, keepWithin: '2d', timezone: 'Europe/Berlin' }), 'keep 7 daily, 4 weekly, all within 2d of the newest; minimum redundancy 1; Europe/Berlin');
  });
});

describe('retention config', () => {
  const config = (retention: unknown) => ({
    repositories: { local: { type: 'fs', path: '/tmp/r' }, offsite: { type: 'fs', path: '/tmp/o' } },
    targets: { orders: { type: 'sqlite', path: '/tmp/orders.db', repositories: ['local', 'offsite'], retention } },
  });

  test('a per-repository override replaces the target\'s fields for that repository', () => {
    const parsed = parseConfig(config({ keepDaily: 7, keepWeekly: 4, repositories: { offsite: { keepDaily: 0, keepMonthly: 12 } } }), 'test');
    const retention = parsed.targets.orders!.retention!;
    assert.deepEqual(effectivePolicy(retention, 'local'), { keepDaily: 7, keepWeekly: 4 });
    assert.deepEqual(effectivePolicy(retention, 'offsite'), { keepDaily: 0, keepWeekly: 4, keepMonthly: 12 });
  });

  test('an empty policy, an unknown repository, a bad duration or time zone is a config error naming the field', () => {
    assert.throws(() => parseConfig(config({ minimumRedundancy: 2 }), 'test'), lifeboatError('InvalidConfig', /targets\.orders\.retention: the policy for repository "local" has no rule/));
    assert.throws(
      () => parseConfig(config({ keepDaily: 7, repositories: { offsite: { keepDaily: 0 } } }), 'test'),
      lifeboatError('InvalidConfig', /targets\.orders\.retention\.repositories\.offsite: the policy for repository "offsite" has no rule/),
    );
    assert.throws(() => parseConfig(config({ keepDaily: 7, repositories: { elsewhere: { keepDaily: 1 } } }), 'test'), lifeboatError('InvalidConfig', /does not store backups in repository "elsewhere"/));
    assert.throws(() => parseConfig(config({ keepWithin: '30 days' }), 'test'), lifeboatError('InvalidConfig', /retention\.keepWithin: a duration/));
    assert.throws(() => parseConfig(config({ keepDaily: 7, timezone: 'Mars/Olympus' }), 'test'), lifeboatError('InvalidConfig', /retention\.timezone: an IANA time zone/));
    assert.throws(() => parseConfig(config({ keepDaily: 7, minimumRedundancy: 0 }), 'test'), lifeboatError('InvalidConfig', /minimumRedundancy/));
  });
});
