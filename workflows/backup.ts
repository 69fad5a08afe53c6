import { uuid4 } from '@temporalio/workflow';
import { makeBackupId } from '../src/backup-id.js';
import type { UnionToIntersection } from '../src/kinds/contract.js';
import type { Manifest } from '../src/repository/manifest.js';
import type { MissingCopy } from '../src/repository/manifest-envelope.js';
import type { targetRunbooks } from './kinds/index.js';
import type { Timeline} from './runbook.js';
import { discardUnfinishedBackup, quickSteps, writeManifestAndVerify, type StepRecord } from './runbook.js';
import { runRunbook } from './telling.js';
import { describeTarget, methodOf, runbooksFor } from './targets.js';

export interface BackupInput {
  /** Name of a target in the worker's lifeboat.config.yaml. */
  target: string;
  /** One of the kind's backup methods for this run (PostgreSQL: "dump" or "base"); default: the target's own. */
  method?: string;
  /** Read every byte of the source instead of trusting change detection (kinds that back up incrementally: blobs). */
  rehash?: boolean;
}

/** What the kinds add to a backup's result (e.g. `dump`, `base`): each present for its own kind only. */
type KindBackupDetails = Partial<UnionToIntersection<Awaited<ReturnType<(typeof targetRunbooks)[number]['backup']>>['details']>>;

export type BackupResult = KindBackupDetails & {
  backupId: string;
  target: string;
  /** What kind of backup this is (the manifest's kind); absent in results of older runs (SQLite). */
  kind?: Manifest['kind'];
  snapshotAt: string;
  /** Bytes of the source as backed up (SQLite: the database file; pg_dump: the dump, uncompressed). */
  sourceBytes: number;
  storedBytes: number;
  /** The repositories that hold the backup, read back right. */
  repositories: string[];
  /**
   * The target's repositories that do not hold it, and why (unreachable, failed mid-stream, did not
   * read back right); empty when it is everywhere. Absent in results of older runs.
   */
  missing?: MissingCopy[];
  /** Seconds from the snapshot to the backup being durable (manifest written): the RPO floor. */
  secondsToDurable: number;
  timeline: StepRecord[];
};

/**
 * Backup runbook: resolve the target, let its kind stream a consistent snapshot into every
 * repository in one pass, write the manifest last, then read back what was stored and check it.
 * The backup id is chosen here, once, so a retried step writes under the same id; until its
 * manifest is written a backup does not exist, and whatever it stored is removed when it fails.
 */
export async function backup(input: BackupInput): Promise<BackupResult> {
  return runRunbook('backup', (timeline) => backupSteps(timeline, input));
}

async function backupSteps(timeline: Timeline, input: BackupInput): Promise<BackupResult> {
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget(input), (t) => describeTarget(t, { repositories: true }));
  const kind = runbooksFor(target);
  const method = methodOf(input, target, kind);
  const backupId = makeBackupId(new Date(), uuid4().replace(/-/g, ''));

  let manifestWritten = false;
  try {
    const { manifest, sourceBytes, details, afterDurable } = await kind.backup({ timeline, target, backupId, method, rehash: input.rehash === true });
    manifest.timeline = timeline.steps.map((step) => ({ ...step }));
    const { durableAt, repositories, missing } = await writeManifestAndVerify(timeline, target, manifest, () => {
      manifestWritten = true;
    });
    await afterDurable?.();
    return {
      backupId,
      target: target.name,
      kind: manifest.kind,
      snapshotAt: manifest.snapshotAt,
      sourceBytes,
      storedBytes: manifest.objects.reduce((sum, object) => sum + object.sizeBytes, 0) + (manifest.shared?.addedBytes ?? 0),
      repositories,
      missing,
      secondsToDurable: Math.max(0, (durableAt - Date.parse(manifest.snapshotAt)) / 1000),
      ...details,
      timeline: timeline.steps,
    };
  } catch (error) {
    if (!manifestWritten) await discardUnfinishedBackup(timeline, target, backupId, error);
    throw error;
  }
}
