import { CancellationScope, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { SmokeCheckResult } from '../activities/index.js';
import type { UnionToIntersection } from '../src/kinds/contract.js';
import type { DrillRun } from './kinds/contract.js';
import type { targetRunbooks } from './kinds/index.js';
import { failureMessage, failureType, quickSteps, Timeline, type StepRecord } from './runbook.js';
import { describeTarget, runbooksFor } from './targets.js';

export interface DrillInput {
  target: string;
}

export interface ObjectiveResult {
  seconds: number;
  targetSeconds: number | null;
  met: boolean | null;
}

/** What the kinds add to a drill's report (e.g. PostgreSQL's method, recovery, verification): each present for its own kind only. */
type KindDrillDetails = Partial<UnionToIntersection<Parameters<Parameters<(typeof targetRunbooks)[number]['drill']>[0]['report']>[0]>>;

export type DrillReport = KindDrillDetails & {
  /** Which runbook wrote the report (repositories keep the newest of each as reports/latest-<runbook>.json). */
  runbook: 'drill';
  target: string;
  workflowId: string;
  runId: string;
  startedAt: string;
  passed: boolean;
  failure: { type: string | null; message: string } | null;
  backupId: string | null;
  snapshotAt: string | null;
  /** Drill start to smoke checks passing. */
  rto: ObjectiveResult | null;
  /** Drill start minus the newest point the restored copy holds (its snapshot, or later): the data a real disaster would lose. */
  rpo: ObjectiveResult | null;
  checks: SmokeCheckResult[];
  reportKeys: string[];
  timeline: StepRecord[];
};

export function objective(seconds: number, targetSeconds: number | undefined): ObjectiveResult {
  return { seconds, targetSeconds: targetSeconds ?? null, met: targetSeconds === undefined ? null : seconds <= targetSeconds };
}

/**
 * Restore drill: the target's kind restores the newest backup into a scratch copy and runs its
 * smoke checks; this runbook measures RTO and RPO against the targets, stores a JSON report in the
 * repositories, and always removes the scratch copy (also when the drill fails or is cancelled).
 * A failed drill completes with passed=false and a report; only bad input (unknown target, broken
 * config) fails the run itself, and a cancelled drill ends as cancelled, after its cleanup.
 */
export async function drill(input: DrillInput): Promise<DrillReport> {
  const timeline = new Timeline();
  const info = workflowInfo();
  const startedAtMs = Date.now();
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget(input), (t) => describeTarget(t));
  const kind = runbooksFor(target);
  const report: DrillReport = {
    runbook: 'drill',
    target: target.name,
    workflowId: info.workflowId,
    runId: info.runId,
    startedAt: new Date(startedAtMs).toISOString(),
    passed: false,
    failure: null,
    backupId: null,
    snapshotAt: null,
    rto: null,
    rpo: null,
    checks: [],
    reportKeys: [],
    timeline: timeline.steps,
  };

  const cleanups: Array<() => Promise<unknown>> = [];
  const run: DrillRun<typeof target, object> = {
    timeline,
    target,
    startedAtMs,
    restoring(backup, recoverableAt = backup.snapshotAt) {
      report.backupId = backup.id;
      report.snapshotAt = backup.snapshotAt;
      report.rpo = objective(Math.max(0, (startedAtMs - Date.parse(recoverableAt)) / 1000), target.drill.rpoTargetSeconds);
    },
    cleanup(step) {
      cleanups.push(step);
    },
    report(fields) {
      Object.assign(report, fields);
    },
  };

  let cancelled: unknown;
  try {
    report.checks = (await kind.drill(run)).checks;
    report.rto = objective((Date.now() - startedAtMs) / 1000, target.drill.rtoTargetSeconds);
    const checksPassed = report.checks.every((check) => check.passed);
    report.passed = checksPassed && report.rto.met !== false && report.rpo?.met !== false;
    if (!checksPassed) report.failure = { type: 'SmokeCheckFailed', message: report.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`).join('; ') };
    else if (!report.passed) report.failure = { type: 'ObjectiveMissed', message: `${report.rto.met === false ? 'RTO' : 'RPO'} target missed` };
  } catch (error) {
    if (isCancellation(error)) cancelled = error;
    report.failure = { type: failureType(error) ?? null, message: failureMessage(error) };
  } finally {
    // The scratch copy goes, whatever happened (also when the drill is cancelled); a failed
    // cleanup is on the timeline and does not hide the drill's outcome.
    await CancellationScope.nonCancellable(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    });
  }
  // A cancelled drill ends as cancelled (after its cleanup), not as a failed drill with a report.
  if (cancelled !== undefined) throw cancelled;
  const stored = await timeline.run('store-report', () => quickSteps.writeReport({ target, runId: info.workflowId, report: { ...report, timeline: timeline.steps } }), (w) => w.keys.join(', '));
  report.reportKeys = stored.keys;
  return report;
}
