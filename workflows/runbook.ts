/**
 * Shared runbook machinery: the step timeline (queryable while running, returned at the end) and
 * the activity proxies with their timeouts and retry policies. Deterministic code only: no Node
 * built-ins here (lint enforces it); the clock is the workflow's.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type { LifeboatActivities, Reported, ResolvedTarget, ResolvedTargetBase } from '../activities/index.js';
import type { AuditApproval } from '../src/audit/record.js';
import { manifestFormat } from '../src/repository/format.js';
import type { Manifest, StepRecord } from '../src/repository/manifest.js';
import type { MissingCopy } from '../src/repository/manifest-envelope.js';
import { progressSignal, timelineQuery, type StepProgress } from './queries.js';

export type { StepRecord };

export { timelineQuery };

/**
 * A cancelled run waits for the step in flight to end before it goes on: its compensation must not
 * race a swap or a download that is still writing (the SDK's default reports the cancellation at
 * once, while the step carries on). Steps that heartbeat learn of it and stop early; quick ones finish.
 */
export const waitForStepToEnd = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

/**
 * What a run keeps besides its timeline, for what it tells people at the end (telling.ts'
 * runRunbook): its target once resolved, the approvals given, notifications still being sent.
 * Module state is per workflow run (the SDK isolates each run's globals).
 */
export interface RunContext {
  runbook: string;
  startedAtMs: number;
  target?: ResolvedTarget;
  approvals: AuditApproval[];
  /** Notifications sent while the run goes on (an approval waiting); the run awaits them before it ends. */
  pending: Array<Promise<unknown>>;
  /** What the run waits for, when it waits for a person (its current details say so). */
  waitingFor?: string;
}

let run: RunContext | undefined;

export function startRunContext(runbook: string): RunContext {
  run = { runbook, startedAtMs: Date.now(), approvals: [], pending: [] };
  return run;
}

export function currentRun(): RunContext | undefined {
  return run;
}

/** The name of the step being scheduled (Timeline.run sets it while its step schedules its activity). */
let stepScheduling: string | undefined;

/** The summary the Temporal UI shows for a step's activity: the step and what it acts on. */
export function stepSummary(step: string, input: unknown): string {
  const given = (input ?? {}) as Record<string, unknown>;
  const target = given.target as { name?: unknown } | string | undefined;
  const manifest = given.manifest as { id?: unknown } | undefined;
  const event = given.event as { type?: unknown } | undefined;
  const parts = [
    typeof target === 'string' ? `target ${target}` : typeof target?.name === 'string' ? `target ${target.name}` : undefined,
    typeof given.backupId === 'string' ? `backup ${given.backupId}` : typeof manifest?.id === 'string' ? `backup ${manifest.id}` : undefined,
    ...(['destination', 'path', 'livePath', 'database', 'dataDir', 'into', 'channel'] as const).map((field) => (typeof given[field] === 'string' ? `${field} ${String(given[field])}` : undefined)),
    typeof event?.type === 'string' ? `event ${event.type}` : undefined,
  ].filter((part): part is string => part !== undefined);
  const summary = `${step}${parts.length ? `: ${parts.join(', ')}` : ''}`;
  return summary.length > 200 ? `${summary.slice(0, 197)}...` : summary;
}

/**
 * Activity proxies whose every call is scheduled with a summary (the step's name and what it acts
 * on), so the Temporal UI's timeline reads like the CLI's. Every proxy of the runbooks goes through it.
 */
export function withSummaries<A>(activities: ActivityInterfaceFor<A>): ActivityInterfaceFor<A> {
  return new Proxy(activities, {
    get(proxied, name) {
      const activity = Reflect.get(proxied, name) as ActivityInterfaceFor<A>[keyof A];
      if (typeof name !== 'string' || typeof activity !== 'function') return activity;
      const call = (...args: unknown[]) => activity.executeWithOptions({ summary: stepSummary(stepScheduling ?? name, args[0]) }, args as never);
      return Object.assign(call, { executeWithOptions: activity.executeWithOptions });
    },
  });
}

const quickRetry = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' } as const;

