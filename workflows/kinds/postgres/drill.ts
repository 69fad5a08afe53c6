/**
 * The postgres kind's drill (the drill runbook measures, reports and cleans up around it):
 *
 * - method "base": point-in-time recovery of the newest base backup plus every archived WAL file
 *   into a scratch cluster (a new data directory, its own port), smoke checks against it, RTO and
 *   RPO measured; the scratch cluster is always stopped and removed.
 * - method "dump": the newest dump restored into a scratch database on the target's server and
 *   compared table by table with the fingerprints in its manifest (row counts and checksums: this
 *   is how dumps are verified), smoke checks, RTO and RPO; the scratch database is always dropped.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { ResolvedPostgresTarget } from '../../../src/kinds/postgres/index.js';
import { compactTimestamp } from '../../../src/backup-id.js';
import { formatBytes, quickSteps, transferSteps } from '../../runbook.js';
import type { DrillOutcome, DrillRun } from '../contract.js';
import { recoverCopy, runChecks, runDirectory } from './recovery.js';

/** What a PostgreSQL drill adds to the drill's report. */
export interface PostgresDrillDetails {
  /** How the copy was made ("base": PITR to the end of the archive; "dump": a restore of the newest dump, compared with it). */
  method: 'base' | 'dump';
  /** method "base": where replay stopped (the newest recoverable point) and on which timeline the scratch copy promoted. */
  recovery: { lsn: string; lastTransactionTime: string | null; walFilesRestored: number; walTimeline: number } | null;
  /** method "dump": the scratch restore's comparison with the dump's fingerprints. */
  verification: { tables: number; rows: number } | null;
}

type PostgresDrill = DrillRun<ResolvedPostgresTarget, PostgresDrillDetails>;

export async function drillPostgres(run: PostgresDrill): Promise<DrillOutcome> {
  const { target } = run;
  run.report({ method: target.method, ...(target.method === 'base' ? { recovery: null } : { verification: null }) });
  return target.method === 'base' ? drillBase(run) : drillDump(run);
}

async function drillBase({ timeline, target, restoring, cleanup, report }: PostgresDrill): Promise<DrillOutcome> {
  const dataDir = runDirectory(target.drill.scratchDir ?? target.recovery.dir, target.name, 'drill');
  let socketDir: string | undefined;
  cleanup(async () => {
    await timeline.run('remove-scratch', () => quickSteps.removeRecoveredCluster({ dataDir, ...(socketDir ? { socketDir } : {}) }), (r) =>
      r.removed ? `scratch cluster stopped, ${dataDir} removed` : 'nothing to remove',
    );
  });
  const { chosen, recovery } = await recoverCopy(timeline, target, { recoveryTarget: { kind: 'latest' }, dataDir });
  socketDir = recovery.cluster.socketDir;
  report({
    recovery: {
      lsn: recovery.reached.lsn,
      lastTransactionTime: recovery.reached.lastTransactionTime,
      walFilesRestored: recovery.walFilesRestored,
      walTimeline: recovery.timeline,
    },
  });
  // The newest point a real recovery reaches: the last commit replayed (or the backup itself).
  restoring(chosen.manifest, recovery.reached.lastTransactionTime ?? chosen.manifest.snapshotAt);
  return { checks: await runChecks(timeline, target, recovery) };
}

/** PostgreSQL's identifiers have at most 63 bytes; these names are ASCII. */
function scratchDatabaseName(): string {
  const info = workflowInfo();
  const stamp = compactTimestamp(new Date(info.startTime)).replace('T', '_').replace('Z', '').toLowerCase();
  return `lifeboat_drill_${stamp}_${info.runId.replace(/-/g, '').slice(-8)}`.slice(0, 63);
}

async function drillDump({ timeline, target, restoring, cleanup, report }: PostgresDrill): Promise<DrillOutcome> {
  const located = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, kind: 'postgres-dump' }), (m) => `backup ${m.id} (${m.kind}), snapshot ${m.snapshotAt}`);
  if (located.kind !== 'postgres-dump') {
    throw ApplicationFailure.nonRetryable(`the newest backup of target "${target.name}", ${located.id}, is a ${located.kind} backup, not a pg_dump backup`, 'InvalidInput');
  }
  const manifest = located;
  restoring(manifest);
  const database = scratchDatabaseName();
  cleanup(async () => {
    await timeline.run('drop-scratch', () => quickSteps.dropRunDatabase({ target, database }), (d) => (d.dropped ? `dropped ${database}` : `${database} did not exist`));
  });
  const restored = await timeline.run('restore-and-compare', () => transferSteps.restoreDump({ target, manifest, database, verify: true }), (r) =>
    `${formatBytes(r.storedBytes)} from ${r.repository}, sha256 ok; pg_restore into ${database} ${(r.restoreMs / 1000).toFixed(1)} s; ` +
    `${r.tables} tables, ${r.rows} rows: row counts and checksums match the dump`,
  );
  report({ verification: { tables: restored.tables, rows: restored.rows } });
  if (target.drill.smokeChecks.length === 0) {
    timeline.skip('smoke-checks', 'no drill.smokeChecks configured');
    return { checks: [] };
  }
  const checks = await timeline.run(
    'smoke-checks',
    () => quickSteps.runPostgresSmokeChecks({ target, site: { database }, checks: target.drill.smokeChecks }),
    (results) => `${results.filter((c) => c.passed).length}/${results.length} passed`,
  );
  return { checks };
}
