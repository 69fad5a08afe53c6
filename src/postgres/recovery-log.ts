import { LifeboatError } from '../errors.js';
import { describeRecoveryTarget, parseLsn, parseWalSegmentName, walSegmentName, type RecoveryTarget } from './recovery-target.js';

/**
 * What a recovering PostgreSQL 15 server says in its log, read back: where replay stopped and why,
 * and why it failed. Pure (text in, facts out), so every message it relies on is unit-tested.
 * recovery.ts runs the server with lc_messages = 'C' and logging_collector = off, so these
 * messages are in English and all in the one log file.
 */

export interface RecoveryStop {
  /** The log line's own words, e.g. 'recovery stopping after commit of transaction 745, time 2026-11-22 03:01:21.931399+00'. */
  message: string;
  relation: 'before' | 'after' | 'at';
  /** What replay stopped at. */
  record: 'commit' | 'abort' | 'restore point' | 'lsn' | 'consistency';
  transaction?: string;
  /** The record's time as PostgreSQL printed it (the server's log_timezone). */
  time?: string;
  lsn?: string;
  restorePoint?: string;
}

export interface RecoveryLog {
  stop: RecoveryStop | undefined;
  /** "redo done at X": the end of the last record replayed. */
  redoDoneAt: string | undefined;
  /** "last completed transaction was at log time T" */
  lastTransactionTime: string | undefined;
  consistentAt: string | undefined;
  /** WAL files restore_command delivered, in order. */
  restoredFiles: string[];
  newTimeline: number | undefined;
  /**
   * Every FATAL and PANIC message, in order, with the DETAIL line after it when there is one. Not
   * only the startup process's: a connection refused while the server is not consistent yet is
   * logged as FATAL too.
   */
  fatals: Array<{ message: string; detail: string | undefined }>;
  /** What `lifeboat wal-fetch` reported when it failed (it writes to the server log). */
  walFetchFailures: string[];
  promoted: boolean;
}

const linePattern = /(?:^|\s)(LOG|FATAL|PANIC|DETAIL|HINT|WARNING|ERROR):\s+(.*)$/;

export function parseRecoveryLog(log: string): RecoveryLog {
  const result: RecoveryLog = {
    stop: undefined,
    redoDoneAt: undefined,
    lastTransactionTime: undefined,
    consistentAt: undefined,
    restoredFiles: [],
    newTimeline: undefined,
    fatals: [],
    walFetchFailures: [],
    promoted: false,
  };
  const lines = log.split('\n');
  for (const [index, line] of lines.entries()) {
    const walFetch = /lifeboat wal-fetch: (.*)$/.exec(line);
    if (walFetch) {
      result.walFetchFailures.push(walFetch[1]!);
      continue;
    }
    const match = linePattern.exec(line);
    if (!match) continue;
    const [, level, message] = match as unknown as [string, string, string];
    if (level === 'FATAL' || level === 'PANIC') {
      const next = linePattern.exec(lines[index + 1] ?? '');
      result.fatals.push({ message, detail: next?.[1] === 'DETAIL' ? next[2] : undefined });
      continue;
    }
    if (level !== 'LOG') continue;
    let found: RegExpExecArray | null;
    if ((found = /^restored log file "([^"]+)" from archive/.exec(message))) result.restoredFiles.push(found[1]!);
    else if ((found = /^redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(message))) result.redoDoneAt = found[1];
    else if ((found = /^last completed transaction was at log time (.+)$/.exec(message))) result.lastTransactionTime = found[1];
    else if ((found = /^consistent recovery state reached at ([0-9A-F]+\/[0-9A-F]+)/.exec(message))) result.consistentAt = found[1];
    else if ((found = /^selected new timeline ID: (\d+)/.exec(message))) result.newTimeline = Number(found[1]);
    else if (/^archive recovery complete/.test(message)) result.promoted = true;
    else if (message.startsWith('recovery stopping')) result.stop = parseStop(message);
  }
  return result;
}

function parseStop(message: string): RecoveryStop {
  let found: RegExpExecArray | null;
  if ((found = /^recovery stopping (before|after) (commit|abort) of transaction (\d+), time (.+)$/.exec(message))) {
    return { message, relation: found[1] as 'before' | 'after', record: found[2] as 'commit' | 'abort', transaction: found[3]!, time: found[4]! };
  }
  if ((found = /^recovery stopping at restore point "(.*)", time (.+)$/.exec(message))) {
    return { message, relation: 'at', record: 'restore point', restorePoint: found[1]!, time: found[2]! };
  }
  if ((found = /^recovery stopping (before|after) WAL location \(LSN\) "([0-9A-F]+\/[0-9A-F]+)"/.exec(message))) {
    return { message, relation: found[1] as 'before' | 'after', record: 'lsn', lsn: found[2]! };
  }
  return { message, relation: 'after', record: 'consistency' };
}

