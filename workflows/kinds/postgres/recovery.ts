/**
 * Recovering a PostgreSQL base backup into a new cluster: what the pitr runbook and the drill of a
 * base backup share. Nothing of the live cluster is touched.
 */
import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { SmokeCheckResult } from '../../../activities/index.js';
import type { ChosenBase, RecoveryResult, RecoveryTarget, RestoredBaseBackup } from '../../../src/kinds/postgres/activities.js';
import type { ResolvedPostgresTarget } from '../../../src/kinds/postgres/index.js';
import { formatBytes, quickSteps, transferSteps, type Timeline } from '../../runbook.js';

/** recovery_target_timeline: "latest" (the default), "current", or a timeline's number. */
export type WalTimeline = 'latest' | 'current' | number;

/** A recovered copy, running: what the pitr and drill runbooks build. */
export interface RecoveredCopy {
  chosen: ChosenBase;
  restored: RestoredBaseBackup;
  recovery: RecoveryResult;
}

/** Narrows to a PostgreSQL target, or fails the run (bad input). */
export function postgresOnly(target: { type: string; name: string }, runbook: string): asserts target is ResolvedPostgresTarget {
  if (target.type !== 'postgres') {
    throw ApplicationFailure.nonRetryable(`target "${target.name}" is a ${target.type} target; the ${runbook} runbook needs a postgres target with base backups`, 'InvalidInput');
  }
}

/** A directory name of this run alone (a retry of a step finds the same one; two runs never share one). */
export function runDirectory(parent: string, target: string, purpose: string): string {
  const run = workflowInfo().workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${parent.replace(/\/+$/, '')}/${target}-${purpose}-${run}`;
}

/**
 * Choose the base backup, fetch and verify it into dataDir (pg_verifybackup), and recover it to
 * the target in a new server on a free port. Nothing of the live cluster is touched. On failure
 * the caller removes dataDir (removeRecoveredCopy).
 */
export async function recoverCopy(
  timeline: Timeline,
  target: ResolvedPostgresTarget,
  options: { recoveryTarget: RecoveryTarget; backupId?: string; walTimeline?: WalTimeline; dataDir: string },
): Promise<RecoveredCopy> {
  const chosen = await timeline.run(
    'choose-base-backup',
    () => quickSteps.chooseRecoveryBase({ target, recoveryTarget: options.recoveryTarget, ...(options.backupId ? { backupId: options.backupId } : {}) }),
    (c) => `to ${c.description}: ${c.reason}`,
  );
  const restored = await timeline.run('restore-base-backup', () => transferSteps.restoreBaseBackup({ target, manifest: chosen.manifest, dataDir: options.dataDir }), describeRestoredBase);
  const recovery = await timeline.run(
    'recover',
    () =>
      transferSteps.recoverToTarget({
        target,
        manifest: chosen.manifest,
        dataDir: restored.dataDir,
        recoveryTarget: chosen.recoveryTarget,
        ...(options.walTimeline !== undefined ? { timeline: options.walTimeline } : {}),
      }),
    (r) =>
      `replayed ${r.walFilesRestored} WAL files to ${r.reached.lsn}${r.reached.lastTransactionTime ? ` (last commit ${r.reached.lastTransactionTime})` : ''}; ` +
      `${r.reached.stop ? `${r.reached.stop.message}; ` : ''}promoted to timeline ${r.timeline}; listening on 127.0.0.1:${r.cluster.port}`,
  );
  return { chosen, restored, recovery };
}

/** The timeline's detail of a restore-base-backup step. */
export function describeRestoredBase(restored: RestoredBaseBackup): string {
  return restored.alreadyRestored
    ? `${restored.dataDir} already held base backup ${restored.backupId}, verified`
    : `${formatBytes(restored.storedBytes)} from ${restored.repository}, sha256 ok -> ${formatBytes(restored.tarBytes)} in ${restored.dataDir}; pg_verifybackup ok`;
}

/** Compensation: stop the recovered copy and remove its data directory (runs when the run is cancelled, too). */
export async function removeRecoveredCopy(timeline: Timeline, dataDir: string, socketDir: string | undefined, why: string): Promise<void> {
  await CancellationScope.nonCancellable(() =>
    timeline.run('remove-recovered', () => quickSteps.removeRecoveredCluster({ dataDir, ...(socketDir ? { socketDir } : {}) }), (r) =>
      r.removed ? `stopped and removed ${dataDir} (${why})` : `nothing to remove (${why})`,
    ),
  );
}

/** The target's smoke checks against connection.database of a recovered cluster. */
export async function runChecks(timeline: Timeline, target: ResolvedPostgresTarget, recovery: RecoveryResult): Promise<SmokeCheckResult[]> {
  if (target.drill.smokeChecks.length === 0) {
    timeline.skip('smoke-checks', 'no drill.smokeChecks configured');
    return [];
  }
  return timeline.run(
    'smoke-checks',
    () => quickSteps.runPostgresSmokeChecks({ target, site: { cluster: recovery.cluster, database: target.connection.database }, checks: target.drill.smokeChecks }),
    (checks) => `${checks.filter((c) => c.passed).length}/${checks.length} passed`,
  );
}
