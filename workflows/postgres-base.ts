/**
 * The base-backup paths of the backup and restore runbooks (method "base"). Backup: pg_basebackup
 * streamed into every repository, the manifest (kind "postgres-base") last, then every stored
 * part read back. Restore: the base backup laid out as a new data directory, verified by
 * pg_verifybackup. backup.ts and restore.ts dispatch here after resolve-target.
 */
import { ApplicationFailure, CancellationScope, patched, uuid4, workflowInfo } from '@temporalio/workflow';
import type { ResolvedPostgresTarget } from '../activities/index.js';
import { makeBackupId } from '../src/backup-id.js';
import type { PostgresBaseManifest } from '../src/repository/manifest.js';
import type { BackupResult } from './backup.js';
import { describeRestoredBase, runDirectory } from './pitr.js';
import type { RestoreInput, RestoreResult } from './restore.js';
import { discardUnfinishedBackup, formatBytes, quickSteps, stepsWithin, transferSteps, writeManifestAndVerify, type Timeline } from './runbook.js';
import { locatePostgresBackup } from './targets.js';

/**
 * Base backup of a postgres target. The backup id is chosen once, in the workflow, so a retried
 * take-base-backup (another worker, after a crash) discards the parts of the interrupted attempt
 * and writes under the same id. A backup that fails before its manifest is removed.
 */
export async function backupPostgresBase(timeline: Timeline, target: ResolvedPostgresTarget): Promise<BackupResult> {
  const info = workflowInfo();
  const backupId = makeBackupId(new Date(), uuid4().replace(/-/g, ''));
  let manifestWritten = false;
  try {
    const taken = await timeline.run('take-base-backup', () => transferSteps.takeBaseBackup({ target, backupId }), (b) =>
      `pg_basebackup of ${b.source.host}:${b.source.port} (PostgreSQL ${b.source.serverVersion}): ${formatBytes(b.base.tar.sizeBytes)} tar -> ${b.base.parts.length} ${b.base.parts.length === 1 ? 'part' : 'parts'}, ${formatBytes(b.objects.reduce((sum, o) => sum + o.sizeBytes, 0))} stored; ` +
      `WAL ${b.base.startLsn} .. ${b.base.stopLsn} on timeline ${b.base.timeline}, stopped ${b.base.stopTime}`,
    );
    const manifest: PostgresBaseManifest = {
      ...taken,
      workflow: { workflowId: info.workflowId, runId: info.runId },
      timeline: timeline.steps.map((step) => ({ ...step })),
    };
    const { durableAt } = await writeManifestAndVerify(timeline, target, manifest, { one: 'object', many: 'objects' }, () => (manifestWritten = true));
    await checkArchive(timeline, target, manifest);
    const storedBytes = manifest.objects.reduce((sum, o) => sum + o.sizeBytes, 0);
    return {
      backupId,
      target: target.name,
      kind: 'postgres-base',
      snapshotAt: manifest.snapshotAt,
      sourceBytes: manifest.base.tar.sizeBytes,
      storedBytes,
      repositories: target.repositories.map((r) => r.name),
      secondsToDurable: Math.max(0, (durableAt - Date.parse(manifest.snapshotAt)) / 1000),
      base: {
        startLsn: manifest.base.startLsn,
        stopLsn: manifest.base.stopLsn,
        stopTime: manifest.base.stopTime,
        timeline: manifest.base.timeline,
        parts: manifest.base.parts.length,
      },
      timeline: timeline.steps,
    };
  } catch (error) {
    if (!manifestWritten) await discardUnfinishedBackup(timeline, target, backupId, error);
    throw error;
  }
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
export async function restorePostgresBase(timeline: Timeline, target: ResolvedPostgresTarget, input: RestoreInput): Promise<RestoreResult> {
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
    return { target: target.name, backupId: located.id, backupKind: located.kind, snapshotAt: located.snapshotAt, restoredTo: restored.dataDir, safetyCopy: null, timeline: timeline.steps };
  } catch (error) {
    // The step removes its staging directory when it fails; this covers a run cancelled while no worker was alive.
    await CancellationScope.nonCancellable(() =>
      timeline.run('cleanup', () => quickSteps.discardRestoreStaging({ dataDir }), (r) => (r.removed ? 'removed the staging directory' : 'nothing to remove')),
    ).catch(() => undefined);
    throw error;
  }
}
