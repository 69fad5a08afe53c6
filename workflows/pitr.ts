/**
 * The pitr runbook: PostgreSQL's alone (point-in-time recovery needs base backups and archived WAL),
 * so it works with the postgres kind's steps directly instead of through the kinds' contract.
 */
import { ApplicationFailure, CancellationScope, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { LifeboatActivities, SmokeCheckResult } from '../activities/index.js';
import type { RecoveryResult, RecoveryTarget } from '../src/kinds/postgres/activities.js';
import type { ResolvedPostgresTarget } from '../src/kinds/postgres/index.js';
import { compactTimestamp } from '../src/backup-id.js';
import { acceptApproval, type PendingApproval } from './approval.js';
import { postgresOnly, recoverCopy, removeRecoveredCopy, runChecks, runDirectory, type RecoveredCopy, type WalTimeline } from './kinds/postgres/recovery.js';
import type { Timeline} from './runbook.js';
import { currentRun, failureMessage, quickSteps, waitForStepToEnd, withSummaries, type StepRecord } from './runbook.js';
import { runRunbook, tellsPeople } from './telling.js';
import { objective, storeReport } from './drill.js';
import { describeTarget } from './targets.js';

export type { RecoveryTarget };

export interface PitrInput {
  /** A postgres target whose base backups and archived WAL are in its repositories. */
  target: string;
  /**
   * Where to stop: {"kind": "latest"} (default: every archived WAL), {"kind": "time", "time": "2026-11-21T14:05:00Z"},
   * {"kind": "lsn", "lsn": "0/3000028"}, {"kind": "name", "name": "before-migration"}, {"kind": "xid", "xid": "1234"},
   * {"kind": "immediate"}; time, lsn and xid take "inclusive": false.
   */
  recoveryTarget?: RecoveryTarget;
  /** Pin a base backup (it must have stopped before the target); default: the newest one that did. */
  backupId?: string;
  /** recovery_target_timeline; default "latest". */
  timeline?: WalTimeline;
  /**
   * Replace the live cluster (recovery.cutover.dataDir) by the recovered one, after an approval
   * (`lifeboat approve <workflowId>`) within recovery.cutover.approvalTimeoutSeconds. The live data
   * directory is kept whole as a safety copy; a failed start or health check rolls back.
   */
  cutover?: boolean;
}

export interface PitrResult {
  target: string;
  backupId: string;
  /** Why that base backup. */
  choice: string;
  /** The recovery target, in words. */
  recoveryTarget: string;
  /** The recovered cluster, running and promoted: a new data directory, never the live one. */
  cluster: RecoveryResult['cluster'];
  /** Where replay stopped: the LSN, the last transaction's commit time, and PostgreSQL's own "recovery stopping" line. */
  reached: RecoveryResult['reached'];
  /** The timeline the recovered cluster now writes (a new one). */
  walTimeline: number;
  walFilesRestored: number;
  checks: SmokeCheckResult[];
  /**
   * With cutover: the recovered cluster now runs as the live one from liveDataDir (cluster above
   * describes it as it was during recovery); the previous live data directory is kept as safetyCopy.
   */
  cutover?: { liveDataDir: string; safetyCopy: string; checks: SmokeCheckResult[]; walTimeline: number };
  /** Where its report went (JSON, with its HTML page beside it, in every repository); absent in results of older runs. */
  reportKeys?: string[];
  timeline: StepRecord[];
}

/**
 * The store-report step of a recovery that succeeded: the same report as a drill's (JSON and HTML
 * in every repository), with the point in time asked for and reached, and RTO against the target's
 * drill.rtoTargetSeconds (RPO is the operator's choice of point here, not measured).
 */
async function storePitrReport(
  timeline: Timeline,
  target: ResolvedPostgresTarget,
  run: { chosen: RecoveredCopy['chosen']; recovery: RecoveryResult; checks: SmokeCheckResult[] },
): Promise<string[] | undefined> {
  const context = currentRun();
  if (!context || !tellsPeople()) return undefined;
  const info = workflowInfo();
  const reached = `${run.recovery.reached.lsn}${run.recovery.reached.lastTransactionTime ? `, last commit ${run.recovery.reached.lastTransactionTime}` : ''}`;
  const stored = await storeReport(timeline, target, {
    runbook: 'pitr',
    target: target.name,
    workflowId: info.workflowId,
    runId: info.runId,
    startedAt: new Date(context.startedAtMs).toISOString(),
    passed: run.checks.every((check) => check.passed),
    failure: null,
    backupId: run.chosen.manifest.id,
    snapshotAt: run.chosen.manifest.snapshotAt,
    rto: objective((Date.now() - context.startedAtMs) / 1000, target.drill.rtoTargetSeconds),
    rpo: null,
    checks: run.checks,
    reportKeys: [],
    tools: run.chosen.manifest.tools,
    pointInTime: { requested: run.chosen.description, reached },
    recovery: { lsn: run.recovery.reached.lsn, lastTransactionTime: run.recovery.reached.lastTransactionTime, walFilesRestored: run.recovery.walFilesRestored, walTimeline: run.recovery.timeline },
    timeline: timeline.steps,
  });
  return stored.keys;
}

/**
 * Point-in-time recovery runbook: resolve the target, choose the newest base backup that finished
 * before the target, fetch and verify it into a new data directory (recovery.dir/<target>-pitr-<run>),
 * replay archived WAL (`lifeboat wal-fetch`) to the target in a server on a free loopback port,
 * wait until it promoted, and run the smoke checks (drill.smokeChecks) against it. The result says
 * where the recovered cluster runs. A run that fails (RecoveryTargetBeforeBackup, BackupNotFound,
 * RecoveryTargetUnreachable, WalSegmentMissing, TimelineNotFound, SmokeCheckFailed, ...) or is
 * cancelled stops and removes the new cluster; the live cluster is never touched. With `cutover`,
 * the recovered cluster then replaces the live one, only after an approval (see cutOver).
 */
export async function pitr(input: PitrInput): Promise<PitrResult> {
  return runRunbook('pitr', (timeline) => pitrSteps(timeline, input));
}

async function pitrSteps(timeline: Timeline, input: PitrInput): Promise<PitrResult> {
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget({ target: input.target }), (t) => describeTarget(t, { repositories: true }));
  postgresOnly(target, 'pitr');
  const cutover = target.recovery.cutover;
  if (input.cutover && !cutover) {
    throw ApplicationFailure.nonRetryable(`target "${target.name}" has no recovery.cutover settings (the live data directory and how to start it); a cutover needs them`, 'InvalidInput');
  }
  // Accepted from now on, so an operator can approve while the recovery is still running.
  const approval = input.cutover ? acceptApproval() : undefined;
  const dataDir = runDirectory(target.recovery.dir, target.name, 'pitr');
  let socketDir: string | undefined;
  try {
    const { chosen, recovery } = await recoverCopy(timeline, target, {
      recoveryTarget: input.recoveryTarget ?? { kind: 'latest' },
      ...(input.backupId ? { backupId: input.backupId } : {}),
      ...(input.timeline !== undefined ? { walTimeline: input.timeline } : {}),
      dataDir,
    });
    socketDir = recovery.cluster.socketDir;
    const checks = await runChecks(timeline, target, recovery);
    const failed = checks.filter((check) => !check.passed);
    if (failed.length > 0) {
      throw ApplicationFailure.nonRetryable(
        `the recovered cluster failed ${failed.length} of ${checks.length} smoke checks: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`,
        'SmokeCheckFailed',
      );
    }
    const replaced = approval && cutover ? await cutOver(timeline, target, cutover, { dataDir, socketDir, approval }) : undefined;
    const reportKeys = await storePitrReport(timeline, target, { chosen, recovery, checks });
    return {
      target: target.name,
      backupId: chosen.manifest.id,
      choice: chosen.reason,
      recoveryTarget: chosen.description,
      cluster: recovery.cluster,
      reached: recovery.reached,
      walTimeline: recovery.timeline,
      walFilesRestored: recovery.walFilesRestored,
      checks,
      ...(replaced ? { cutover: replaced } : {}),
      ...(reportKeys ? { reportKeys } : {}),
      timeline: timeline.steps,
    };
  } catch (error) {
    await removeRecoveredCopy(timeline, dataDir, socketDir, failureMessage(error)).catch(() => undefined);
    throw error;
  }
}

