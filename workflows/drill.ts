import { ApplicationFailure, CancellationScope, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { ResolvedTarget, SmokeCheckResult } from '../activities/index.js';
import type { Timeline} from './runbook.js';
import { currentRun, failureMessage, failureType, formatBytes, quickSteps, transferSteps, type StepRecord } from './runbook.js';
import { requestedByOfRun, runRunbook } from './telling.js';
import { drillPostgres } from './postgres-drill.js';
import { describeTarget, fetchedDatabase } from './targets.js';

export interface DrillInput {
  target: string;
}

export interface ObjectiveResult {
  seconds: number;
  targetSeconds: number | null;
  met: boolean | null;
}

export interface DrillReport {
  /** "drill" (reports of older runs do not say). */
  runbook?: string;
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
  /** Drill start minus the restored backup's snapshot time: the data a real disaster would lose. */
  rpo: ObjectiveResult | null;
  checks: SmokeCheckResult[];
  reportKeys: string[];
  timeline: StepRecord[];
  /** PostgreSQL drills: how the copy was made ("base": PITR to the end of the archive; "dump": a restore of the newest dump, compared with it). */
  method?: 'base' | 'dump';
  /** method "base": where replay stopped (the newest recoverable point) and on which timeline the scratch copy promoted. */
  recovery?: { lsn: string; lastTransactionTime: string | null; walFilesRestored: number; walTimeline: number } | null;
  /** method "dump": the scratch restore's comparison with the dump's fingerprints. */
  verification?: { tables: number; rows: number } | null;
  /** Who asked for the drill (its memo requestedBy); absent in reports of older runs. */
  requestedBy?: Record<string, unknown> | null;
  /** When the report was stored. */
  finishedAt?: string;
  /** The versions of the tools that made the restored backup (its manifest's). */
  tools?: Record<string, string>;
  /** Where the copy was brought to: the backup's snapshot, or (base) the end of the WAL archive. */
  pointInTime?: { requested: string; reached: string | null } | null;
  /** How the scratch copy went: removed, or not (the steps that tried). */
  cleanup?: { status: 'done' | 'failed' | 'nothing to clean'; steps: string[] };
}

/**
 * The store-report step: the JSON report (and its HTML page) in every repository, with who asked
 * and how the cleanup went. The report holds the steps up to this one.
 */
export async function storeReport(timeline: Timeline, target: ResolvedTarget, report: DrillReport): Promise<{ keys: string[] }> {
  const steps = timeline.steps.map((step) => ({ ...step }));
  const cleanupSteps = steps.filter((step) => /^(remove|drop)-|^cleanup$/.test(step.name));
  const stored: DrillReport = {
    ...report,
    runbook: currentRun()?.runbook ?? 'drill',
    requestedBy: requestedByOfRun(),
    finishedAt: new Date().toISOString(),
    cleanup: {
      status: cleanupSteps.length === 0 ? 'nothing to clean' : cleanupSteps.every((step) => step.status === 'completed') ? 'done' : 'failed',
      steps: cleanupSteps.map((step) => step.name),
    },
    timeline: steps,
  };
  return timeline.run('store-report', () => quickSteps.writeReport({ target, runId: report.workflowId, report: stored }), (w) => [...w.keys, ...(w.pages ?? [])].join(', '));
}

export function objective(seconds: number, targetSeconds: number | undefined): ObjectiveResult {
  return { seconds, targetSeconds: targetSeconds ?? null, met: targetSeconds === undefined ? null : seconds <= targetSeconds };
}

/** A drill's report before anything has happened: not passed, nothing measured yet. */
export function newDrillReport(target: string, startedAtMs: number, timeline: Timeline): DrillReport {
  const info = workflowInfo();
  return {
    target,
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
}

/**
 * Restore drill: restore the newest backup into a scratch directory, run the smoke checks, measure
 * RTO and RPO against the targets, store a JSON report in the repositories, and always remove the
 * scratch copy (also when the drill fails or is cancelled). A failed drill completes with
 * passed=false and a report; only bad input (unknown target, broken config) fails the run itself.
 */
export async function drill(input: DrillInput): Promise<DrillReport> {
  return runRunbook('drill', (timeline) => drillSteps(timeline, input));
}

async function drillSteps(timeline: Timeline, input: DrillInput): Promise<DrillReport> {
  const info = workflowInfo();
  const startedAtMs = Date.now();
  const resolved = await timeline.run('resolve-target', () => quickSteps.resolveTarget(input), (t) => describeTarget(t));
  if (resolved.type === 'postgres') return drillPostgres(timeline, resolved, startedAtMs);
  const target = resolved;
  const report = newDrillReport(target.name, startedAtMs, timeline);

  let scratchDir: string | undefined;
  let cancelled: unknown;
  try {
    const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target }), (m) => `backup ${m.id}, snapshot ${m.snapshotAt}`);
    if (manifest.kind !== 'sqlite') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a SQLite one`, 'BackupCorrupt');
    report.backupId = manifest.id;
    report.snapshotAt = manifest.snapshotAt;
    report.tools = manifest.tools;
    report.rpo = objective(Math.max(0, (startedAtMs - Date.parse(manifest.snapshotAt)) / 1000), target.drill.rpoTargetSeconds);
    const scratch = await timeline.run('prepare-scratch', () => quickSteps.prepareScratch({ target, runName: info.workflowId.replace(/[^A-Za-z0-9_.-]/g, '_') }), (s) => s.dir);
    scratchDir = scratch.dir;
    await timeline.run('fetch-and-verify', () => transferSteps.fetchBackup({ target, manifest, destination: scratch.databasePath, verifyInCheck: true }), (f) =>
      `${formatBytes(f.sizeBytes)} from ${f.repository}, stored sha256 ok`,
    );
    await timeline.run('integrity-check', () => transferSteps.checkIntegrity({ path: scratch.databasePath, kind: target.checks.restore, sameAs: fetchedDatabase(manifest) }));
    report.checks = await timeline.run('smoke-checks', () => transferSteps.runSmokeChecks({ path: scratch.databasePath, checks: target.drill.smokeChecks }), (checks) =>
      `${checks.filter((c) => c.passed).length}/${checks.length} passed`,
    );
    const checksPassed = report.checks.every((check) => check.passed);
    report.rto = objective((Date.now() - startedAtMs) / 1000, target.drill.rtoTargetSeconds);
    report.passed = checksPassed && report.rto.met !== false && report.rpo.met !== false;
    if (!checksPassed) report.failure = { type: 'SmokeCheckFailed', message: report.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`).join('; ') };
  } catch (error) {
    if (isCancellation(error)) cancelled = error;
    report.failure = { type: failureType(error) ?? null, message: failureMessage(error) };
  } finally {
    await CancellationScope.nonCancellable(async () => {
      if (scratchDir) {
        const dir = scratchDir;
        await timeline.run('remove-scratch', () => quickSteps.removeFiles({ paths: [dir] }));
      }
    });
  }
  // A cancelled drill ends as cancelled (after its cleanup), not as a failed drill with a report.
  if (cancelled !== undefined) throw cancelled;
  const stored = await storeReport(timeline, target, report);
  report.reportKeys = stored.keys;
  return report;
}
