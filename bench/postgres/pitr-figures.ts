/**
 * Pure figures of the PITR benchmark (bench/postgres/pitr.ts), apart so unit tests can check them
 * without a cluster: WAL between two LSNs, the start of pgBackRest's newest backup from
 * `pgbackrest info --output=json`, and the check that both recoveries stopped at the same point.
 */
import { parseLsn } from '../../src/postgres/recovery-target.js';

const MiB = 1 << 20;

/** Bytes of WAL from `from` to `to` (0 when `to` is not after `from`). */
export function walBytesBetween(from: string, to: string): number {
  const diff = parseLsn(to) - parseLsn(from);
  return diff > 0n ? Number(diff) : 0;
}

export function mib(bytes: number): number {
  return bytes / MiB;
}

/**
 * The start LSN of the newest backup of the stanza in `pgbackrest info --output=json`
 * ([{ name, backup: [{ label, lsn: { start, stop } }, ...] }]).
 */
export function pgbackrestNewestStartLsn(infoJson: string, stanza: string): string {
  const info = JSON.parse(infoJson) as Array<{ name?: string; backup?: Array<{ label?: string; lsn?: { start?: string } }> }>;
  const backups = info.find((entry) => entry.name === stanza)?.backup ?? [];
  const start = backups.at(-1)?.lsn?.start;
  if (!start) throw new Error(`pgbackrest info lists no backup with a start LSN for stanza "${stanza}"`);
  return start;
}

/** What a recovered cluster holds at the end: where replay stopped and the rows the check counts. */
export interface RecoveredState {
  /** pg_last_wal_replay_lsn() after promotion (Lifeboat: the runbook's reached.lsn). */
  replayLsn: string;
  /** count(*) of pgbench_history. */
  historyRows: number;
}

/**
 * Why a recovered cluster did not stop where it should have (undefined when it did): it must hold
 * exactly the rows the source had at the target, and replay must not have gone past the target
 * (with an exclusive LSN target it stops at the record that starts at or after it).
 */
export function recoveredMismatch(side: string, state: RecoveredState, expected: { historyRows: number; targetLsn: string }): string | undefined {
  if (state.historyRows !== expected.historyRows) {
    return `${side} recovered ${state.historyRows} rows of pgbench_history, the source had ${expected.historyRows} at the target ${expected.targetLsn}`;
  }
  if (parseLsn(state.replayLsn) > parseLsn(expected.targetLsn)) {
    return `${side} replayed to ${state.replayLsn}, past the target ${expected.targetLsn}`;
  }
  return undefined;
}
