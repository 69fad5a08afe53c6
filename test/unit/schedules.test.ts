/**
 * Schedules as the config declares them: what is accepted, what is refused and how the message
 * says it, and the Temporal Schedule each entry becomes (src/schedules/declared.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { invalidConfigMessage } from '../helpers/config.js';
import { cronProblem, parseCalendarField, toCalendarSpec } from '../../src/schedules/calendar.js';
import { declaredSchedules } from '../../src/schedules/declared.js';
import type { CopyInput } from '../../workflows/copy.js';
import { durationMs, formatDuration } from '../../src/duration.js';

const settings = { address: 'localhost:7233', namespace: 'default', taskQueue: 'lifeboat' };

function configWith(schedules: Record<string, unknown>, target: Record<string, unknown> = {}) {
  return {
    repositories: { local: { type: 'fs', path: '/var/backups/lifeboat' }, offsite: { type: 'fs', path: '/mnt/offsite' } },
    targets: { orders: { type: 'sqlite', path: '/srv/orders.sqlite', repositories: ['local'], schedules, ...target } },
  };
}

describe('schedules in the config', () => {
  test('an entry gets the defaults an operator would expect: UTC, no jitter, skip overlapping runs, catch up a day, keep going after a failure', () => {
    const config = parseConfig(configWith({ nightly: { runbook: 'backup', cron: '0 2 * * *' } }), 'test');
    assert.deepEqual(config.targets.orders!.schedules.nightly, {
      runbook: 'backup',
      cron: '0 2 * * *',
      timezone: 'UTC',
      jitter: '0s',
      overlap: 'skip',
      catchupWindow: '1d',
      pauseOnFailure: false,
    });
    assert.deepEqual(parseConfig(configWith({}), 'test').targets.orders!.schedules, {});
  });

  test('each wrong "when" is refused naming the field and what is wrong', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ runbook: 'backup' }, /schedules\.nightly: say when it runs: cron, calendar or every/],
      [{ runbook: 'backup', cron: '0 2 * * *', every: '1h' }, /schedules\.nightly\.every: give one of cron, calendar or every, not cron and every/],
      [{ runbook: 'backup', cron: '0 2 * *' }, /schedules\.nightly\.cron: a cron string has 5 fields .* has 4/],
      [{ runbook: 'backup', cron: '0 25 * * *' }, /schedules\.nightly\.cron: hour field: 25 is outside 0-23/],
      [{ runbook: 'backup', cron: '0 2 * * FRI-MON' }, /dayOfWeek field: "FRI-MON": the range ends before it starts/],
      [{ runbook: 'backup', cron: '@every 5m' }, /not one of @yearly, @monthly, @weekly, @daily, @hourly \(for an interval use "every"\)/],
      [{ runbook: 'backup', cron: 'TZ=Europe/Berlin 0 2 * * *' }, /set the time zone with "timezone"/],
      [{ runbook: 'backup', calendar: { hour: 24 } }, /schedules\.nightly\.calendar\.hour: 24 is outside 0-23/],
      [{ runbook: 'backup', calendar: { dayOfWeek: 'Funday' } }, /calendar\.dayOfWeek: "Funday" is not a number 0-6 or a name such as SUN/],
      [{ runbook: 'backup', every: '5 minutes' }, /schedules\.nightly\.every: a duration: a whole number and a unit/],
      [{ runbook: 'backup', cron: '0 2 * * *', offset: '5m' }, /schedules\.nightly\.offset: offset goes with every/],
      [{ runbook: 'backup', cron: '0 2 * * *', timezone: 'Mars/Olympus' }, /schedules\.nightly\.timezone: expected an IANA time zone name/],
      [{ runbook: 'backup', cron: '0 2 * * *', catchupWindow: '5s' }, /catchupWindow: the catch-up window must be at least 10s/],
      [{ runbook: 'backup', cron: '0 2 * * *', overlap: 'queue' }, /schedules\.nightly\.overlap/],
    ];
    for (const [schedule, expected] of cases) assert.match(invalidConfigMessage(configWith({ nightly: schedule })), expected, JSON.stringify(schedule));
  });

  test('a runbook a schedule cannot start, or a field of another runbook, is refused', () => {
    assert.match(invalidConfigMessage(configWith({ r: { runbook: 'restore', cron: '@daily' } })), /schedules\.r\.runbook: .*expected one of "backup"\|"drill"\|"verify"\|"retention"\|"copy"/);
    assert.match(invalidConfigMessage(configWith({ d: { runbook: 'drill', cron: '@weekly', method: 'base' } })), /schedules\.d\.method: method is for the backup runbook, not drill/);
    assert.match(invalidConfigMessage(configWith({ b: { runbook: 'backup', cron: '@daily', readData: true } })), /schedules\.b\.readData: readData is for the verify runbook, not backup/);
    assert.match(invalidConfigMessage(configWith({ c: { runbook: 'copy', cron: '@daily' } })), /schedules\.c\.to: a copy schedule needs "to"/);
    assert.match(invalidConfigMessage(configWith({ c: { runbook: 'copy', cron: '@daily', to: 'tape' } })), /schedules\.c\.to: unknown repository "tape"; .* local, offsite/);
    assert.match(invalidConfigMessage(configWith({ c: { runbook: 'copy', cron: '@daily', to: 'offsite' } })), /schedules\.c\.to: "offsite" is not a repository of target "orders"; a copy runs between the target's repositories: local/);
    assert.match(
      invalidConfigMessage(configWith({ c: { runbook: 'copy', cron: '@daily', to: 'local', from: 'local' } }, { repositories: ['local', 'offsite'] })),
      /schedules\.c\.from: from and to both name "local"/,
    );
    assert.match(invalidConfigMessage(configWith({ v: { runbook: 'verify', cron: '@daily', readData: '150%' } })), /schedules\.v\.readData: expected true, false, "full", a rotating subset "n\/t" \(1 <= n <= t <= 10000\) or a percentage/);
    assert.match(invalidConfigMessage(configWith({ v: { runbook: 'verify', cron: '@daily', readData: '8/7' } })), /schedules\.v\.readData: expected true, false, "full"/);
    assert.match(invalidConfigMessage(configWith({ b: { runbook: 'backup', cron: '@daily', method: 'dump' } })), /schedules\.b\.method: method is for targets with several backup methods; "orders" is a sqlite target, which has one/);
    assert.match(invalidConfigMessage(configWith({ 'Nightly Backup': { runbook: 'backup', cron: '@daily' } })), /schedules\.Nightly Backup: a name must be lowercase letters/);
  });

  test('the cron and calendar grammar: values, ranges, steps, lists and names', () => {
    assert.equal(cronProblem('*/15 0-6,22-23 1 JAN-MAR mon-fri'), undefined);
    assert.equal(cronProblem('@weekly'), undefined);
    assert.deepEqual(parseCalendarField('1-5/2,SAT', 'dayOfWeek'), [
      { start: 1, end: 5, step: 2 },
      { start: 6, end: 6, step: 1 },
    ]);
    assert.deepEqual(parseCalendarField('10/20', 'minute'), [{ start: 10, end: 59, step: 20 }]);
    assert.deepEqual(parseCalendarField([0, 30], 'minute'), [
      { start: 0, end: 0, step: 1 },
      { start: 30, end: 30, step: 1 },
    ]);
    assert.deepEqual(toCalendarSpec({ hour: 2, dayOfWeek: 'MON-FRI', month: 'dec' }), {
      second: 0,
      minute: 0,
      hour: [{ start: 2, end: 2, step: 1 }],
      dayOfMonth: '*',
      month: [{ start: 'DECEMBER', end: 'DECEMBER', step: 1 }],
      dayOfWeek: [{ start: 'MONDAY', end: 'FRIDAY', step: 1 }],
    });
  });

  test('durations', () => {
    assert.equal(durationMs('10m'), 600_000);
    assert.equal(durationMs('1d'), 86_400_000);
    assert.equal(formatDuration(600_000), '10m');
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(0), '0s');
    assert.throws(() => durationMs('1 week'), /not a duration/);
  });
});

