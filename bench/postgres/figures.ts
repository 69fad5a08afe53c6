/**
 * Pure figures of the PostgreSQL benchmarks, apart so unit tests can check them without a cluster:
 * WAL between two LSNs, the start of pgBackRest's newest backup from `pgbackrest info
 * --output=json`, the check that a PITR stopped where it should (bench/postgres/pitr.ts), and the
 * choice of the heaviest pgbench load (bench/postgres/wal-sustained.ts).
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

/** A pgbench load: clients and threads (-c, -j). */
export interface Load {
  clients: number;
  jobs: number;
}

/** One short probe of a load: the WAL it wrote per second. */
export interface LoadProbe extends Load {
  walBytesPerSecond: number;
}

/**
 * The heaviest load of the probes: the highest WAL rate, but the fewest clients among those
 * within 5% of it (more clients than that only add lock waits and noise).
 */
export function heaviestLoad(probes: LoadProbe[]): LoadProbe {
  if (probes.length === 0) throw new Error('no load was probed');
  const top = Math.max(...probes.map((p) => p.walBytesPerSecond));
  return [...probes].sort((a, b) => a.clients - b.clients).find((p) => p.walBytesPerSecond >= top * 0.95)!;
}

/** pgbench threads (-j) for a client count: one per core, never more than the clients. */
export function jobsFor(clients: number, cores: number): number {
  return Math.max(1, Math.min(clients, cores));
}
