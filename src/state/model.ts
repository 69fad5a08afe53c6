import type { Manifest } from '../repository/manifest.js';

/**
 * The state of a target: one model, read from the repositories, the Temporal server and (for
 * PostgreSQL) the server's archiver, and rendered twice: by `lifeboat status` (text or JSON) and
 * by `lifeboat serve` (/metrics). Nothing here does I/O: src/state/read.ts fills it in, assess()
 * judges it against the target's objectives.
 *
 * Times are ISO 8601 strings (UTC), durations seconds, sizes bytes. A fact that could not be read
 * is null, and the reason is in `error` beside it.
 */

/** The runbooks whose results the state follows (their reports and their last runs). */
export const followedRunbooks = ['backup', 'verify', 'drill', 'retention'] as const;
export type FollowedRunbook = (typeof followedRunbooks)[number];

export interface Objectives {
  /** The newest backup must be younger than this; a WAL archive must not lag by more. */
  rpoSeconds: number | null;
  /** The last drill's measured RTO must not be above this. */
  rtoSeconds: number | null;
  drillEverySeconds: number | null;
  verifyEverySeconds: number | null;
}

export interface BackupFacts {
  id: string;
  kind: Manifest['kind'];
  /** The moment the backup restores to: what its age and the RPO are measured from. */
  snapshotAt: string;
  /** When the backup became complete (its manifest). */
  completedAt: string;
  storedBytes: number;
  sourceBytes: number;
  /** From the backup's first step to its manifest; null when its manifest has no timeline. */
  durationSeconds: number | null;
}

export interface VerifiedBackup {
  id: string;
  /** When it was last proven restorable or intact. */
  verifiedAt: string;
  /** verify: read back in full by a verify run; drill: restored and checked by a drill; backup: a dump checked by a scratch restore when it was taken. */
  by: 'verify' | 'drill' | 'backup';
}

export interface VerifyFacts {
  workflowId: string | null;
  finishedAt: string;
  /** The verify run's verdict on this repository. */
  valid: boolean;
  backupsChecked: number;
  /** Backups the run found damaged, with what it found. */
  damaged: Array<{ backupId: string; problems: string[] }>;
  /** Gaps the run found in the WAL archive (PostgreSQL). */
  walGaps: number;
}

export interface MeasuredObjective {
  seconds: number;
  /** The objective the run was measured against (as recorded by the run). */
  objectiveSeconds: number | null;
  met: boolean | null;
}

export interface DrillFacts {
  workflowId: string | null;
  startedAt: string;
  passed: boolean;
  backupId: string | null;
  method: string | null;
  rto: MeasuredObjective | null;
  rpo: MeasuredObjective | null;
  failure: { type: string | null; message: string } | null;
}

export interface WalHead {
  /** The newest WAL file in the repository's archive. */
  name: string;
  archivedAt: string;
}

export interface PitrWindow {
  /** The end of the oldest base backup: no recovery can reach an earlier point. */
  start: string | null;
  /** The newest archived WAL file's archive time: about the newest point a recovery reaches. */
  end: string | null;
}

/** What the next retention run would remove (the retention runbook's plan, made now; see retention-preview.ts). */
export interface RetentionPreview {
  wouldRemove: Array<{ backupId: string; reason: string }>;
  wouldKeep: number;
}

export interface RepositoryState {
  repository: string;
  location: string;
  /** Why some of the facts below could not be read (the repository did not answer, a file is damaged); null when all were read. */
  error: string | null;
  newestBackup: BackupFacts | null;
  newestVerifiedBackup: VerifiedBackup | null;
  lastVerify: VerifyFacts | null;
  /** The newest verify that found everything valid (the same run as lastVerify when that one did). */
  lastPassedVerify: VerifyFacts | null;
  lastDrill: DrillFacts | null;
  /** The newest drill that passed (the same run as lastDrill when that one did). */
  lastPassedDrill: DrillFacts | null;
  /** PostgreSQL targets only. */
  wal: { head: WalHead | null; pitrWindow: PitrWindow } | null;
  /** Null: not shown (no retention policy, or read for /metrics, or the plan could not be made: see error). */
  retention: RetentionPreview | null;
}

/** The PostgreSQL server's own view of its WAL archiving (pg_stat_archiver), when it could be asked. */
export interface ArchiverFacts {
  reachable: boolean;
  error: string | null;
  /** archive_mode: 'off' means this server does not archive WAL (nothing to judge). */
  archiveMode: string | null;
  failing: boolean;
  lastArchivedWal: string | null;
  lastArchivedAt: string | null;
  lastFailedWal: string | null;
  lastFailedAt: string | null;
  /** Completed segments not archived yet, and how long the oldest unarchived WAL has waited (0 when everything written is archived). */
  lag: { segments: number; bytes: number; seconds: number } | null;
}

