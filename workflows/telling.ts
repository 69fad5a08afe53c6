/**
 * What every runbook tells people when it ends, once for all of them: the audit record (in every
 * repository of the target) and the notifications (run failed, drill finished), as steps after
 * the run's outcome is decided, in a scope that cancellation does not reach. Neither can change
 * the outcome: a receiver that is down is retried with backoff within
 * notifications.deliveryTimeoutSeconds, then given up; the run's result or failure stands.
 */
import { CancellationScope, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { LifeboatActivities, ResolvedTarget } from '../activities/index.js';
import type { AuditRecord } from '../src/audit/record.js';
import type { NotificationEvent, RunReference } from '../src/notify/events.js';
import type { DrillReport } from './drill.js';
import { currentRun, failureMessage, failureType, quickSteps, startRunContext, Timeline, waitForStepToEnd, withSummaries, type RunContext } from './runbook.js';

/**
 * Histories recorded before runs told people (no record-audit or notify steps) replay as they
 * were: only runs that reach this marker take the new steps.
 */
export const tellPatch = 'lifeboat-tell-people';

/** What a run asked for, from its memo (set by whoever started it: CLI, schedule, chatops). */
export function requestedByOfRun(): Record<string, unknown> | null {
  const memo = workflowInfo().memo as { requestedBy?: unknown } | undefined;
  const requestedBy = memo?.requestedBy;
  return requestedBy && typeof requestedBy === 'object' ? (requestedBy as Record<string, unknown>) : null;
}

export function runReference(context: RunContext, target: ResolvedTarget): RunReference {
  const info = workflowInfo();
  return { runbook: context.runbook, target: target.name, workflowId: info.workflowId, runId: info.runId, requestedBy: requestedByOfRun() };
}

/** Sends an event to every channel of the target that takes it, each as a step of its own. */
export function notifyChannels(timeline: Timeline, target: ResolvedTarget, event: NotificationEvent): Array<Promise<unknown>> {
  const settings = target.notifications;
  if (!settings) return [];
  const steps = withSummaries(
    proxyActivities<LifeboatActivities>({
      startToCloseTimeout: '30 seconds',
      // The bound: retried with backoff until then, then given up (the run's result stands).
      scheduleToCloseTimeout: `${settings.deliveryTimeoutSeconds} seconds`,
      cancellationType: waitForStepToEnd,
      retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' },
    }),
  );
  return settings.channels
    .filter((channel) => channel.events.includes(event.type))
    .map((channel) =>
      timeline
        .run(`notify-${channel.name}`, () => steps.notify({ event, channel: channel.name }), (d) => `${event.type} delivered (HTTP ${d.status}, ${d.webhookId})`)
        .catch(() => undefined),
    );
}

/** The facts a result carries, whatever the runbook: the backup it made or used, sizes, a drill's verdict. */
function factsOf(result: unknown): Pick<AuditRecord, 'backupId' | 'sizes' | 'passed' | 'reportKeys'> {
  const value = (result ?? {}) as Record<string, unknown>;
  const number = (field: string) => (typeof value[field] === 'number' ? (value[field] as number) : null);
  return {
    backupId: typeof value.backupId === 'string' ? value.backupId : null,
    sizes: { sourceBytes: number('sourceBytes'), storedBytes: number('storedBytes') },
    ...(typeof value.passed === 'boolean' ? { passed: value.passed } : {}),
    ...(Array.isArray(value.reportKeys) && value.reportKeys.length ? { reportKeys: value.reportKeys as string[] } : {}),
  };
}

/** The event a finished run sends, if any: a drill's verdict, or the failure of any runbook. */
function endEvent(context: RunContext, target: ResolvedTarget, timeline: Timeline, outcome: { result?: unknown; error?: unknown }): NotificationEvent | undefined {
  const run = runReference(context, target);
  const at = new Date().toISOString();
  if (outcome.error !== undefined) {
    if (isCancellation(outcome.error)) return undefined;
    const failedStep = timeline.steps.filter((step) => step.status === 'failed').at(-1);
    return { type: 'runbook.failed', at, run, failure: { type: failureType(outcome.error) ?? null, message: failureMessage(outcome.error) }, step: failedStep?.name ?? null };
  }
  const report = outcome.result as Partial<DrillReport> | undefined;
  if (context.runbook === 'drill' && report && typeof report.passed === 'boolean') {
    const checks = report.checks ?? [];
    return {
      type: 'drill.finished',
      at,
      run,
      passed: report.passed,
      backupId: report.backupId ?? null,
      snapshotAt: report.snapshotAt ?? null,
      rto: report.rto ?? null,
      rpo: report.rpo ?? null,
      checks: { passed: checks.filter((check) => check.passed).length, total: checks.length },
      failure: report.failure ?? null,
      reportKeys: report.reportKeys ?? [],
    };
  }
  return undefined;
}

async function tellPeople(timeline: Timeline, context: RunContext, outcome: { result?: unknown; error?: unknown }): Promise<void> {
  const target = context.target;
  // A run that failed before it resolved its target (unknown target, broken config) has no
  // repositories to record it in and no channels: the caller is told by the failure itself.
  if (!target) return;
  const info = workflowInfo();
  const cancelled = outcome.error !== undefined && isCancellation(outcome.error);
  const record: AuditRecord = {
    runbook: context.runbook,
    target: target.name,
    workflowId: info.workflowId,
    runId: info.runId,
    requestedBy: requestedByOfRun(),
    startedAt: new Date(context.startedAtMs).toISOString(),
    finishedAt: new Date().toISOString(),
    result: outcome.error === undefined ? 'succeeded' : cancelled ? 'cancelled' : 'failed',
    failure: outcome.error !== undefined && !cancelled ? { type: failureType(outcome.error) ?? null, message: failureMessage(outcome.error) } : null,
    manifestSha256: null,
    approvals: context.approvals,
    ...factsOf(outcome.result),
  };
  await timeline
    .run('record-audit', () => quickSteps.recordAudit({ target, record }), (r) => `who, what and how it ended, in ${r.keys.join(', ')}`)
    .catch(() => undefined);
  const event = endEvent(context, target, timeline, outcome);
  if (event) context.pending.push(...notifyChannels(timeline, target, event));
  await Promise.all(context.pending);
  timeline.showDetails(`Finished: ${record.result}${record.passed === false ? ' (the drill did not pass)' : ''}.`);
}

/**
 * Runs a runbook's steps, then tells people how it ended (see above). The result or the failure
 * of `steps` is the run's, unchanged.
 */
export async function runRunbook<R>(runbook: string, steps: (timeline: Timeline) => Promise<R>): Promise<R> {
  const context = startRunContext(runbook);
  const timeline = new Timeline();
  let outcome: { result?: R; error?: unknown } = {};
  try {
    const result = await steps(timeline);
    // The result is the outcome as decided: its timeline ends there. The steps that follow
    // (record-audit, notify-*) are in the run's timeline query and its history.
    const decided = result as { timeline?: unknown };
    if (decided && decided.timeline === timeline.steps) decided.timeline = timeline.steps.map((step) => ({ ...step }));
    outcome = { result };
    return result;
  } catch (error) {
    outcome = { error };
    throw error;
  } finally {
    if (patched(tellPatch)) await CancellationScope.nonCancellable(() => tellPeople(timeline, context, outcome)).catch(() => undefined);
  }
}

/** Whether this run tells people (false while replaying a history recorded before it did). */
export function tellsPeople(): boolean {
  return currentRun() !== undefined && patched(tellPatch);
}

/**
 * For the verify runbook: tells the channels that take verify.damaged which backup copies were found
 * damaged (sent while the run goes on; the run awaits delivery before it ends, like every
 * notification, and the outcome does not depend on it).
 */
export function tellDamage(timeline: Timeline, damaged: Array<{ repository: string; backupId: string; problem: string }>): void {
  const context = currentRun();
  if (!context?.target || damaged.length === 0 || !tellsPeople()) return;
  context.pending.push(...notifyChannels(timeline, context.target, { type: 'verify.damaged', at: new Date().toISOString(), run: runReference(context, context.target), damaged }));
}