/** Cutover steps stop and start servers (minutes at worst), without byte progress to heartbeat. */
const cutoverSteps = withSummaries(
  proxyActivities<LifeboatActivities>({
    startToCloseTimeout: '15 minutes',
    cancellationType: waitForStepToEnd,
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
  }),
);

type CutoverSettings = NonNullable<ResolvedPostgresTarget['recovery']['cutover']>;

/**
 * Replaces the live cluster by the recovered one: only after the approve Update (or fails with
 * NotApproved, leaving the live cluster alone), then stop both, keep the live data directory as a
 * safety copy, move the recovered one into place, start it and check it. A failure from the swap
 * on puts the safety copy back and starts it (compensation that also runs when cancelled).
 */
async function cutOver(
  timeline: Timeline,
  target: ResolvedPostgresTarget,
  cutover: CutoverSettings,
  run: { dataDir: string; socketDir: string | undefined; approval: PendingApproval },
): Promise<NonNullable<PitrResult['cutover']>> {
  const timeoutSeconds = cutover.approvalTimeoutSeconds;
  await run.approval.awaitAnswer(timeline, timeoutSeconds, (decision) =>
    `replacing the live cluster in ${cutover.dataDir} ${decision ? `was rejected${decision.by ? ` by ${decision.by}` : ''}` : `needs an approval, and none came within ${timeoutSeconds} s`}; ` +
      'the recovered cluster was removed and the live cluster was not touched',
    `replace the live cluster in ${cutover.dataDir} by the recovered one (the live data directory is kept as a safety copy)`,
  );
  const info = workflowInfo();
  const run8 = `${compactTimestamp(new Date(info.startTime))}-${info.runId.replace(/-/g, '').slice(-8)}`;
  const safetyDir = `${cutover.dataDir}.lifeboat-safety-${run8}`;
  const failedDir = `${cutover.dataDir}.lifeboat-failed-${run8}`;
  const socketDir = run.socketDir ?? '';
  let swapStarted = false;
  try {
    swapStarted = true;
    await timeline.run('stop-and-swap', () => cutoverSteps.cutoverSwap({ target, recoveredDataDir: run.dataDir, socketDir, safetyDir }), (s) =>
      `live cluster stopped and kept as ${s.safetyDir}; the recovered cluster is now in ${cutover.dataDir}`,
    );
    await timeline.run('start-live', () => cutoverSteps.startLive({ target }), (s) => (s.started ? 'started' : 'was already running'));
    const health = await timeline.run('health-check', () => cutoverSteps.checkLive({ target }), (h) =>
      `accepts connections, out of recovery, timeline ${h.timeline}; ${h.checks.filter((c) => c.passed).length}/${h.checks.length} smoke checks passed`,
    );
    return { liveDataDir: cutover.dataDir, safetyCopy: safetyDir, checks: health.checks, walTimeline: health.timeline };
  } catch (error) {
    if (swapStarted) {
      await CancellationScope.nonCancellable(() =>
        timeline.run('rollback', () => cutoverSteps.rollbackCutover({ target, safetyDir, failedDir }), (r) =>
          r.restored ? `the previous live cluster is back in ${cutover.dataDir} and started; the recovered one is kept in ${failedDir} (${failureMessage(error)})` : 'nothing to roll back',
        ),
      ).catch(() => undefined);
    }
    throw error;
  }
}
