import type { PostgresConnectionConfig } from '../config/schema.js';
import { connectTo } from '../postgres/dump-connection.js';
import { archiveStatus, type ArchiveStatus } from '../postgres/wal-archive.js';
import { LifeboatError } from '../errors.js';
import type { ArchiverFacts } from './model.js';

/** How long monitoring waits for a PostgreSQL server before it reports it unreachable. */
const connectTimeoutMs = 5_000;

/**
 * The server's own account of its WAL archiving (pg_stat_archiver, through archiveStatus), for
 * status and metrics. Never throws: a server that cannot be asked is a fact too.
 */
export async function readArchiver(connection: PostgresConnectionConfig, env: NodeJS.ProcessEnv, now: number): Promise<ArchiverFacts> {
  try {
    const client = await withTimeout(connectTo(connection, env), connectTimeoutMs, (late) => void late.end().catch(() => undefined));
    try {
      const [status, mode] = await Promise.all([archiveStatus(client), client.query<{ archive_mode: string }>('SELECT current_setting(\'archive_mode\') AS archive_mode')]);
      return archiverFacts(status, mode.rows[0]?.archive_mode ?? null, now);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    return {
      reachable: false,
      error: error instanceof LifeboatError ? `${error.type}: ${error.message}` : error instanceof Error ? error.message : String(error),
      archiveMode: null,
      failing: false,
      lastArchivedWal: null,
      lastArchivedAt: null,
      lastFailedWal: null,
      lastFailedAt: null,
      lag: null,
    };
  }
}

/** The promise's value, or a rejection after ms; a value that arrives too late is handed to discard (a connection is closed, not leaked). */
function withTimeout<T>(promise: Promise<T>, ms: number, discard: (late: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`no connection within ${ms / 1000} s`));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) discard(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * Lag in seconds: how long the oldest WAL not in the archive has waited, at most; that is the
 * time since the last file was archived while anything was written after it, else 0 (an idle
 * server whose last segment is archived lags by nothing, however long ago that was).
 */
export function archiverFacts(status: ArchiveStatus, archiveMode: string | null, now: number): ArchiverFacts {
  const lastArchived = status.lastArchivedAt ? Date.parse(status.lastArchivedAt) : NaN;
  return {
    reachable: true,
    error: null,
    archiveMode,
    failing: status.failing,
    lastArchivedWal: status.lastArchivedWal,
    lastArchivedAt: status.lastArchivedAt,
    lastFailedWal: status.lastFailedWal,
    lastFailedAt: status.lastFailedAt,
    lag: status.lag
      ? { segments: status.lag.segments, bytes: status.lag.bytes, seconds: status.lag.bytes > 0 && Number.isFinite(lastArchived) ? Math.max(0, (now - lastArchived) / 1000) : 0 }
      : null,
  };
}
