import pino, { type Logger } from 'pino';
import { LifeboatError } from './errors.js';

/**
 * JSON logs on stderr (stdout is reserved for --json results). Secrets never reach a log line:
 * the code only ever handles references to them, and the S3 client is given credentials directly.
 */
export function createLogger(name: string, level = process.env.LIFEBOAT_LOG_LEVEL ?? 'info'): Logger {
  if (!Object.hasOwn(pino.levels.values, level)) {
    throw new LifeboatError('InvalidConfig', `LIFEBOAT_LOG_LEVEL is "${level}"`, `Set it to one of ${Object.keys(pino.levels.values).join(', ')}, or unset it (default info)`);
  }
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };
