import { LifeboatError } from '../errors.js';

/**
 * Wall-clock calendar arithmetic in an IANA time zone, with Intl only: the buckets of a retention
 * policy (hour, day, ISO week, month, year) are those of the operator's calendar, not of UTC, so
 * "the newest backup of each day" means the day in Europe/Berlin when that is the configured zone.
 */

export interface WallTime {
  year: number;
  /** 1-12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Throws InvalidConfig unless timeZone is an IANA zone this Node knows ("UTC", "Europe/Berlin"). */
export function assertTimeZone(timeZone: string): void {
  if (!isTimeZone(timeZone)) {
    throw new LifeboatError('InvalidConfig', `"${timeZone}" is not a time zone`, 'Use an IANA time zone name such as "UTC" or "Europe/Berlin"');
  }
}

export function isTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The wall clock in timeZone at the instant ms. */
export function wallTime(ms: number, timeZone: string): WallTime {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(new Date(ms))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
    millisecond: ((ms % 1000) + 1000) % 1000,
  };
}

/** The wall time read as if it were UTC (a number to do calendar arithmetic on). */
function wallAsUtc(wall: WallTime): number {
  return Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second, wall.millisecond);
}

/** How far timeZone's clock is ahead of UTC at the instant ms. */
function offsetAt(ms: number, timeZone: string): number {
  return wallAsUtc(wallTime(ms, timeZone)) - ms;
}

/**
 * The instant at which timeZone's clock shows `wallUtc` (a wall time written as a UTC number).
 * In a gap (spring forward) it is the instant the clock jumps over it; in an overlap (fall back)
 * the earlier of the two.
 */
function instantOfWall(wallUtc: number, timeZone: string): number {
  const first = wallUtc - offsetAt(wallUtc, timeZone);
  const second = wallUtc - offsetAt(first, timeZone);
  return Math.min(first, second);
}

export interface CalendarSpan {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
}

/**
 * ms moved back by span on timeZone's calendar: years, months and days on the wall clock (overflow
 * normalised, so March 31 minus one month is March 3 or 2, as Go's AddDate does), then hours as
 * elapsed time.
 */
export function subtractSpan(ms: number, span: CalendarSpan, timeZone: string): number {
  const wall = wallTime(ms, timeZone);
  const moved = Date.UTC(wall.year - span.years, wall.month - 1 - span.months, wall.day - span.days - 7 * span.weeks, wall.hour, wall.minute, wall.second, wall.millisecond);
  return instantOfWall(moved, timeZone) - span.hours * 3_600_000;
}

/** ISO 8601 week-numbering year and week (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = date.getUTCDay() || 7; // Monday 1 ... Sunday 7
  // The Thursday of this week decides the year.
  date.setUTCDate(date.getUTCDate() + 4 - weekday);
  const weekYear = date.getUTCFullYear();
  const firstOfYear = Date.UTC(weekYear, 0, 1);
  const week = Math.floor((date.getTime() - firstOfYear) / 86_400_000 / 7) + 1;
  return { year: weekYear, week };
}

const durationPattern = /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?$/;

/**
 * A retention duration in restic's notation: years, months, weeks, days and hours in that order,
 * e.g. "30d", "1y6m", "2w", "36h" ("m" is months, as in restic). Throws InvalidConfig otherwise.
 */
export function parseSpan(text: string): CalendarSpan {
  const match = durationPattern.exec(text.trim());
  if (!match || text.trim() === '' || match.slice(1).every((part) => part === undefined)) {
    throw new LifeboatError(
      'InvalidConfig',
      `keepWithin "${text}" is not a duration`,
      'Write years, months, weeks, days and hours in that order, e.g. "30d", "1y6m", "2w", "36h" ("m" means months, as in restic)',
    );
  }
  const [years, months, weeks, days, hours] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number, number];
  return { years, months, weeks, days, hours };
}

export function isSpan(text: string): boolean {
  try {
    parseSpan(text);
    return true;
  } catch {
    return false;
  }
}
