/**
 * The base-backup path of the backup runbook (method "base"): pg_basebackup streamed into every
 * repository, the manifest (kind "postgres-base") last, then every stored part read back.
 * backup.ts dispatches here after resolve-target.
 */
import { uuid4, workflowInfo } from '@temporalio/workflow';
import type { ResolvedPostgresTarget } from '../activities/index.js';
import { makeBackupId } from '../src/backup-id.js';
import type { PostgresBaseManifest } from '../src/repository/manifest.js';
import type { BackupResult } from './backup.js';
import { formatBytes, quickSteps, transferSteps, type Timeline } from './runbook.js';
import { discardUnfinishedBackup } from './postgres-dump.js';

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
      `pg_basebackup of ${b.source.host}:${b.source.port} (PostgreSQL ${b.source.serverVersion}): ${formatBytes(b.base.tar.sizeBytes)} tar, ` +
      `${b.base.tar.members} files -> ${b.objects.length} ${b.objects.length === 1 ? 'part' : 'parts'}, ${formatBytes(b.objects.reduce((sum, o) => sum + o.sizeBytes, 0))} stored; ` +
      `WAL ${b.base.startLsn} .. ${b.base.stopLsn} on timeline ${b.base.timeline}, stopped ${b.base.stopTime}`,
    );
    const manifest: PostgresBaseManifest = {
      ...taken,
      workflow: { workflowId: info.workflowId, runId: info.runId },
      timeline: timeline.steps.map((step) => ({ ...step })),
    };
    await timeline.run('write-manifest', () => quickSteps.writeManifest({ target, manifest }), (w) => `in ${w.repositories.join(', ')}`);
    manifestWritten = true;
    const durableAt = Date.now();
    await timeline.run('verify-stored', () => transferSteps.verifyStoredBackup({ target, manifest }), (copies) =>
      `${copies.length} stored ${copies.length === 1 ? 'part' : 'parts'} read back, sha256 match`,
    );
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
        parts: manifest.objects.length,
      },
      timeline: timeline.steps,
    };
  } catch (error) {
    if (!manifestWritten) await discardUnfinishedBackup(timeline, target, backupId, error);
    throw error;
  }
}