/** Short bookkeeping steps: config, manifests, swaps. */
export const quickSteps = withSummaries(
  proxyActivities<LifeboatActivities>({
    startToCloseTimeout: '2 minutes',
    cancellationType: waitForStepToEnd,
    retry: { ...quickRetry, maximumAttempts: 5 },
  }),
);

/**
 * Steps that wait up to a configured time by themselves (hooks, health checks): Temporal's limit
 * sits above theirs, so they end with their own clear failure (HookFailed, HealthCheckFailed)
 * instead of being cut off and run again while the first attempt goes on.
 */
export function stepsWithin(seconds: number) {
  return withSummaries(
    proxyActivities<LifeboatActivities>({
      startToCloseTimeout: `${seconds + 30} seconds`,
      cancellationType: waitForStepToEnd,
      retry: { ...quickRetry, maximumAttempts: 3 },
    }),
  );
}

/**
 * Steps that move the data. They heartbeat their byte progress; a worker that dies is noticed
 * within the heartbeat timeout and the step starts again on another worker.
 */
export const transferSteps = withSummaries(
  proxyActivities<LifeboatActivities>({
    startToCloseTimeout: '4 hours',
    cancellationType: waitForStepToEnd,
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  }),
);

/** The innermost cause's message, without Temporal's wrapping ("Activity task failed"). */
export function failureMessage(error: unknown): string {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

/** The typed failure name (TargetNotFound, ChecksumMismatch, ...) of an error, if it has one. */
export function failureType(error: unknown): string | undefined {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof ApplicationFailure ? (current.type ?? undefined) : undefined;
}

export class Timeline {
  readonly steps: StepRecord[] = [];
  private progress: StepProgress | undefined;

  constructor() {
    setHandler(timelineQuery, () => this.steps);
    setHandler(progressSignal, (progress) => {
      this.progress = progress;
      this.showDetails();
    });
  }

  /**
   * The run's current details in the Temporal UI (its header), like the CLI's progress line: the
   * steps in flight with their byte progress, or the approval the run waits for and how to give it.
   */
  showDetails(finished?: string): void {
    const context = currentRun();
    const lines = [`**${context?.runbook ?? workflowInfo().workflowType}** of target **${context?.target?.name ?? '?'}**, ${this.steps.filter((s) => s.status !== 'running').length} steps done`];
    if (finished) lines.push(finished);
    for (const step of this.steps.filter((s) => s.status === 'running')) {
      const progress = this.progress && this.progress.bytesTotal > 0 ? this.progress : undefined;
      const bytes = progress
        ? `: ${progress.phase} ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)} (${Math.floor((100 * progress.bytesDone) / progress.bytesTotal)}%)`
        : '';
      lines.push(`Step in flight: \`${step.name}\` since ${step.startedAt}${bytes}`);
    }
    if (context?.waitingFor && !finished) lines.push(context.waitingFor);
    setCurrentDetails(lines.join('\n\n'));
  }

  /** Runs one step and records {name, startedAt, endedAt, durationMs, status, attempts, detail}. */
  async run<T>(name: string, step: () => Promise<Reported<T>>, describe?: (value: T) => string): Promise<T> {
    const record: StepRecord = { name, startedAt: new Date().toISOString(), status: 'running' };
    this.steps.push(record);
    this.progress = undefined;
    this.showDetails();
    const started = Date.now();
    try {
      // The step schedules its activity now, synchronously: its summary names this step.
      stepScheduling = name;
      let scheduled: Promise<Reported<T>>;
      try {
        scheduled = step();
      } finally {
        stepScheduling = undefined;
      }
      const { value, attempt } = await scheduled;
      record.status = 'completed';
      record.attempts = attempt;
      const detail = describe?.(value);
      if (detail) record.detail = detail;
      // The run's target, for what it tells people at the end.
      const context = currentRun();
      if (name === 'resolve-target' && context) context.target = value as ResolvedTarget;
      return value;
    } catch (error) {
      record.status = 'failed';
      record.detail = failureMessage(error);
      throw error;
    } finally {
      record.endedAt = new Date().toISOString();
      record.durationMs = Date.now() - started;
      this.showDetails();
    }
  }

  skip(name: string, why: string): void {
    const now = new Date().toISOString();
    this.steps.push({ name, startedAt: now, endedAt: now, durationMs: 0, status: 'skipped', detail: why });
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** What every manifest says of the run and of the step that stored the backup, whatever its kind. */
export function manifestEnvelope<K extends Manifest['kind']>(
  kind: K,
  target: string,
  backupId: string,
  stored: Pick<Manifest, 'snapshotAt' | 'compression' | 'encryption' | 'tools'> & { repositories?: string[]; missing?: MissingCopy[] },
): Pick<Manifest, 'format' | 'id' | 'target' | 'createdAt' | 'snapshotAt' | 'compression' | 'encryption' | 'tools' | 'parent' | 'workflow' | 'copies' | 'missing'> & { kind: K } {
  const info = workflowInfo();
  return {
    // Where the step stored it (results of older runs do not say: then every repository has it).
    ...(stored.repositories !== undefined && stored.missing !== undefined ? { copies: stored.repositories, missing: stored.missing } : {}),
    format: manifestFormat,
    id: backupId,
    target,
    kind,
    createdAt: new Date().toISOString(),
    snapshotAt: stored.snapshotAt,
    compression: stored.compression,
    encryption: stored.encryption,
    tools: stored.tools,
    parent: null,
    workflow: { workflowId: info.workflowId, runId: info.runId },
  };
}

/**
 * The end of every backup: write-manifest (last, into every repository the backup was stored in:
 * the backup exists from then on; onWritten is told at once, so that a later failure does not
 * discard it), then verify-stored (every stored object read back). Returns when the backup became
 * durable, where it is (the copies that read back right), and where it is missing and why: the
 * repositories the upload dropped, those the manifest could not be written to, and those whose
 * copy did not read back right (withdrawn). Either step fails when fewer than minCopies remain.
 */
export async function writeManifestAndVerify(
  timeline: Timeline,
  target: ResolvedTargetBase,
  manifest: Manifest,
  onWritten: () => void = () => undefined,
): Promise<{ durableAt: number; repositories: string[]; missing: MissingCopy[] }> {
  const written = await timeline.run('write-manifest', () => quickSteps.writeManifest({ target, manifest }), (w) =>
    `in ${w.repositories.join(', ')}${w.missing?.length ? `; not in ${w.missing.map((m) => m.repository).join(', ')}` : ''}`,
  );
  onWritten();
  const durableAt = Date.now();
  const copies = await timeline.run(
    'verify-stored',
    // Only where the manifest went (histories recorded before minCopies: every repository).
    () => transferSteps.verifyStoredBackup({ target, manifest, ...(manifest.copies ? { repositories: written.repositories } : {}) }),
    (copies) => {
      const good = copies.filter((copy) => copy.problem === undefined);
      const repositories = new Set(good.map((copy) => copy.repository)).size;
      const bad = [...new Set(copies.filter((copy) => copy.problem !== undefined).map((copy) => copy.repository))];
      return `${good.length} stored ${good.length === 1 ? 'object' : 'objects'} read back from ${repositories} ${repositories === 1 ? 'repository' : 'repositories'}, sha256 match` +
        (bad.length ? `; not counted: ${bad.join(', ')}` : '');
    },
  );
  const failed = copies.filter((copy) => copy.problem !== undefined);
  const missing: MissingCopy[] = [
    ...(manifest.missing ?? []),
    ...(written.missing ?? []),
    ...failed.filter((copy, index) => failed.findIndex((other) => other.repository === copy.repository) === index).map((copy) => ({ repository: copy.repository, reason: copy.problem! })),
  ];
  const repositories = written.repositories.filter((name) => !failed.some((copy) => copy.repository === name));
  return { durableAt, repositories, missing };
}

/**
 * Removes what a backup that failed before its manifest stored: without a manifest the objects are
 * garbage. Best effort and not cancellable (the next attempt of a backup with this id, should
 * there be one, clears them too); the error the run reports stays the one that failed it.
 */
export async function discardUnfinishedBackup(timeline: Timeline, target: ResolvedTargetBase, backupId: string, error: unknown): Promise<void> {
  await CancellationScope.nonCancellable(() =>
    timeline.run('discard-backup', () => quickSteps.discardBackup({ target, backupId }), (d) => `${d.removed} stored objects removed (${failureMessage(error)})`),
  ).catch(() => undefined);
}