export type RunResult = 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed_out' | 'continued_as_new';

export interface RunFacts {
  workflowId: string;
  result: RunResult;
  closedAt: string;
}

export interface ScheduleFacts {
  id: string;
  paused: boolean;
  note: string | null;
}

export type ProblemCode =
  | 'repository-unreadable'
  | 'backup-absent'
  | 'backup-stale'
  | 'runbook-failed'
  | 'verify-damage'
  | 'verify-overdue'
  | 'drill-failed'
  | 'drill-overdue'
  | 'rto-missed'
  | 'wal-archive-failing'
  | 'wal-archive-lagging'
  | 'postgres-unreachable'
  | 'temporal-unreachable';

export interface Problem {
  code: ProblemCode;
  repository?: string;
  runbook?: string;
  message: string;
}

export interface TargetState {
  target: string;
  /** The target's kind (its `type` in the config). */
  type: string;
  observedAt: string;
  objectives: Objectives;
  repositories: RepositoryState[];
  /** PostgreSQL targets only. */
  archiver: ArchiverFacts | null;
  /** The newest finished run of each followed runbook, from the Temporal server. */
  lastRuns: Partial<Record<FollowedRunbook, RunFacts>>;
  /** Schedules whose id starts with lifeboat/<target>/. */
  schedules: ScheduleFacts[];
  /** Why the Temporal facts (lastRuns, schedules) are missing; null when they were read. */
  temporalError: string | null;
  problems: Problem[];
}

export interface WorkerFacts {
  taskQueue: string;
  /** Pollers the server has seen recently on the task queue (Temporal keeps them a few minutes). */
  workflowPollers: number;
  activityPollers: number;
}

export interface StateReport {
  observedAt: string;
  /** True when no target has a problem. */
  healthy: boolean;
  targets: TargetState[];
  /** Null when the Temporal server could not be asked. */
  workers: WorkerFacts | null;
}

/** Objectives only as far as config states them (see src/config/schema.ts objectives). */
export function objectivesOf(target: {
  objectives?: { rpoSeconds?: number | undefined; rtoSeconds?: number | undefined; drillEverySeconds?: number | undefined; verifyEverySeconds?: number | undefined } | undefined;
  drill: { rtoTargetSeconds?: number | undefined; rpoTargetSeconds?: number | undefined };
}): Objectives {
  return {
    rpoSeconds: target.objectives?.rpoSeconds ?? target.drill.rpoTargetSeconds ?? null,
    rtoSeconds: target.objectives?.rtoSeconds ?? target.drill.rtoTargetSeconds ?? null,
    drillEverySeconds: target.objectives?.drillEverySeconds ?? null,
    verifyEverySeconds: target.objectives?.verifyEverySeconds ?? null,
  };
}

/** How many completed WAL segments may wait for the archiver before it counts as lagging (as `lifeboat archive-status`). */
export const walLagSegmentsAllowed = 2;

const failedResults: ReadonlySet<RunResult> = new Set(['failed', 'terminated', 'timed_out']);

/** A run that ended badly: failed, timed out or terminated (a cancelled run was stopped on purpose). */
export function isFailedResult(result: RunResult): boolean {
  return failedResults.has(result);
}

export function ageSeconds(time: string, now: number): number {
  return Math.max(0, (now - Date.parse(time)) / 1000);
}

/**
 * Everything about the target that is outside its objectives, or that cannot be judged because a
 * source did not answer (monitoring must not read silence as health). Pure: `now` is given.
 */
