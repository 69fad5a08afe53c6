import type { Manifest } from '../src/repository/manifest.js';
import type { Timeline} from './runbook.js';
import { quickSteps, type StepRecord } from './runbook.js';
import { runRunbook } from './telling.js';
import { describeTarget, methodOf, runbooksFor } from './targets.js';

export interface RestoreInput {
  target: string;
  /**
   * A kind's backup method, where a kind has several: which kind of backup to restore. PostgreSQL:
   * "dump" restores a pg_dump backup into a database; "base" lays a base backup out as a new data
   * directory (into: its absolute path). Default: the target's backup method.
   */
  method?: string;
  /** A backup id from `lifeboat backups <target>`; default: the newest complete backup. */
  backupId?: string;
  /**
   * Restore beside what is live instead of replacing it; what it names is the kind's. SQLite: a new
   * file's path. PostgreSQL dump: the database to restore into (default a new one,
   * `<database>_restored_<stamp>`). PostgreSQL base: the new data directory (absolute; default under recovery.dir).
   */
  into?: string;
  /**
   * Replace `into` if it exists (the CLI's --yes), where a kind asks first (PostgreSQL dump: without
   * it, a restore onto an existing database waits for an approval, `lifeboat approve`).
   */
  replaceExisting?: boolean;
}

export interface RestoreResult {
  target: string;
  backupId: string;
  backupKind: Manifest['kind'];
  snapshotAt: string;
  /** Where the backup is now: SQLite, the path; PostgreSQL, the database name, or the data directory of a base backup. */
  restoredTo: string;
  /** What was live before (SQLite: a file; PostgreSQL: a renamed database), kept whole; null for --into or when there was none. */
  safetyCopy: string | null;
  timeline: StepRecord[];
}

/**
 * Restore runbook: resolve the target and hand the restore to its kind. Every kind keeps the same
 * promise: nothing live is touched until the backup is fetched and its checksums match the
 * manifest; what is replaced is kept as a safety copy and put back when a later step fails
 * (compensation that runs even when the run is cancelled).
 */
export async function restore(input: RestoreInput): Promise<RestoreResult> {
  return runRunbook('restore', (timeline) => restoreSteps(timeline, input));
}

async function restoreSteps(timeline: Timeline, input: RestoreInput): Promise<RestoreResult> {
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget({ target: input.target }), (t) => describeTarget(t));
  const kind = runbooksFor(target);
  const method = methodOf(input, target, kind);
  const { backupId, into, replaceExisting } = input;
  const restored = await kind.restore({
    timeline,
    target,
    request: { ...(backupId ? { backupId } : {}), ...(into !== undefined ? { into } : {}), ...(replaceExisting ? { replaceExisting } : {}), ...(method ? { method } : {}) },
  });
  return {
    target: target.name,
    backupId: restored.backup.id,
    backupKind: restored.backup.kind,
    snapshotAt: restored.backup.snapshotAt,
    restoredTo: restored.restoredTo,
    safetyCopy: restored.safetyCopy,
    timeline: timeline.steps,
  };
}
