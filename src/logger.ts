import pino, { type Logger } from 'pino';

/**
 * JSON logs on stderr (stdout is reserved for --json results). Secrets never reach a log line:
 * the code only ever handles references to them, and the S3 client is given credentials directly.
 */
export function createLogger(name: string, level = process.env.LIFEBOAT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };
