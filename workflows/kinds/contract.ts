/**
 * The workflow-side half of a kind of target: the steps its backup, restore and drill take. It is
 * bundled into Temporal's deterministic sandbox with the rest of workflows/, so it follows the same
 * rules (no Node built-ins, activities only through the proxies of runbook.ts, types only from
 * activities/ and src/kinds/). The generic runbooks (backup.ts, restore.ts, drill.ts) resolve the
 * target, hand it to the kind registered under its type (workflows/kinds/index.ts), and do what
 * every kind shares: the backup id, the manifest's write and read-back, discarding a failed backup,
 * the drill's RTO, RPO, report and cleanup. The worker-side half is src/kinds/<kind>/.
 */
import type { ResolvedTargetBase, SmokeCheckResult } from '../../activities/index.js';
import type { Manifest } from '../../src/repository/manifest.js';
import type { Timeline } from '../runbook.js';

export interface BackupRun<Target> {
  timeline: Timeline;
  target: Target;
  /** Chosen once by the runbook, so a retried step writes under the same id. */
  backupId: string;
  /** The run's method (the input's `method`, one of the kind's `methods`), if it chose one. */
  method: string | undefined;
}

export interface BackupOutcome<Details extends object> {
  /**
   * The backup's manifest, complete but for its timeline (the runbook sets that as it writes it).
   * Build it on manifestEnvelope() (runbook.ts). The runbook writes it last, into every repository,
   * then reads every stored object back; if anything fails before the write, it discards what the
   * backup stored.
   */
  manifest: Manifest;
  /** Bytes of the source as backed up. */
  sourceBytes: number;
  /** The kind's fields of the backup's result (e.g. `{ dump: {...} }`). */
  details: Details;
  /**
   * Steps the kind runs once the backup is durable (manifest written, every copy read back), e.g.
   * PostgreSQL's check that the WAL after a base backup reaches the archive. A failure here fails
   * the run; the backup stays.
   */
  afterDurable?: () => Promise<void>;
}

/** What a restore asks for (the restore runbook's input, but its target). */
export interface RestoreRequest {
  backupId?: string;
  into?: string;
  replaceExisting?: boolean;
  method?: string;
}

export interface RestoreRun<Target> {
  timeline: Timeline;
  target: Target;
  request: RestoreRequest;
}

export interface RestoreOutcome {
  /** The backup that was restored. */
  backup: Pick<Manifest, 'id' | 'kind' | 'snapshotAt'>;
  /** Where it is now (a path, a database, a data directory...). */
  restoredTo: string;
  /** What was live before, kept whole; null when nothing was replaced. */
  safetyCopy: string | null;
}

export interface DrillRun<Target, Details extends object> {
  timeline: Timeline;
  target: Target;
  /** When the drill started (workflow time): RTO and RPO are measured from it. */
  startedAtMs: number;
  /**
   * Names the backup the drill restores (the report's backupId and snapshotAt) and sets the RPO:
   * from recoverableAt, the newest point the restored copy holds (default: the backup's snapshot).
   */
  restoring(backup: Pick<Manifest, 'id' | 'snapshotAt'> & { tools?: Record<string, string> }, recoverableAt?: string): void;
  /**
   * Compensation: runs when the drill ends, whatever happened (also when it is cancelled), in the
   * reverse order of registration; a failed one is on the timeline and does not fail the drill.
   */
  cleanup(step: () => Promise<unknown>): void;
  /** Sets the kind's fields of the report (e.g. how the scratch copy was made). */
  report(fields: Partial<Details>): void;
}

export interface DrillOutcome {
  /** The smoke checks of the restored copy; the drill's RTO ends when they do. */
  checks: SmokeCheckResult[];
}

export interface TargetRunbooks<Target extends ResolvedTargetBase = ResolvedTargetBase, BackupDetails extends object = object, DrillDetails extends object = object> {
  /** The config's `type` of these targets (as in src/kinds/<kind>/index.ts). */
  readonly type: Target['type'];
  /** Backup methods a run may choose (the input's `method`); empty when there is one way. As in the worker-side half. */
  readonly methods: readonly string[];
  /** What the run works on, in one line (the resolve-target step's detail). */
  describe(target: Target): string;
  /** The steps that take a backup, up to its manifest (not written: the runbook writes it). */
  backup(run: BackupRun<Target>): Promise<BackupOutcome<BackupDetails>>;
  /** Every step of a restore after resolve-target, compensation included. */
  restore(run: RestoreRun<Target>): Promise<RestoreOutcome>;
  /** Restore into scratch and smoke-check it; register its removal with run.cleanup. */
  drill(run: DrillRun<Target, DrillDetails>): Promise<DrillOutcome>;
}

/** Checks a kind's runbooks against the contract, keeping their exact types for the registry. */
export function defineTargetRunbooks<Target extends ResolvedTargetBase>() {
  return <BackupDetails extends object, DrillDetails extends object>(runbooks: TargetRunbooks<Target, BackupDetails, DrillDetails>) => runbooks;
}
