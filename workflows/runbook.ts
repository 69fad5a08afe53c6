/**
 * Shared runbook machinery: the step timeline (queryable while running, returned at the end) and
 * the activity proxies with their timeouts and retry policies. Deterministic code only: no Node
 * built-ins here (lint enforces it); the clock is the workflow's.
 */
import { ActivityCancellationType, ActivityFailure, ApplicationFailure, CancellationScope, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { LifeboatActivities, Reported, ResolvedTargetBase } from '../activities/index.js';
import { manifestFormat } from '../src/repository/format.js';
import type { Manifest, StepRecord } from '../src/repository/manifest.js';
import { timelineQuery } from './queries.js';

export type { StepRecord };

export { timelineQuery };

/**
 * A cancelled run waits for the step in flight to end before it goes on: its compensation must not
 * race a swap or a download that is still writing (the SDK's default reports the cancellation at
 * once, while the step carries on). Steps that heartbeat learn of it and stop early; quick ones finish.
 */
export const waitForStepToEnd = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

const quickRetry = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' } as const;

/** Short bookkeeping steps: config, manifests, swaps. */
export const quickSteps = proxyActivities<LifeboatActivities>({
  startToCloseTimeout: '2 minutes',
  cancellationType: waitForStepToEnd,
  retry: { ...quickRetry, maximumAttempts: 5 },
});

/**
 * Steps that wait up to a configured time by themselves (hooks, health checks): Temporal's limit
 * sits above theirs, so they end with their own clear failure (HookFailed, HealthCheckFailed)
 * instead of being cut off and run again while the first attempt goes on.
 */
export function stepsWithin(seconds: number) {
  return proxyActivities<LifeboatActivities>({
    startToCloseTimeout: `${seconds + 30} seconds`,
    cancellationType: waitForStepToEnd,
    retry: { ...quickRetry, maximumAttempts: 3 },
  });
}

/**
 * Steps that move the data. They heartbeat their byte progress; a worker that dies is noticed
 * within the heartbeat timeout and the step starts again on another worker.
 */
export const transferSteps = proxyActivities<LifeboatActivities>({
  startToCloseTimeout: '4 hours',
  cancellationType: waitForStepToEnd,
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
});

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

  constructor() {
    setHandler(timelineQuery, () => this.steps);
  }

  /** Runs one step and records {name, startedAt, endedAt, durationMs, status, attempts, detail}. */
  async run<T>(name: string, step: () => Promise<Reported<T>>, describe?: (value: T) => string): Promise<T> {
    const record: StepRecord = { name, startedAt: new Date().toISOString(), status: 'running' };
    this.steps.push(record);
    const started = Date.now();
    try {
      const { value, attempt } = await step();
      record.status = 'completed';
      record.attempts = attempt;
      const detail = describe?.(value);
      if (detail) record.detail = detail;
      return value;
    } catch (error) {
      record.status = 'failed';
      record.detail = failureMessage(error);
      throw error;
    } finally {
      record.endedAt = new Date().toISOString();
      record.durationMs = Date.now() - started;
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
  stored: Pick<Manifest, 'snapshotAt' | 'compression' | 'encryption' | 'tools'>,
): Pick<Manifest, 'format' | 'id' | 'target' | 'createdAt' | 'snapshotAt' | 'compression' | 'encryption' | 'tools' | 'parent' | 'workflow'> & { kind: K } {
  const info = workflowInfo();
  return {
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
 * The end of every backup: write-manifest (last, into every repository: the backup exists from
 * then on; onWritten is told at once, so that a later failure does not discard it), then
 * verify-stored (every stored object read back). Returns when the backup became durable, and where.
 */
export async function writeManifestAndVerify(
  timeline: Timeline,
  target: ResolvedTargetBase,
  manifest: Manifest,
  onWritten: () => void = () => undefined,
): Promise<{ durableAt: number; repositories: string[] }> {
  const written = await timeline.run('write-manifest', () => quickSteps.writeManifest({ target, manifest }), (w) => `in ${w.repositories.join(', ')}`);
  onWritten();
  const durableAt = Date.now();
  await timeline.run('verify-stored', () => transferSteps.verifyStoredBackup({ target, manifest }), (copies) =>
    `${copies.length} stored ${copies.length === 1 ? 'object' : 'objects'} read back from ${written.repositories.length} ${written.repositories.length === 1 ? 'repository' : 'repositories'}, sha256 match`,
  );
  return { durableAt, repositories: written.repositories };
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
