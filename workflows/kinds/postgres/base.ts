/**
 * Method "base" of the postgres kind's backup and restore. Backup: pg_basebackup streamed into
 * every repository; the runbook then writes the manifest (kind "postgres-base") and reads every
 * stored part back. Restore: the base backup laid out as a new data directory, verified by
 * pg_verifybackup.
 */
import { ApplicationFailure, CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import type { ResolvedPostgresTarget } from '../../../src/kinds/postgres/index.js';
import type { PostgresBaseManifest } from '../../../src/kinds/postgres/manifest.js';
import { formatBytes, quickSteps, stepsWithin, transferSteps, type Timeline } from '../../runbook.js';
import type { BackupOutcome, BackupRun, RestoreOutcome, RestoreRun } from '../contract.js';
import { locatePostgresBackup } from './locate.js';
import { describeRestoredBase, runDirectory } from './recovery.js';

/** What a base backup adds to the backup's result. */
export interface BaseBackupDetails {
  /** The WAL range the backup needs, where replay becomes consistent (stopLsn), and how many parts it has. */
  base: { startLsn: string; stopLsn: string; stopTime: string; timeline: number; parts: number };
}

/**
 * Base backup of a postgres target. The backup id is chosen once, in the workflow, so a retried
 * take-base-backup (another worker, after a crash) discards the parts of the interrupted attempt
 * and writes under the same id.
 */
export async function backupBase({ timeline, target, backupId }: BackupRun<ResolvedPostgresTarget>): Promise<BackupOutcome<BaseBackupDetails>> {
  const info = workflowInfo();
  const taken = await timeline.run('take-base-backup', () => transferSteps.takeBaseBackup({ target, backupId }), (b) =>
    `pg_basebackup of ${b.source.host}:${b.source.port} (PostgreSQL ${b.source.serverVersion}): ${formatBytes(b.base.tar.sizeBytes)} tar -> ${b.base.parts.length} ${b.base.parts.length === 1 ? 'part' : 'parts'}, ${formatBytes(b.objects.reduce((sum, o) => sum + o.sizeBytes, 0))} stored; ` +
    `WAL ${b.base.startLsn} .. ${b.base.stopLsn} on timeline ${b.base.timeline}, stopped ${b.base.stopTime}`,
  );
  const manifest: PostgresBaseManifest = { ...taken, workflow: { workflowId: info.workflowId, runId: info.runId }, timeline: [] };
  return {
    manifest,
    sourceBytes: manifest.base.tar.sizeBytes,
    details: {
      base: {
        startLsn: manifest.base.startLsn,
        stopLsn: manifest.base.stopLsn,
        stopTime: manifest.base.stopTime,
        timeline: manifest.base.timeline,
        parts: manifest.base.parts.length,
      },
    },
    afterDurable: () => checkArchive(timeline, target, manifest),
  };
}

/**
 * The archive check (src/postgres/archive-check.ts): the backup waits until the WAL segment holding
 * its stop point is archived, else the run fails with ArchiveNotWorking; the backup itself stays,
 * complete and restorable to its stop point. Skipped for a target with archive.mode "off". Runs
 * recorded before the check existed replay without it.
 */
async function checkArchive(timeline: Timeline, target: ResolvedPostgresTarget, manifest: PostgresBaseManifest): Promise<void> {
  if (!patched('base-backup-archive-check')) return;
  const archive = target.archive ?? { mode: 'on', checkTimeoutSeconds: 60 };
  if (archive.mode === 'off') {
    timeline.skip('check-archive', 'archive.mode is "off": this target does not archive WAL, the base backup stands on its own');
    return;
  }
  await timeline.run('check-archive', () => stepsWithin(archive.checkTimeoutSeconds).awaitArchivedStop({ target, manifest }), (c) =>
    `${c.segment} (stop point ${manifest.base.stopLsn}) is archived in ${c.repositories.join(', ')}${c.waitedMs >= 1000 ? ` (waited ${(c.waitedMs / 1000).toFixed(1)} s${c.switched ? ', after pg_switch_wal()' : ''})` : ''}`,
  );
}

/**
 * Restore of a base backup as a new data directory (what `pgbackrest restore` does): the newest
 * base backup (or the given one), every part checked against its sha256 before it is decoded,
 * extracted as the server user beside the destination, checked by pg_verifybackup, then renamed
 * into place. Nothing that exists is touched: the destination must be new or empty. Started as
 * it is, the copy replays the WAL inside the backup and opens as of the end of the backup (for
 * another point in time, use the pitr runbook).
 */
export async function restoreBase({ timeline, target, request: input }: RestoreRun<ResolvedPostgresTarget>): Promise<RestoreOutcome> {
  if (input.replaceExisting) {
    throw ApplicationFailure.nonRetryable('a base backup is restored into a new data directory only; to replace the live cluster use `lifeboat pitr --cutover`', 'InvalidInput');
  }
  if (input.into !== undefined && !input.into.startsWith('/')) {
    throw ApplicationFailure.nonRetryable(`"${input.into}" is not an absolute path; a base backup is restored into the data directory at an absolute path on the worker's host`, 'InvalidInput');
  }
  const located = await locatePostgresBackup(timeline, target, 'postgres-base', input.backupId);
  const dataDir = input.into ?? runDirectory(target.recovery.dir, target.name, 'restore');
  try {
    const restored = await timeline.run('restore-base-backup', () => transferSteps.restoreBaseBackup({ target, manifest: located, dataDir }), describeRestoredBase);
    return { backup: located, restoredTo: restored.dataDir, safetyCopy: null };
  } catch (error) {
    // The step removes its staging directory when it fails; this covers a run cancelled while no worker was alive.
    await CancellationScope.nonCancellable(() =>
      timeline.run('cleanup', () => quickSteps.discardRestoreStaging({ dataDir }), (r) => (r.removed ? 'removed the staging directory' : 'nothing to remove')),
    ).catch(() => undefined);
    throw error;
  }
}
