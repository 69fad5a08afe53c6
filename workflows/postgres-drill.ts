/**
 * The drill runbook on a postgres target (drill.ts dispatches here after resolve-target):
 *
 * - method "base": point-in-time recovery of the newest base backup plus every archived WAL file
 *   into a scratch cluster (a new data directory, its own port), smoke checks against it, RTO and
 *   RPO measured; the scratch cluster is always stopped and removed.
 * - method "dump": the newest dump restored into a scratch database on the target's server and
 *   compared table by table with the fingerprints in its manifest (row counts and checksums: this
 *   is how dumps are verified), smoke checks, RTO and RPO; the scratch database is always dropped.
 *
 * A failed drill completes with passed=false and a stored report; a cancelled one cleans up and
 * ends as cancelled.
 */
import { ApplicationFailure, CancellationScope, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { ResolvedPostgresTarget } from '../activities/index.js';
import { compactTimestamp } from '../src/backup-id.js';
import { newDrillReport, objective, storeReport, type DrillReport } from './drill.js';
import { recoverCopy, runChecks, runDirectory } from './pitr.js';
import { failureMessage, failureType, formatBytes, quickSteps, transferSteps, type Timeline } from './runbook.js';

export async function drillPostgres(timeline: Timeline, target: ResolvedPostgresTarget, startedAtMs: number): Promise<DrillReport> {
  const report: DrillReport = {
    ...newDrillReport(target.name, startedAtMs, timeline),
    method: target.method,
    ...(target.method === 'base' ? { recovery: null } : { verification: null }),
  };

  let cancelled: unknown;
  const cleanups: Array<() => Promise<void>> = [];
  try {
    if (target.method === 'base') await drillBase(timeline, target, report, startedAtMs, cleanups);
    else await drillDump(timeline, target, report, startedAtMs, cleanups);
    const checksPassed = report.checks.every((check) => check.passed);
    report.passed = checksPassed && report.rto?.met !== false && report.rpo?.met !== false;
    if (!checksPassed) report.failure = { type: 'SmokeCheckFailed', message: report.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`).join('; ') };
    else if (!report.passed) report.failure = { type: 'ObjectiveMissed', message: `${report.rto?.met === false ? 'RTO' : 'RPO'} target missed` };
  } catch (error) {
    if (isCancellation(error)) cancelled = error;
    report.failure = { type: failureType(error) ?? null, message: failureMessage(error) };
  } finally {
    // The scratch copy goes, whatever happened (also when the drill is cancelled).
    await CancellationScope.nonCancellable(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    });
  }
  if (cancelled !== undefined) throw cancelled;
  const stored = await storeReport(timeline, target, report);
  report.reportKeys = stored.keys;
  return report;
}

async function drillBase(timeline: Timeline, target: ResolvedPostgresTarget, report: DrillReport, startedAtMs: number, cleanups: Array<() => Promise<void>>): Promise<void> {
  const dataDir = runDirectory(target.drill.scratchDir ?? target.recovery.dir, target.name, 'drill');
  let socketDir: string | undefined;
  cleanups.push(async () => {
    await timeline.run('remove-scratch', () => quickSteps.removeRecoveredCluster({ dataDir, ...(socketDir ? { socketDir } : {}) }), (r) =>
      r.removed ? `scratch cluster stopped, ${dataDir} removed` : 'nothing to remove',
    );
  });
  const { chosen, recovery } = await recoverCopy(timeline, target, { recoveryTarget: { kind: 'latest' }, dataDir });
  socketDir = recovery.cluster.socketDir;
  report.backupId = chosen.manifest.id;
  report.snapshotAt = chosen.manifest.snapshotAt;
  report.tools = chosen.manifest.tools;
  report.pointInTime = { requested: 'latest: every archived WAL file', reached: recovery.reached.lastTransactionTime ? `${recovery.reached.lsn}, last commit ${recovery.reached.lastTransactionTime}` : recovery.reached.lsn };
  report.recovery = {
    lsn: recovery.reached.lsn,
    lastTransactionTime: recovery.reached.lastTransactionTime,
    walFilesRestored: recovery.walFilesRestored,
    walTimeline: recovery.timeline,
  };
  // The newest point a real recovery reaches: the last commit replayed (or the backup itself).
  const recoverableAt = recovery.reached.lastTransactionTime ?? chosen.manifest.snapshotAt;
  report.rpo = objective(Math.max(0, (startedAtMs - Date.parse(recoverableAt)) / 1000), target.drill.rpoTargetSeconds);
  report.checks = await runChecks(timeline, target, recovery);
  report.rto = objective((Date.now() - startedAtMs) / 1000, target.drill.rtoTargetSeconds);
}

/** PostgreSQL's identifiers have at most 63 bytes; these names are ASCII. */
function scratchDatabaseName(): string {
  const info = workflowInfo();
  const stamp = compactTimestamp(new Date(info.startTime)).replace('T', '_').replace('Z', '').toLowerCase();
  return `lifeboat_drill_${stamp}_${info.runId.replace(/-/g, '').slice(-8)}`.slice(0, 63);
}

async function drillDump(timeline: Timeline, target: ResolvedPostgresTarget, report: DrillReport, startedAtMs: number, cleanups: Array<() => Promise<void>>): Promise<void> {
  const located = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, kind: 'postgres-dump' }), (m) => `backup ${m.id} (${m.kind}), snapshot ${m.snapshotAt}`);
  if (located.kind !== 'postgres-dump') {
    throw ApplicationFailure.nonRetryable(`the newest backup of target "${target.name}", ${located.id}, is a ${located.kind} backup, not a pg_dump backup`, 'InvalidInput');
  }
  const manifest = located;
  report.backupId = manifest.id;
  report.snapshotAt = manifest.snapshotAt;
  report.tools = manifest.tools;
  report.rpo = objective(Math.max(0, (startedAtMs - Date.parse(manifest.snapshotAt)) / 1000), target.drill.rpoTargetSeconds);
  const database = scratchDatabaseName();
  cleanups.push(async () => {
    await timeline.run('drop-scratch', () => quickSteps.dropRunDatabase({ target, database }), (d) => (d.dropped ? `dropped ${database}` : `${database} did not exist`));
  });
  const restored = await timeline.run('restore-and-compare', () => transferSteps.restoreDump({ target, manifest, database, verify: true }), (r) =>
    `${formatBytes(r.storedBytes)} from ${r.repository}, sha256 ok; pg_restore into ${database} ${(r.restoreMs / 1000).toFixed(1)} s; ` +
    `${r.tables} tables, ${r.rows} rows: row counts and checksums match the dump`,
  );
  report.verification = { tables: restored.tables, rows: restored.rows };
  if (target.drill.smokeChecks.length === 0) {
    timeline.skip('smoke-checks', 'no drill.smokeChecks configured');
  } else {
    report.checks = await timeline.run(
      'smoke-checks',
      () => quickSteps.runPostgresSmokeChecks({ target, site: { database }, checks: target.drill.smokeChecks }),
      (checks) => `${checks.filter((c) => c.passed).length}/${checks.length} passed`,
    );
  }
  report.rto = objective((Date.now() - startedAtMs) / 1000, target.drill.rtoTargetSeconds);
}