describe('the Temporal Schedule of an entry', () => {
  const config = parseConfig(
    {
      ...configWith({}),
      targets: {
        orders: {
          type: 'postgres',
          repositories: ['local'],
          schedules: {
            nightly: { runbook: 'backup', method: 'base', cron: '0 2 * * *', timezone: 'Europe/Berlin', jitter: '10m', catchupWindow: '1h', pauseOnFailure: true },
            weekly: { runbook: 'drill', calendar: { hour: 4, dayOfWeek: 'SUN' } },
            hourly: { runbook: 'verify', every: '1h', offset: '15m', readData: '10%', overlap: 'buffer-one' },
            daily: { runbook: 'verify', cron: '@daily', readData: true },
            weekly2: { runbook: 'verify', cron: '@weekly', readData: '1/7' },
          },
        },
      },
    },
    'test',
  );
  const declared = declaredSchedules(config, settings);
  const byName = (name: string) => declared.find((schedule) => schedule.name === name)!;

  test('its id is lifeboat/<target>/<name>, its runs start the runbook like a manual run, with the base id <runbook>-<target>', () => {
    assert.deepEqual(declared.map((schedule) => schedule.id), ['lifeboat/orders/daily', 'lifeboat/orders/hourly', 'lifeboat/orders/nightly', 'lifeboat/orders/weekly', 'lifeboat/orders/weekly2']);
    const { action } = byName('nightly').options;
    assert.equal(action.workflowType, 'backup');
    assert.equal(action.workflowId, 'backup-orders');
    assert.equal(action.taskQueue, 'lifeboat');
    assert.deepEqual(action.args, [{ target: 'orders', method: 'base' }]);
    assert.equal(action.staticSummary, 'Backup of target "orders"');
    assert.deepEqual(action.memo, { requestedBy: { via: 'schedule', schedule: 'lifeboat/orders/nightly', declaration: byName('nightly').declaration } });
    assert.deepEqual(
      (action.typedSearchAttributes as Array<{ key: { name: string }; value: unknown }>).map(({ key, value }) => [key.name, value]),
      [
        ['LifeboatTarget', 'orders'],
        ['LifeboatKind', 'backup'],
        ['LifeboatRequestedBy', 'schedule:lifeboat/orders/nightly'],
      ],
    );
    assert.deepEqual(byName('hourly').options.action.args, [{ target: 'orders', readData: '10%' }]);
    assert.deepEqual(byName('daily').options.action.args, [{ target: 'orders', readData: 'full' }], 'as the verify runbook takes it');
    assert.deepEqual(byName('weekly2').options.action.args, [{ target: 'orders', readData: '1/7' }]);
  });

  test('a copy entry starts the copy runbook with the input the runbook takes (target, to, from)', () => {
    const copying = parseConfig(configWith({ offsite: { runbook: 'copy', every: '6h', to: 'offsite', from: 'local' } }, { repositories: ['local', 'offsite'] }), 'test');
    const { action } = declaredSchedules(copying, settings)[0]!.options;
    assert.equal(action.workflowType, 'copy');
    assert.equal(action.workflowId, 'copy-orders');
    const input: CopyInput = { target: 'orders', to: 'offsite', from: 'local' };
    assert.deepEqual(action.args, [input]);
    assert.equal(action.staticSummary, 'Copy of target "orders" into repository offsite from local');
  });

  test('when, jitter, time zone and policies are those of the entry', () => {
    const nightly = byName('nightly').options;
    assert.deepEqual(nightly.spec, { cronExpressions: ['0 2 * * *'], jitter: 600_000, timezone: 'Europe/Berlin' });
    assert.deepEqual(nightly.policies, { overlap: 'SKIP', catchupWindow: 3_600_000, pauseOnFailure: true });
    assert.deepEqual(byName('hourly').options.spec, { intervals: [{ every: 3_600_000, offset: 900_000 }], timezone: 'UTC' });
    assert.equal(byName('hourly').options.policies?.overlap, 'BUFFER_ONE');
    assert.deepEqual(byName('weekly').options.memo, { lifeboat: { managedBy: 'lifeboat', target: 'orders', name: 'weekly' } });
  });

  test('the declaration hash is stable, and changes with anything apply would have to send', () => {
    const again = declaredSchedules(config, settings);
    assert.deepEqual(again.map((schedule) => schedule.declaration), declared.map((schedule) => schedule.declaration));
    const changedCron = parseConfig(
      {
        ...configWith({}),
        targets: { orders: { type: 'postgres', repositories: ['local'], schedules: { nightly: { runbook: 'backup', method: 'base', cron: '0 3 * * *', timezone: 'Europe/Berlin', jitter: '10m', catchupWindow: '1h', pauseOnFailure: true } } } },
      },
      'test',
    );
    assert.notEqual(declaredSchedules(changedCron, settings)[0]!.declaration, byName('nightly').declaration);
    assert.notEqual(declaredSchedules(config, { ...settings, taskQueue: 'other' }).find((schedule) => schedule.name === 'nightly')!.declaration, byName('nightly').declaration);
  });
});