export interface FailureContext {
  target: RecoveryTarget;
  backupId: string;
  walSegmentSizeBytes: number;
  /** Names of the WAL segments the archive holds (for telling a gap from the end of the archive); undefined when unknown. */
  archivedSegments: readonly string[] | undefined;
  logFile: string;
  /** Where the base backup stopped: the archive must hold WAL after it for any later target. */
  backupStop?: { timeline: number; stopLsn: string; stopTime: string };
  /** The Lifeboat target whose archive was read. */
  archiveTarget?: string;
  /** The newest segment in the archive and when it was archived; null when the archive holds none. */
  newestArchived?: { name: string; archivedAt: string | undefined } | null;
  /** What the source server's pg_stat_archiver says, in words (or why it could not be asked). */
  sourceArchiver?: string;
}

/**
 * A typed error for a recovery that ended without reaching its target, from the server's log;
 * undefined when the log does not say (the caller reports the log itself).
 */
export function classifyRecoveryFailure(log: RecoveryLog, context: FailureContext): LifeboatError | undefined {
  for (const fatal of log.fatals) {
    const typed = classifyFatal(fatal, log, context);
    if (typed) return typed;
  }
  return undefined;
}

function classifyFatal(fatal: RecoveryLog['fatals'][number], log: RecoveryLog, context: FailureContext): LifeboatError | undefined {
  const target = describeRecoveryTarget(context.target);
  const logHint = `The server log is ${context.logFile}`;
  let found: RegExpExecArray | null;

  if (/^recovery ended before configured recovery target was reached/.test(fatal.message)) {
    const gap = missingSegment(log, context);
    if (gap) return gap;
    const silent = nothingArchivedAfterBackup(target, context);
    if (silent) return silent;
    const reached = log.lastTransactionTime ? `; the last transaction replayed committed at ${log.lastTransactionTime}` : '';
    const hint =
      context.target.kind === 'name'
        ? `Either no restore point "${context.target.name}" was archived after base backup ${context.backupId}, or it precedes that backup (then pin an older backup, or give the restore point's LSN). Nothing live was touched`
        : 'Choose an earlier target, or wait until the WAL up to the target is archived (pg_switch_wal() completes the current segment). Nothing live was touched';
    return new LifeboatError(
      'RecoveryTargetUnreachable',
      `${target} is not in the archived WAL: replay of base backup ${context.backupId} reached the end of the archive at ${log.redoDoneAt ?? 'an unknown point'}` +
        `${log.restoredFiles.length ? ` (last WAL file ${log.restoredFiles.at(-1)})` : ''}${reached}`,
      hint,
    );
  }
  if ((found = /^recovery target timeline (\d+) does not exist/.exec(fatal.message))) {
    return new LifeboatError('TimelineNotFound', `timeline ${found[1]} does not exist in the WAL archive (no ${hexTimeline(Number(found[1]))}.history)`, `Use "latest" or a timeline the archive has. Nothing live was touched`);
  }
  if ((found = /^requested timeline (\d+) is not a child of this server's history/.exec(fatal.message))) {
    return new LifeboatError(
      'TimelineNotFound',
      `timeline ${found[1]} does not descend from the timeline of base backup ${context.backupId}${fatal.detail ? `: ${fatal.detail}` : ''}`,
      'Choose a timeline that branched off after this backup, or a base backup taken on that timeline. Nothing live was touched',
    );
  }
  if (/^requested recovery stop point is before consistent recovery point/.test(fatal.message)) {
    return new LifeboatError(
      'RecoveryTargetBeforeBackup',
      `${target} lies inside base backup ${context.backupId} (before the point where it becomes consistent, ${log.consistentAt ?? 'its stop LSN'})`,
      'Choose a later target, or an older base backup. Nothing live was touched',
    );
  }
  if ((found = /^could not restore file "([^"]+)" from archive/.exec(fatal.message))) {
    const why = log.walFetchFailures.at(-1);
    const damaged = why !== undefined && /^(ChecksumMismatch|BackupCorrupt)\b/.test(why);
    // The repository refused the server's OS user, or its credentials are missing: not missing WAL
    // (the file asked for, e.g. the next timeline's history file, may well not exist at all).
    const denied = why !== undefined && /^(InvalidConfig|CredentialsUnavailable)\b|\b(EACCES|EPERM)\b|AccessDenied/.test(why);
    if (denied) {
      return new LifeboatError(
        'InvalidConfig',
        `restore_command (lifeboat wal-fetch, run by PostgreSQL as its OS user) was refused access when asked for ${found[1]}: ${why}`,
        `The server's OS user must be able to run lifeboat, read its config and read the target's repositories (docs/postgresql-deployment.md). Nothing live was touched. ${logHint}`,
      );
    }
    return new LifeboatError(
      damaged ? 'ChecksumMismatch' : 'WalSegmentMissing',
      `the WAL archive could not deliver ${found[1]}${why ? `: ${why}` : ` (${fatal.message})`}`,
      damaged
        ? 'Recovery must not continue past a damaged WAL file: restore an intact copy into the repository, or choose an earlier target. Nothing live was touched'
        : `Check that the repositories are reachable from the server's environment. ${logHint}`,
    );
  }
  if (/could not locate required checkpoint record|WAL ends before (end of online backup|consistent recovery point)/.test(fatal.message)) {
    return new LifeboatError('BackupCorrupt', `base backup ${context.backupId} cannot be recovered: ${fatal.message}`, `Restore another base backup. ${logHint}`);
  }
  return undefined;
}

