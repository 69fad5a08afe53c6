import { LifeboatError } from '../errors.js';

/**
 * One finding of `lifeboat check`: what was checked, how it went, and, when it failed, what to
 * change. Every check is run with a time limit, so an unreachable service is a finding, not a hang.
 */
export type CheckStatus = 'ok' | 'failed' | 'warning' | 'skipped';

export interface CheckResult {
  /** config, encryption, repository, tools, temporal, schedules, and what kinds add (postgres, redis, command) */
  area: string;
  /** What was checked: a repository's name, a target's name, a tool. */
  subject: string;
  status: CheckStatus;
  detail: string;
  /** What to change (failed and warning results). */
  fix?: string;
}

/** A check that found a problem: its message says what is wrong, its fix what to change. */
export class Finding extends Error {
  constructor(
    message: string,
    readonly fix: string,
    readonly status: 'failed' | 'warning' | 'skipped' = 'failed',
  ) {
    super(message);
  }
}

export class CheckTimeout extends Error {}

const what = (area: string) => (area === 'repository' ? 'the storage did not answer' : area === 'temporal' ? 'the Temporal server did not answer' : 'it did not finish');

/** Runs one check within timeoutMs; an error becomes a failed result with the fix it carries (or `fix`). */
export async function runCheck(
  area: string,
  subject: string,
  timeoutMs: number,
  check: () => Promise<string>,
  fix: (error: unknown) => string,
): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    const detail = await Promise.race([check(), deadline]);
    return { area, subject, status: 'ok', detail };
  } catch (error) {
    if (error instanceof Finding) return { area, subject, status: error.status, detail: error.message, ...(error.status === 'skipped' ? {} : { fix: error.fix }) };
    return { area, subject, status: 'failed', detail: error instanceof CheckTimeout ? `${error.message} (${what(area)})` : messageOf(error), fix: fix(error) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The message of an error and of the causes it wraps ("Failed to ...: 14 UNAVAILABLE ..."). A
 * LifeboatError says everything itself; its hint is left out here, since it is the result's fix.
 */
export function messageOf(error: unknown): string {
  if (error instanceof LifeboatError) return error.hint && error.message.endsWith(`. ${error.hint}`) ? error.message.slice(0, -error.hint.length - 2) : error.message;
  const parts: string[] = [];
  for (let current: unknown = error; current instanceof Error && parts.length < 4; current = current.cause) {
    if (!parts.some((part) => part.includes(current instanceof Error ? current.message : ''))) parts.push(current.message);
  }
  return parts.join(': ') || String(error);
}
