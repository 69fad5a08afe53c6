import { CancellationScope, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { ResolvedTargetBase, SmokeCheckResult } from '../activities/index.js';
import type { UnionToIntersection } from '../src/kinds/contract.js';
import type { DrillRun } from './kinds/contract.js';
import type { targetRunbooks } from './kinds/index.js';
import type { Timeline} from './runbook.js';
import { failureMessage, failureType, quickSteps, type StepRecord } from './runbook.js';
import { requestedByOfRun, runRunbook } from './telling.js';
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
  /** Who asked for the drill (its memo requestedBy); absent in reports of older runs. */
  requestedBy?: Record<string, unknown> | null;
  /** When the report was stored. */
  finishedAt?: string;
  /** The versions of the tools that made the restored backup (its manifest's). */
  tools?: Record<string, string>;
  /** The point in time the copy holds: asked for, and reached. */
  pointInTime?: { requested: string; reached: string | null } | null;
  /** How the scratch copy went: removed, or not (the steps that tried). */
  cleanup?: { status: 'done' | 'failed' | 'nothing to clean'; steps: string[] };
};

/**
 * The store-report step: the JSON report (and its HTML page) in every repository, with who asked
 * and how the cleanup went. The report holds the steps up to this one.
 */
export async function storeReport(timeline: Timeline, target: ResolvedTargetBase, report: Omit<DrillReport, 'runbook'> & { runbook: string }): Promise<{ keys: string[] }> {
  const steps = timeline.steps.map((step) => ({ ...step }));
  const cleanupSteps = steps.filter((step) => /^(remove|drop)-|^cleanup$/.test(step.name));
  const stored = {
    ...report,
    requestedBy: requestedByOfRun(),
    finishedAt: new Date().toISOString(),
    cleanup: {
      status: cleanupSteps.length === 0 ? ('nothing to clean' as const) : cleanupSteps.every((step) => step.status === 'completed') ? ('done' as const) : ('failed' as const),
      steps: cleanupSteps.map((step) => step.name),
    },
    timeline: steps,
  };
  return timeline.run('store-report', () => quickSteps.writeReport({ target, runId: report.workflowId, report: stored }), (w) => [...w.keys, ...(w.pages ?? [])].join(', '));
}

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
  return runRunbook('drill', (timeline) => drillSteps(timeline, input));
}

async function drillSteps(timeline: Timeline, input: DrillInput): Promise<DrillReport> {
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
      if (backup.tools) report.tools = backup.tools;
      report.pointInTime = { requested: 'the newest backup', reached: recoverableAt === backup.snapshotAt ? `its snapshot, ${recoverableAt}` : `the last commit replayed, ${recoverableAt}` };
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
  const stored = await storeReport(timeline, target, report);
  report.reportKeys = stored.keys;
  return report;
}
