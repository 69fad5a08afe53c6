import { z } from 'zod';
import { LifeboatError } from '../errors.js';

/**
 * Recovery targets of a point-in-time recovery, and the choice of the base backup to start from.
 * Pure: no I/O, no clock, so the choice can be unit-tested and, later, made inside a workflow.
 *
 * Semantics are PostgreSQL's (recovery_target_* settings), stated here because the tests assert them:
 * - time: every transaction whose commit record carries a time at or before `time` (inclusive, the
 *   default) or strictly before it (inclusive: false). Commit times are the server's clock, with
 *   microseconds; `time` needs an explicit UTC offset so no server time zone is guessed.
 * - lsn: replay stops at the first WAL record that starts at or after `lsn`: after replaying it
 *   (inclusive, the default) or before it (inclusive: false). So with exclusive semantics the
 *   recovered cluster holds exactly the transactions whose commit record starts before `lsn`.
 * - xid: stops after (inclusive) or before the commit of transaction `xid`; transactions that
 *   committed earlier are kept, whatever their ids.
 * - name: stops right after the restore point `name` (pg_create_restore_point), i.e. holds exactly
 *   what committed before the restore point was created. The first restore point of that name in
 *   the WAL wins.
 * - latest: replays every archived WAL file.
 * - immediate: stops as soon as the base backup is consistent (the backup's own state).
 */

export const recoveryTargetKinds = ['latest', 'immediate', 'time', 'lsn', 'xid', 'name'] as const;
export type RecoveryTargetKind = (typeof recoveryTargetKinds)[number];

const lsnPattern = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const timestampPattern = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

const inclusive = z.boolean().optional().describe('Default true: the target itself is recovered (see the module comment).');

export const recoveryTargetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('latest') }).strict(),
  z.object({ kind: z.literal('immediate') }).strict(),
  z
    .object({
      kind: z.literal('time'),
      time: z.string().regex(timestampPattern, 'expected a timestamp with a UTC offset, e.g. "2026-11-21T14:05:00.123456Z" or "2026-11-21 15:05:00+01"'),
      inclusive,
    })
    .strict(),
  z.object({ kind: z.literal('lsn'), lsn: z.string().regex(lsnPattern, 'expected an LSN like "0/3000028"'), inclusive }).strict(),
  z
    .object({
      kind: z.literal('xid'),
      xid: z.union([z.string().regex(/^\d{1,20}$/, 'expected a transaction id (digits)'), z.number().int().positive()]),
      inclusive,
    })
    .strict(),
  z
    .object({
      kind: z.literal('name'),
      name: z.string().min(1).max(63, 'restore point names have at most 63 bytes'),
      lsn: z
        .string()
        .regex(lsnPattern, 'expected an LSN like "0/3000028"')
        .optional()
        .describe('What pg_create_restore_point returned; lets Lifeboat pick the newest base backup before it'),
    })
    .strict(),
]);

export type RecoveryTarget = z.input<typeof recoveryTargetSchema>;

/** Validates an operator's recovery target; InvalidInput naming the field and what was expected. */
export function parseRecoveryTarget(input: unknown): RecoveryTarget {
  const result = recoveryTargetSchema.safeParse(input);
  if (result.success) {
    if (result.data.kind === 'time') parseTimestamp(result.data.time); // calendar check
    return result.data;
  }
  const issue = result.error.issues[0];
  const field = issue?.path.length ? issue.path.join('.') : 'kind';
  throw new LifeboatError(
    'InvalidInput',
    `invalid recovery target ${JSON.stringify(input)}: ${field}: ${issue?.message ?? 'invalid'}`,
    `A recovery target is one of {"kind": "latest"}, {"kind": "immediate"}, {"kind": "time", "time": "2026-11-21T14:05:00Z"}, ` +
      `{"kind": "lsn", "lsn": "0/3000028"}, {"kind": "xid", "xid": "1234"}, {"kind": "name", "name": "before-migration"}`,
  );
}

/** A one-line description for messages and timelines, e.g. 'time 2026-11-21T14:05:00.000000Z (inclusive)'. */
export function describeRecoveryTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'latest':
      return 'the end of the archived WAL';
    case 'immediate':
      return 'the end of the base backup';
    case 'time':
      return `time ${parseTimestamp(target.time).iso}${target.inclusive === false ? ' (exclusive)' : ''}`;
    case 'lsn':
      return `LSN ${formatLsn(parseLsn(target.lsn))}${target.inclusive === false ? ' (exclusive)' : ''}`;
    case 'xid':
      return `transaction ${String(target.xid)}${target.inclusive === false ? ' (exclusive)' : ''}`;
    case 'name':
      return `restore point "${target.name}"`;
  }
}

// ---------------------------------------------------------------------------------------------
// LSNs, timestamps, WAL file names