export function assess(state: Omit<TargetState, 'problems'>, now: number): Problem[] {
  const problems: Problem[] = [];
  const { objectives } = state;
  const add = (problem: Problem): void => void problems.push(problem);

  for (const repo of state.repositories) {
    const repository = repo.repository;
    if (repo.error !== null) add({ code: 'repository-unreadable', repository, message: `repository "${repository}" could not be read: ${repo.error}` });
    if (repo.newestBackup === null) {
      if (repo.error === null) add({ code: 'backup-absent', repository, message: `repository "${repository}" holds no complete backup of "${state.target}"` });
    } else if (objectives.rpoSeconds !== null) {
      const age = ageSeconds(repo.newestBackup.snapshotAt, now);
      if (age > objectives.rpoSeconds) {
        add({ code: 'backup-stale', repository, message: `the newest backup in "${repository}" (${repo.newestBackup.id}) is ${formatDuration(age)} old; the RPO objective is ${formatDuration(objectives.rpoSeconds)}` });
      }
    }
    const verify = repo.lastVerify;
    if (verify !== null && !verify.valid) {
      const damaged = verify.damaged.map((d) => d.backupId);
      add({
        code: 'verify-damage',
        repository,
        message: `the last verify (${verify.finishedAt}) found damage in "${repository}"${damaged.length ? `: ${damaged.join(', ')}` : ''}${verify.walGaps ? `; ${verify.walGaps} WAL gaps` : ''}`,
      });
    }
    if (objectives.verifyEverySeconds !== null && repo.error === null) {
      const passed = repo.lastPassedVerify;
      const age = passed ? ageSeconds(passed.finishedAt, now) : Infinity;
      if (age > objectives.verifyEverySeconds) {
        add({
          code: 'verify-overdue',
          repository,
          message: `${passed ? `the last verify of "${repository}" that found it valid was ${formatDuration(age)} ago` : `no verify has found "${repository}" valid yet`}; the objective is every ${formatDuration(objectives.verifyEverySeconds)}`,
        });
      }
    }
  }

  // A drill's report is stored in every repository: judge the newest one any repository has.
  const drill = newestDrill(state.repositories);
  if (drill !== null && !drill.passed) {
    add({ code: 'drill-failed', runbook: 'drill', message: `the last drill (${drill.startedAt}) did not pass${drill.failure ? `: ${drill.failure.type ? `${drill.failure.type}: ` : ''}${drill.failure.message}` : ''}` });
  }
  if (drill?.rto && objectives.rtoSeconds !== null && drill.rto.seconds > objectives.rtoSeconds) {
    add({ code: 'rto-missed', runbook: 'drill', message: `the last drill measured an RTO of ${formatDuration(drill.rto.seconds)}; the objective is ${formatDuration(objectives.rtoSeconds)}` });
  }
  if (objectives.drillEverySeconds !== null && state.repositories.some((repo) => repo.error === null)) {
    const passed = newestPassedDrill(state.repositories);
    const age = passed ? ageSeconds(passed.startedAt, now) : Infinity;
    if (age > objectives.drillEverySeconds) {
      add({ code: 'drill-overdue', runbook: 'drill', message: `${passed ? `the last passing drill was ${formatDuration(age)} ago` : 'no drill has passed yet'}; the objective is every ${formatDuration(objectives.drillEverySeconds)}` });
    }
  }

  for (const [runbook, run] of Object.entries(state.lastRuns)) {
    if (run && isFailedResult(run.result)) add({ code: 'runbook-failed', runbook, message: `the last ${runbook} run (${run.workflowId}) ended ${run.result.replace('_', ' ')} at ${run.closedAt}` });
  }
  if (state.temporalError !== null) add({ code: 'temporal-unreachable', message: `the Temporal server could not be asked about runs and schedules: ${state.temporalError}` });

  const archiver = state.archiver;
  if (archiver !== null) {
    if (!archiver.reachable) {
      add({ code: 'postgres-unreachable', message: `the PostgreSQL server could not be asked about WAL archiving: ${archiver.error ?? 'no answer'}` });
    } else if (archiver.archiveMode !== 'off') {
      if (archiver.failing) add({ code: 'wal-archive-failing', message: `archive_command is failing (last failure ${archiver.lastFailedWal ?? '?'} at ${archiver.lastFailedAt ?? '?'}; see the server log)` });
      const lag = archiver.lag;
      if (lag && lag.segments > walLagSegmentsAllowed) add({ code: 'wal-archive-lagging', message: `${lag.segments} completed WAL segments are not archived yet (more than ${walLagSegmentsAllowed})` });
      else if (lag && objectives.rpoSeconds !== null && lag.seconds > objectives.rpoSeconds) {
        add({ code: 'wal-archive-lagging', message: `WAL written ${formatDuration(lag.seconds)} ago is not archived yet; the RPO objective is ${formatDuration(objectives.rpoSeconds)}` });
      }
    }
  }
  return problems;
}

export function newestDrill(repositories: RepositoryState[]): DrillFacts | null {
  return newestBy(repositories.map((repo) => repo.lastDrill), (drill) => drill.startedAt);
}

export function newestPassedDrill(repositories: RepositoryState[]): DrillFacts | null {
  return newestBy(repositories.map((repo) => repo.lastPassedDrill), (drill) => drill.startedAt);
}

function newestBy<T>(items: Array<T | null>, time: (item: T) => string): T | null {
  let newest: T | null = null;
  for (const item of items) if (item !== null && (newest === null || Date.parse(time(item)) > Date.parse(time(newest)))) newest = item;
  return newest;
}

/** 90 -> "1m 30s", 93784 -> "1d 2h 3m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never';
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)}s`;
  const units: Array<[string, number]> = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 3).join(' ');
}