/**
 * When replay ended because the archive answered "missing" for a segment while it holds later
 * segments of the same timeline, that segment is missing from the middle of the archive: a gap,
 * not the end. Returns WalSegmentMissing naming it, or undefined.
 */
export function missingSegment(log: RecoveryLog, context: Pick<FailureContext, 'archivedSegments' | 'walSegmentSizeBytes' | 'backupId'>): LifeboatError | undefined {
  if (!context.archivedSegments) return undefined;
  const lastSegment = [...log.restoredFiles].reverse().find((name) => parseWalSegmentName(name, context.walSegmentSizeBytes));
  if (!lastSegment) return undefined;
  const last = parseWalSegmentName(lastSegment, context.walSegmentSizeBytes)!;
  const later = context.archivedSegments
    .map((name) => ({ name, parsed: parseWalSegmentName(name, context.walSegmentSizeBytes) }))
    .filter(({ parsed }) => parsed && parsed.timeline === last.timeline && parsed.segment > last.segment + 1n)
    .sort((a, b) => (a.parsed!.segment < b.parsed!.segment ? -1 : 1));
  const expected = walSegmentName(last.timeline, last.segment + 1n, context.walSegmentSizeBytes);
  if (later.length === 0 || context.archivedSegments.includes(expected)) return undefined;
  return new LifeboatError(
    'WalSegmentMissing',
    `WAL segment ${expected} is missing from the archive: replay of base backup ${context.backupId} stopped after ${lastSegment}, but the archive holds later segments (from ${later[0]!.name})`,
    `Recover to a target before ${expected}, or put the segment back into the repository (it may still be in the source's pg_wal). Nothing live was touched`,
  );
}

/**
 * When the archive holds no segment after the one holding the base backup's stop point, replay
 * could not go past the backup at all: archiving stopped working at (or before) the backup, not
 * somewhere before the target. Says so, with the archive's newest segment and what the source's
 * archiver reports; undefined when the archive holds later WAL (or is unknown).
 */
export function nothingArchivedAfterBackup(target: string, context: FailureContext): LifeboatError | undefined {
  const { backupStop, archivedSegments } = context;
  if (!backupStop || !archivedSegments) return undefined;
  const stopLsn = parseLsn(backupStop.stopLsn);
  const stopSegmentNo = (stopLsn > 0n ? stopLsn - 1n : 0n) / BigInt(context.walSegmentSizeBytes);
  const stopSegment = walSegmentName(backupStop.timeline, stopSegmentNo, context.walSegmentSizeBytes);
  const later = archivedSegments.some((name) => {
    const parsed = parseWalSegmentName(name, context.walSegmentSizeBytes);
    return parsed !== undefined && (parsed.timeline > backupStop.timeline || (parsed.timeline === backupStop.timeline && parsed.segment > stopSegmentNo));
  });
  if (later) return undefined;
  const newest = context.newestArchived
    ? `its newest segment is ${context.newestArchived.name}${context.newestArchived.archivedAt ? `, archived ${context.newestArchived.archivedAt}` : ''}`
    : context.newestArchived === null
      ? 'it holds no WAL segment at all'
      : undefined;
  const archive = context.archiveTarget ? `the WAL archive of target "${context.archiveTarget}"` : 'the WAL archive';
  return new LifeboatError(
    'WalSegmentMissing',
    `${target} cannot be reached: ${archive} holds no WAL after base backup ${context.backupId}'s stop point (LSN ${backupStop.stopLsn}, in segment ${stopSegment}, at ${backupStop.stopTime}), ` +
      `so WAL archiving has not worked since that backup${newest ? `; ${newest}` : ''}${context.sourceArchiver ? `; ${context.sourceArchiver}` : ''}`,
    `Fix archiving on the source (its log says why archive_command fails; \`lifeboat archive-status\` shows pg_stat_archiver; docs/postgresql-deployment.md), ` +
      `then take a new base backup. This backup can only be recovered to its stop point (pitr --latest). Nothing live was touched`,
  );
}

/** Compares LSN strings. */
export function lsnAtLeast(a: string, b: string): boolean {
  return parseLsn(a) >= parseLsn(b);
}

function hexTimeline(timeline: number): string {
  return timeline.toString(16).toUpperCase().padStart(8, '0');
}
