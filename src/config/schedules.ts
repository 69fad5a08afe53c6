import { z } from 'zod';
import { durationMs, durationPattern, durationRule } from '../duration.js';
import { calendarFieldRules, cronProblem, parseCalendarField, type CalendarField } from '../schedules/calendar.js';
import { name } from './common.js';

/**
 * `schedules:` of a target: the runs Temporal starts by itself (`lifeboat schedules apply` makes the
 * server's Temporal Schedules match them). Every kind of target has it (targetSchedules); what
 * depends on the config as a whole (a method the kind has, repositories that exist) is checked in
 * the config's superRefine (schema.ts).
 */

const duration = z.string().regex(durationPattern, durationRule);

const calendarValue = z
  .union([z.number().int(), z.string(), z.array(z.union([z.number().int(), z.string()])).min(1)], {
    error: 'expected a number, a string such as "1-5" or "MON-FRI", or a list of them',
  })
  .optional();

const calendarSchema = z
  .object({
    second: calendarValue.describe('0-59; default 0.'),
    minute: calendarValue.describe('0-59; default 0.'),
    hour: calendarValue.describe('0-23; default 0.'),
    dayOfMonth: calendarValue.describe('1-31; default every day.'),
    month: calendarValue.describe('1-12 or JAN-DEC; default every month.'),
    dayOfWeek: calendarValue.describe('0-6 (Sunday is 0) or SUN-SAT; default every day of the week.'),
    comment: z.string().optional().describe('Shown with the schedule in the Temporal UI.'),
  })
  .strict()
  .superRefine((calendar, ctx) => {
    for (const field of Object.keys(calendarFieldRules) as CalendarField[]) {
      const value = calendar[field];
      if (value === undefined) continue;
      const parsed = parseCalendarField(value, field);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', path: [field], message: parsed });
    }
  });

/** The runbooks a schedule can start (workflow types); restore and pitr are started by people. */
export const scheduledRunbooks = ['backup', 'drill', 'verify', 'retention', 'copy'] as const;

export const overlapPolicies = ['skip', 'buffer-one', 'buffer-all', 'cancel-other', 'terminate-other', 'allow-all'] as const;

function validTimezone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

const readDataRule = 'expected true, false, "full", a rotating subset "n/t" (1 <= n <= t <= 10000) or a percentage such as "10%"';

/** The verify runbook's readData values (its own parser has the last word; this catches typos at load). */
function validReadData(value: boolean | string): boolean {
  if (typeof value === 'boolean' || value === 'full' || value === 'none') return true;
  const fraction = /^(\d+)\/(\d+)$/.exec(value);
  if (fraction) return Number(fraction[1]) >= 1 && Number(fraction[1]) <= Number(fraction[2]) && Number(fraction[2]) <= 10_000;
  const percent = /^(\d{1,3}(?:\.\d{1,2})?)%$/.exec(value);
  return percent !== null && Number(percent[1]) > 0 && Number(percent[1]) <= 100;
}

/** Fields that only some runbooks take, and which. */
const runbookFields = { method: ['backup'], readData: ['verify'], to: ['copy'], from: ['copy'] } as const;

export const scheduleSchema = z
  .object({
    runbook: z.enum(scheduledRunbooks).describe('The runbook each run starts, with {"target": <this target>} and the fields below that it takes.'),
    cron: z
      .string()
      .superRefine((cron, ctx) => {
        const problem = cronProblem(cron);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional()
      .describe('When, as 5 cron fields "minute hour day-of-month month day-of-week" (e.g. "0 2 * * *", "30 4 * * SUN") or @daily, @weekly, @monthly, @yearly, @hourly. One of cron, calendar, every.'),
    calendar: calendarSchema.optional().describe('When, as calendar fields (e.g. {hour: 2, dayOfWeek: "MON-FRI"}); each field takes the cron grammar. One of cron, calendar, every.'),
    every: duration.optional().describe('When, as an interval (e.g. "6h"): at every multiple of it since 1970-01-01T00:00Z, plus offset. One of cron, calendar, every.'),
    offset: duration.optional().describe('With every: shifts each run by this much (every "1d" with offset "150m" runs daily at 02:30 UTC).'),
    timezone: z
      .string()
      .refine(validTimezone, { error: 'expected an IANA time zone name such as "UTC" or "Europe/Berlin"' })
      .default('UTC')
      .describe('IANA time zone the cron or calendar fields are read in. Beware: on a daylight-saving change a time that does not exist is skipped and one that exists twice runs twice.'),
    jitter: duration
      .default('0s')
      .describe('Each run starts at a random delay up to this much after its time, so that many targets scheduled alike do not all start at once.'),
    overlap: z
      .enum(overlapPolicies)
      .default('skip')
      .describe('When a run is due while the previous run of this schedule still goes on: skip it (default), buffer-one / buffer-all (run after it), cancel-other / terminate-other (stop the running one), allow-all (run both).'),
    catchupWindow: duration
      .refine((text) => durationMs(text) >= 10_000, { error: 'the catch-up window must be at least 10s (Temporal\'s minimum)' })
      .default('1d')
      .describe('A run missed while the Temporal server was unavailable still starts when the server is back if it is at most this late; with overlap skip, at most one missed run starts.'),
    pauseOnFailure: z
      .boolean()
      .default(false)
      .describe('Pause the schedule when a run fails (after its retries), until an operator unpauses it (`lifeboat schedules unpause`). Off: the next run is tried at its time.'),
    method: z.string().min(1).optional().describe('backup: one of the kind\'s backup methods for these runs (postgres: "dump" or "base"); default: the target\'s method.'),
    readData: z
      .union([z.boolean(), z.string()], { error: readDataRule })
      .refine(validReadData, { error: readDataRule })
      .optional()
      .describe('verify: how much stored data each run reads back and hashes: true or "full" (all of it), "1/7" (a seventh per run, all of it every 7 runs), "10%"; default: none (manifests, existence, sizes).'),
    to: name.optional().describe('copy: the repository the backups are copied to.'),
    from: name.optional().describe('copy: the repository they are copied from; default: the first of the target\'s repositories that holds them.'),
  })
  .strict()
  .superRefine((schedule, ctx) => {
    const when = (['cron', 'calendar', 'every'] as const).filter((field) => schedule[field] !== undefined);
    if (when.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: when.length ? [when[1]!] : [],
        message: when.length ? `give one of cron, calendar or every, not ${when.join(' and ')}` : 'say when it runs: cron, calendar or every',
      });
    }
    if (schedule.offset !== undefined && schedule.every === undefined) ctx.addIssue({ code: 'custom', path: ['offset'], message: 'offset goes with every' });
    for (const [field, runbooks] of Object.entries(runbookFields)) {
      if (schedule[field as keyof typeof runbookFields] !== undefined && !(runbooks as readonly string[]).includes(schedule.runbook)) {
        ctx.addIssue({ code: 'custom', path: [field], message: `${field} is for the ${runbooks.join(' and ')} runbook, not ${schedule.runbook}` });
      }
    }
    if (schedule.runbook === 'copy' && schedule.to === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: 'a copy schedule needs "to": the repository to copy to' });
  });

export const targetSchedules = z
  .record(name, scheduleSchema)
  .default({})
  .describe('Runs Temporal starts by itself (`lifeboat schedules apply` creates them on the server as lifeboat/<target>/<name>).');


export type ScheduleConfig = z.output<typeof scheduleSchema>;
export type ScheduledRunbook = (typeof scheduledRunbooks)[number];
export type OverlapPolicy = (typeof overlapPolicies)[number];