/** An LSN ("16/B374D848") as a 64-bit number. */
export function parseLsn(lsn: string): bigint {
  if (!lsnPattern.test(lsn)) throw new LifeboatError('InvalidInput', `${JSON.stringify(lsn)} is not an LSN`, 'An LSN looks like "0/3000028"');
  const [high, low] = lsn.split('/') as [string, string];
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** PostgreSQL's spelling of an LSN: uppercase hex, no leading zeros ("0/3000028"). */
export function formatLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export interface Timestamp {
  /** Microseconds since the Unix epoch (PostgreSQL's precision; a JS Date has only milliseconds). */
  micros: bigint;
  /** UTC, six fractional digits: "2026-11-21T14:05:00.123456Z". */
  iso: string;
}

/** Parses an ISO 8601 / PostgreSQL timestamp with an explicit offset, keeping microseconds. */
export function parseTimestamp(text: string): Timestamp {
  const match = timestampPattern.exec(text.trim());
  if (!match) {
    throw new LifeboatError('InvalidInput', `${JSON.stringify(text)} is not a timestamp with a UTC offset`, 'Write it like "2026-11-21T14:05:00.123456Z" or "2026-11-21 15:05:00+01:00"');
  }
  const [, year, month, day, hour, minute, second, fraction = '', offset = 'Z'] = match;
  const fields = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number];
  const millis = Date.UTC(fields[0], fields[1] - 1, fields[2], fields[3], fields[4], fields[5]);
  const check = new Date(millis);
  if (
    Number.isNaN(millis) ||
    check.getUTCFullYear() !== fields[0] ||
    check.getUTCMonth() !== fields[1] - 1 ||
    check.getUTCDate() !== fields[2] ||
    fields[3] > 23 ||
    fields[4] > 59 ||
    fields[5] > 59
  ) {
    throw new LifeboatError('InvalidInput', `${JSON.stringify(text)} is not a valid calendar time`);
  }
  let offsetMinutes = 0;
  if (offset.toUpperCase() !== 'Z') {
    const sign = offset.startsWith('-') ? -1 : 1;
    const digits = offset.slice(1).replace(':', '');
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0'));
  }
  const micros = BigInt(millis) * 1000n + BigInt(fraction.padEnd(6, '0')) - BigInt(offsetMinutes) * 60_000_000n;
  return { micros, iso: isoFromMicros(micros) };
}

export function isoFromMicros(micros: bigint): string {
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const sub = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
  return `${new Date(Number(millis)).toISOString().slice(0, 19)}.${sub.toString().padStart(6, '0')}Z`;
}

const walNamePattern = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

/** Timeline and segment number of a WAL segment file name (24 uppercase hex digits). */
export function parseWalSegmentName(name: string, segmentSizeBytes: number): { timeline: number; segment: bigint } | undefined {
  const match = walNamePattern.exec(name);
  if (!match) return undefined;
  const perLog = 0x1_0000_0000n / BigInt(segmentSizeBytes);
  return { timeline: parseInt(match[1]!, 16), segment: BigInt(`0x${match[2]}`) * perLog + BigInt(`0x${match[3]}`) };
}

