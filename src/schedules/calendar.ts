/**
 * The "when" of a schedule: cron fields and calendar fields share one grammar, checked here so a
 * wrong schedule is refused when the config is read, naming the field, not later by the server.
 *
 * A field is a comma-separated list of items: `*`, `N`, `N-M`, `*\/S`, `N/S` (N to the end, every
 * S), `N-M/S`. Months and weekdays also take names (JAN or JANUARY, MON or MONDAY; Sunday is 0).
 * This is the grammar of Temporal's cron strings and of crontab(5), without the day-of-week 7 and
 * the `?`, `L`, `W` and `#` extensions that some cron dialects add.
 */
import type { CalendarSpec, DayOfWeek, LooseRange, Month } from '@temporalio/client';

const months: readonly Month[] = ['JANUARY', 'FEBRUARY', 'MARCH', 'APRIL', 'MAY', 'JUNE', 'JULY', 'AUGUST', 'SEPTEMBER', 'OCTOBER', 'NOVEMBER', 'DECEMBER'];
const weekdays: readonly DayOfWeek[] = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];

interface FieldRule {
  min: number;
  max: number;
  /** Full names, index 0 = min (months start at 1, weekdays at 0). */
  names?: readonly string[];
}

export const calendarFieldRules = {
  second: { min: 0, max: 59 },
  minute: { min: 0, max: 59 },
  hour: { min: 0, max: 23 },
  dayOfMonth: { min: 1, max: 31 },
  month: { min: 1, max: 12, names: months },
  dayOfWeek: { min: 0, max: 6, names: weekdays },
} as const satisfies Record<string, FieldRule>;

export type CalendarField = keyof typeof calendarFieldRules;

/** The fields of a 5-field cron string, in order. */
const cronFields: readonly CalendarField[] = ['minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'];
const cronShorthands = ['@yearly', '@monthly', '@weekly', '@daily', '@hourly'];

interface ParsedRange {
  start: number;
  end: number;
  step: number;
}

/** One value: a number in range, or (months, weekdays) a name or its first three letters. */
function parseValue(text: string, field: CalendarField): number | string {
  const rule: FieldRule = calendarFieldRules[field];
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < rule.min || value > rule.max) return `${text} is outside ${rule.min}-${rule.max}`;
    return value;
  }
  const upper = text.toUpperCase();
  const index = rule.names?.findIndex((name) => name === upper || (upper.length === 3 && name.startsWith(upper))) ?? -1;
  if (index >= 0) return rule.min + index;
  return rule.names ? `"${text}" is not a number ${rule.min}-${rule.max} or a name such as ${rule.names[0]!.slice(0, 3)}` : `"${text}" is not a number ${rule.min}-${rule.max}`;
}

/** Parses a field; returns its ranges, or a string saying what is wrong. */
export function parseCalendarField(value: string | number | ReadonlyArray<string | number>, field: CalendarField): ParsedRange[] | string {
  const rule: FieldRule = calendarFieldRules[field];
  const items = Array.isArray(value) ? value.map(String) : String(value).split(',');
  if (items.length === 0) return 'an empty list';
  const ranges: ParsedRange[] = [];
  for (const raw of items) {
    const item = raw.trim();
    const match = /^([^/-]+)(?:-([^/]+))?(?:\/(\d+))?$/.exec(item);
    if (!match) return `"${item}" is not a value, a range N-M or a step N-M/S`;
    const [, first, last, stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) return `"${item}": the step must be at least 1`;
    let start: number;
    let end: number;
    if (first === '*') {
      if (last !== undefined) return `"${item}": "*" cannot start a range`;
      [start, end] = [rule.min, rule.max];
    } else {
      const from = parseValue(first!, field);
      if (typeof from === 'string') return from;
      start = from;
      // "N/S" means N to the end of the field, every S (as in cron).
      const to = last !== undefined ? parseValue(last, field) : stepText !== undefined ? rule.max : from;
      if (typeof to === 'string') return to;
      end = to;
      if (end < start) return `"${item}": the range ends before it starts (ranges do not wrap around)`;
    }
    ranges.push({ start, end, step });
  }
  return ranges;
}

/** What is wrong with a cron string, or undefined when Lifeboat (and Temporal) accept it. */
export function cronProblem(cron: string): string | undefined {
  const text = cron.trim();
  if (text.startsWith('@')) {
    return cronShorthands.includes(text) ? undefined : `"${text}" is not one of ${cronShorthands.join(', ')} (for an interval use "every")`;
  }
  if (/^(CRON_)?TZ=/.test(text)) return 'set the time zone with "timezone", not inside the cron string';
  const fields = text.split(/\s+/);
  if (fields.length !== 5) return `a cron string has 5 fields (minute hour day-of-month month day-of-week), "${text}" has ${fields.length}`;
  for (const [index, field] of fields.entries()) {
    const parsed = parseCalendarField(field, cronFields[index]!);
    if (typeof parsed === 'string') return `${cronFields[index]} field: ${parsed}`;
  }
  return undefined;
}

/** A calendar as the config writes it: each field a value, a list, or a string in the cron grammar. */
export type CalendarConfig = Partial<Record<CalendarField, string | number | Array<string | number>>> & { comment?: string };

/** Calendar fields Temporal treats as "every value" when they are left out; the others default to 0. */
const wildcardByDefault: readonly CalendarField[] = ['dayOfMonth', 'month', 'dayOfWeek'];

/** Temporal's CalendarSpec for a calendar the schema has already validated. */
export function toCalendarSpec(calendar: CalendarConfig): CalendarSpec {
  const spec: Record<string, unknown> = {};
  for (const field of Object.keys(calendarFieldRules) as CalendarField[]) {
    const value = calendar[field];
    if (value === undefined) {
      spec[field] = wildcardByDefault.includes(field) ? '*' : 0;
      continue;
    }
    const parsed = parseCalendarField(value, field);
    if (typeof parsed === 'string') throw new Error(`calendar ${field}: ${parsed}`);
    const names = (calendarFieldRules[field] as FieldRule).names;
    const unit = (n: number): number | string => (names ? names[n - calendarFieldRules[field].min]! : n);
    spec[field] = parsed.map((range): LooseRange<number | string> => ({ start: unit(range.start), end: unit(range.end), step: range.step }) as LooseRange<number | string>);
  }
  if (calendar.comment) spec.comment = calendar.comment;
  return spec as CalendarSpec;
}
