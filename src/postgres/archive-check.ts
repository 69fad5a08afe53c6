import { LifeboatError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import { parseLsn, walSegmentName } from './recovery-target.js';
import { archiveStatus, walRecordKey, type ArchiveStatus, type Queryable } from './wal-archive.js';

/**
 * The archive check after a base backup (what pgBackRest's archive-check does): a base backup is
 * the start of a point-in-time recovery only if the WAL after it reaches the archive, so the
 * backup runbook waits, bounded, until the WAL segment holding the backup's stop point is in the
 * archive of every repository of the target, and otherwise fails with ArchiveNotWorking quoting
 * pg_stat_archiver. Without it, a broken archive_command (a permission, a wrong --target) goes
 * unnoticed while the recovery window silently stops growing.
 *
 * The stop segment reaches the archive on its own: ending a base backup switches to a new
 * segment, so the server hands the stop segment to archive_command at once. Should the server
 * still be writing it (a backup taken by other means), the check asks for a switch itself.
 */

export interface BaseBackupStop {
  backupId: string;
  /** The timeline and LSN where the backup stopped (its manifest's base.timeline and base.stopLsn). */
  timeline: number;
  stopLsn: string;
  walSegmentSizeBytes: number;
}

/** The WAL segment that holds the last byte of the backup: the one PostgreSQL waits for when it waits for archiving itself. */
export function stopSegment(stop: Pick<BaseBackupStop, 'timeline' | 'stopLsn' | 'walSegmentSizeBytes'>): string {
  const lsn = parseLsn(stop.stopLsn);
  const lastByte = lsn > 0n ? lsn - 1n : 0n;
  return walSegmentName(stop.timeline, lastByte / BigInt(stop.walSegmentSizeBytes), stop.walSegmentSizeBytes);
}

export interface ArchiveCheckOptions {
  /** The source server (pg_stat_archiver, archive_mode, pg_switch_wal). */
  client: Queryable;
  /** "host:port", for messages. */
  server: string;
  /** The target's WAL archive: every repository must hold the segment (a wal-push succeeds only then). */
  archive: { target: string; repositories: Repository[] };
  stop: BaseBackupStop;
  timeoutSeconds: number;
  pollMs?: number;
  signal?: AbortSignal;
  /** Called at every poll (heartbeats). */
  onPoll?: (waitedMs: number) => void;
}

export interface ArchiveCheckResult {
  segment: string;
  /** How long the check waited for the segment to arrive (0: it was there already). */
  waitedMs: number;
  /** Whether the check asked the server to switch to a new segment (pg_switch_wal). */
  switched: boolean;
  repositories: string[];
}

/** Waits until every repository of the archive holds the backup's stop segment; ArchiveNotWorking when it does not arrive in time. */
export async function awaitArchivedStop(options: ArchiveCheckOptions): Promise<ArchiveCheckResult> {
  const { client, archive, stop, signal } = options;
  const segment = stopSegment(stop);
  const pollMs = options.pollMs ?? 250;
  const started = Date.now();
  const deadline = started + options.timeoutSeconds * 1000;

  const settings = (await client.query(`SELECT current_setting('archive_mode') AS mode, pg_is_in_recovery() AS in_recovery`)).rows[0] as { mode: string; in_recovery: boolean };
  if (settings.mode === 'off') {
    throw new LifeboatError(
      'ArchiveNotWorking',
      `base backup ${stop.backupId} is stored, but ${options.server} has archive_mode = off: no WAL after the backup reaches the archive of target "${archive.target}", so it cannot be recovered past its stop point`,
      `Set archive_mode = on and archive_command = 'lifeboat wal-push %p --target ${archive.target}' (a restart; docs/postgresql-deployment.md), or, if this target is not meant to archive WAL, set archive.mode: off for it`,
    );
  }

  let switched = false;
  for (;;) {
    const missing = await repositoriesWithout(archive, segment);
    if (missing.length === 0) return { segment, waitedMs: Date.now() - started, switched, repositories: archive.repositories.map((r) => r.name) };
    if (signal?.aborted) {
      const aborted = new Error('the archive check was aborted', { cause: signal.reason });
      aborted.name = 'AbortError';
      throw aborted;
    }
    if (Date.now() >= deadline) {
      const status = await archiveStatus(client).catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
      throw archiveNotWorking(options, segment, missing, status);
    }
    if (!switched && !settings.in_recovery) switched = await switchIfStillWriting(client, segment);
    options.onPoll?.(Date.now() - started);
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
  }
}

async function repositoriesWithout(archive: ArchiveCheckOptions['archive'], segment: string): Promise<string[]> {
  const found = await Promise.all(
    archive.repositories.map(async (repository) => ({ repository, there: (await repository.backend.head(walRecordKey(archive.target, segment))) !== undefined })),
  );
  return found.filter(({ there }) => !there).map(({ repository }) => repository.name);
}

/** pg_switch_wal() when the server still writes the segment (it needs superuser or a grant; without, the check just waits). */
async function switchIfStillWriting(client: Queryable, segment: string): Promise<boolean> {
  try {
    const { rows } = await client.query('SELECT pg_walfile_name(pg_current_wal_lsn()) AS current');
    if ((rows[0] as { current: string }).current !== segment) return false;
    await client.query('SELECT pg_switch_wal()');
    return true;
  } catch {
    return false;
  }
}

/** The failure, in the operator's terms: what did not arrive, and what pg_stat_archiver says about why. */
export function archiveNotWorking(
  options: Pick<ArchiveCheckOptions, 'server' | 'archive' | 'stop' | 'timeoutSeconds'>,
  segment: string,
  missingIn: string[],
  status: ArchiveStatus | string,
): LifeboatError {
  const { archive, stop } = options;
  const where = options.archive.repositories.length > 1 ? ` (missing in ${missingIn.map((name) => `"${name}"`).join(', ')})` : '';
  const archiver = typeof status === 'string' ? `pg_stat_archiver could not be read (${status})` : describeArchiver(status, options.server);
  const elsewhere =
    typeof status !== 'string' && !status.failing && status.lastArchivedWal !== null && /^[0-9A-F]{24}$/.test(status.lastArchivedWal) && status.lastArchivedWal >= segment;
  const hint = elsewhere
    ? `The server archives, but not into target "${archive.target}": check that archive_command passes --target ${archive.target} (or LIFEBOAT_TARGET) and a config with the same repositories as the worker's`
    : `Check the server log for "archive command failed" and what lifeboat wal-push printed before it; run the archive_command by hand as the server's OS user; ` +
      `for an fs repository, the user PostgreSQL runs as must be able to write the repository's root (docs/postgresql-deployment.md)`;
  return new LifeboatError(
    'ArchiveNotWorking',
    `base backup ${stop.backupId} is stored, but the WAL segment holding its stop point (${segment}, LSN ${stop.stopLsn}) did not reach the WAL archive of target "${archive.target}" within ${options.timeoutSeconds} s${where}: ` +
      `no point-in-time recovery past this backup is possible until archiving works; ${archiver}`,
    `${hint}. If this target is not meant to archive WAL, set archive.mode: off for it; a slow archive may need a longer archive.checkTimeoutSeconds`,
  );
}

/** pg_stat_archiver in one clause: the last success, the last failure, and whether archiving is failing now. */
export function describeArchiver(status: ArchiveStatus, server: string): string {
  const archived = status.lastArchivedWal ? `last archived ${status.lastArchivedWal} at ${status.lastArchivedAt ?? '?'}` : 'nothing archived since the statistics were reset';
  const failed =
    status.failedCount > 0 ? `${status.failedCount} failed attempts, the last for ${status.lastFailedWal ?? '?'} at ${status.lastFailedAt ?? '?'}${status.failing ? ' (archiving is failing now)' : ''}` : 'no failed attempts';
  return `pg_stat_archiver on ${server}: ${archived}; ${failed}`;
}