export function walSegmentName(timeline: number, segment: bigint, segmentSizeBytes: number): string {
  const perLog = 0x1_0000_0000n / BigInt(segmentSizeBytes);
  const hex = (value: bigint | number) => value.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segment / perLog)}${hex(segment % perLog)}`;
}

// ---------------------------------------------------------------------------------------------
// Choosing the base backup

/** What the choice needs to know about a base backup (BaseBackupRecord carries it). */
export interface BaseBackupPoint {
  id: string;
  /** Where replay of this backup becomes consistent: no recovery target may lie before it. */
  stopLsn: string;
  /** The server's clock after the backup stopped (UTC ISO, microseconds): an upper bound of the stop's time. */
  stopTime: string;
  /** The first transaction id not yet assigned when the backup stopped (64-bit, decimal). */
  nextXid: string;
  timeline: number;
}

export interface ChosenBaseBackup<B extends BaseBackupPoint> {
  backup: B;
  /** Why this one, for the runbook's timeline. */
  reason: string;
}

/**
 * The newest base backup that finished before the target, so that replay starts as late (and is
 * as short) as possible. `backupId` pins one; it must still precede the target.
 *
 * - time: the backup's stop time is at or before the target (strictly before when exclusive).
 * - lsn: the backup's stop LSN is at or before the target LSN.
 * - xid: the transaction was not assigned yet when the backup stopped (nextXid <= xid), so its
 *   commit comes after the backup. A transaction assigned before the backup stopped but committed
 *   after it needs an older backup: pass its id.
 * - name: with the restore point's LSN, as for lsn; without it, the newest backup (Lifeboat cannot
 *   see where the restore point is; if it precedes that backup, recovery says so and an older
 *   backup can be pinned).
 * - latest, immediate: the newest backup.
 */
export function chooseBaseBackup<B extends BaseBackupPoint>(backups: readonly B[], target: RecoveryTarget, options: { backupId?: string; targetName?: string } = {}): ChosenBaseBackup<B> {
  const what = options.targetName ? ` of target "${options.targetName}"` : '';
  if (backups.length === 0) {
    throw new LifeboatError('BackupNotFound', `there is no base backup${what} to recover from`, 'Take a base backup first; point-in-time recovery starts from one and replays archived WAL');
  }
  // Newest first: stop LSNs only compare within one timeline history, stop times always do.
  const sorted = [...backups].sort((a, b) => compareBigint(parseTimestamp(b.stopTime).micros, parseTimestamp(a.stopTime).micros) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0));
  const precedes = (backup: B): boolean => backupPrecedes(backup, target);

  if (options.backupId !== undefined) {
    const pinned = sorted.find((backup) => backup.id === options.backupId);
    if (!pinned) {
      throw new LifeboatError('BackupNotFound', `base backup ${options.backupId}${what} does not exist`, `Base backups: ${sorted.map((b) => b.id).join(', ')}`);
    }
    if (!precedes(pinned)) throw beforeBackup(target, pinned, `the chosen base backup ${pinned.id}`);
    return { backup: pinned, reason: `base backup ${pinned.id} was chosen by id` };
  }
  const chosen = sorted.find(precedes);
  if (!chosen) throw beforeBackup(target, sorted.at(-1)!, `the oldest base backup${what}, ${sorted.at(-1)!.id},`);
  const reason =
    target.kind === 'latest' || target.kind === 'immediate' || (target.kind === 'name' && target.lsn === undefined)
      ? `the newest base backup, ${chosen.id} (stopped ${chosen.stopTime} at ${chosen.stopLsn})`
      : `the newest base backup that stopped before ${describeRecoveryTarget(target)}: ${chosen.id} (stopped ${chosen.stopTime} at ${chosen.stopLsn})`;
  return { backup: chosen, reason };
}

function backupPrecedes(backup: BaseBackupPoint, target: RecoveryTarget): boolean {
  switch (target.kind) {
    case 'latest':
    case 'immediate':
      return true;
    case 'time': {
      const stop = parseTimestamp(backup.stopTime).micros;
      const at = parseTimestamp(target.time).micros;
      return target.inclusive === false ? stop < at : stop <= at;
    }
    case 'lsn':
      return parseLsn(backup.stopLsn) <= parseLsn(target.lsn);
    case 'xid':
      return BigInt(backup.nextXid) <= BigInt(target.xid);
    case 'name':
      return target.lsn === undefined || parseLsn(backup.stopLsn) <= parseLsn(target.lsn);
  }
}

function beforeBackup(target: RecoveryTarget, backup: BaseBackupPoint, which: string): LifeboatError {
  const stop =
    target.kind === 'xid'
      ? `the next transaction id was ${backup.nextXid} when it stopped`
      : target.kind === 'time'
        ? `it stopped at ${backup.stopTime}`
        : `it stopped at LSN ${backup.stopLsn}`;
  return new LifeboatError(
    'RecoveryTargetBeforeBackup',
    `${describeRecoveryTarget(target)} is earlier than ${which}: ${stop}`,
    'A recovery can only reach points after the base backup it starts from: choose a later target, or an older base backup if the repository has one. Nothing was changed',
  );
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// The settings

export type RecoveryTimeline = 'latest' | 'current' | number;

/**
 * The recovery_target_* settings for a target: exactly one of them non-empty (PostgreSQL refuses
 * more than one), the others written empty so a value left in the source's configuration cannot
 * add a second one. 'latest' sets none of them.
 *
 * Order matters: PostgreSQL assigns them in the order of the file, and assigning an empty value
 * while another kind of target is already set is an error ("multiple recovery targets"), so the
 * empty ones come first and the chosen one last (writeClusterSettings keeps this order).
 */
export function recoveryTargetSettings(target: RecoveryTarget, timeline: RecoveryTimeline = 'latest'): Record<string, string> {
  if (typeof timeline === 'number' && !(Number.isInteger(timeline) && timeline >= 1 && timeline <= 0xffffffff)) {
    throw new LifeboatError('InvalidInput', `timeline ${timeline} is not a timeline id`, 'Use "latest", "current", or a positive integer');
  }
  const inclusiveSetting = (value: boolean | undefined) => (value === false ? 'off' : 'on');
  const chosen: [string, string] | undefined = (() => {
    switch (target.kind) {
      case 'latest':
        return undefined;
      case 'immediate':
        return ['recovery_target', 'immediate'];
      case 'time':
        // A numeric offset: when the server reads its configuration at startup it does not know
        // time zone abbreviations yet, not even "Z".
        return ['recovery_target_time', parseTimestamp(target.time).iso.replace('T', ' ').replace(/Z$/, '+00')];
      case 'lsn':
        return ['recovery_target_lsn', formatLsn(parseLsn(target.lsn))];
      case 'xid':
        return ['recovery_target_xid', String(target.xid)];
      case 'name':
        return ['recovery_target_name', target.name];
    }
  })();
  const settings: Record<string, string> = {};
  for (const name of ['recovery_target', 'recovery_target_time', 'recovery_target_lsn', 'recovery_target_xid', 'recovery_target_name']) {
    if (name !== chosen?.[0]) settings[name] = '';
  }
  settings.recovery_target_inclusive = 'inclusive' in target ? inclusiveSetting(target.inclusive) : 'on';
  settings.recovery_target_timeline = typeof timeline === 'number' ? String(timeline) : timeline;
  settings.recovery_target_action = 'promote';
  if (chosen) settings[chosen[0]] = chosen[1];
  return settings;
}
