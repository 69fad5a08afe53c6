import { ApplicationFailure, uuid4 } from '@temporalio/workflow';
import type { Manifest, SqliteManifest } from '../src/repository/manifest.js';
import { makeBackupId } from '../src/backup-id.js';
import { backupPostgresBase } from './postgres-base.js';
import { backupPostgresDump } from './postgres-dump.js';
import type { Timeline} from './runbook.js';
import { discardUnfinishedBackup, formatBytes, manifestEnvelope, quickSteps, transferSteps, writeManifestAndVerify, type StepRecord } from './runbook.js';
import { runRunbook } from './telling.js';
import { describeTarget } from './targets.js';

export interface BackupInput {
  /** Name of a target in the worker's lifeboat.config.yaml. */
  target: string;
  /** PostgreSQL targets: "dump" (pg_dump) or "base" (pg_basebackup) for this run; default: the target's `method`. */
  method?: 'dump' | 'base';
}

export interface BackupResult {
  backupId: string;
  target: string;
  /** What kind of backup this is (the manifest's kind); absent in results of older runs (SQLite). */
  kind?: Manifest['kind'];
  snapshotAt: string;
  /** Bytes of the source as backed up (SQLite: the database file; pg_dump: the dump, uncompressed). */
  sourceBytes: number;
  storedBytes: number;
  repositories: string[];
  /** Seconds from the snapshot to the backup being durable (manifest written): the RPO floor. */
  secondsToDurable: number;
  /** pg_dump backups: the format, what it holds, and whether a scratch restore verified it. */
  dump?: { format: 'directory' | 'custom'; tables: number; rows: number; verified: boolean };
  /** Base backups: the WAL range the backup needs, where replay becomes consistent (stopLsn), and how many parts it has. */
  base?: { startLsn: string; stopLsn: string; stopTime: string; timeline: number; parts: number };
  timeline: StepRecord[];
}

/**
 * Backup runbook: resolve the target, stream a consistent snapshot into every repository in one
 * pass, write the manifest last, then read back what was stored and check it.
 */
export async function backup(input: BackupInput): Promise<BackupResult> {
  return runRunbook('backup', (timeline) => backupSteps(timeline, input));
}

async function backupSteps(timeline: Timeline, input: BackupInput): Promise<BackupResult> {
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget(input), (t) => describeTarget(t, { repositories: true }));
  if (input.method !== undefined && input.method !== 'dump' && input.method !== 'base') {
    throw ApplicationFailure.nonRetryable(`"method" is "${String(input.method)}"; a backup's method is "dump" or "base" (PostgreSQL targets only)`, 'InvalidInput');
  }
  if (target.type === 'postgres') {
    const method = input.method ?? target.method;
    return method === 'base' ? backupPostgresBase(timeline, target) : backupPostgresDump(timeline, target);
  }
  if (input.method !== undefined) {
    throw ApplicationFailure.nonRetryable(`target "${target.name}" is a SQLite target; "method" applies to PostgreSQL targets only`, 'InvalidInput');
  }
  const backupId = makeBackupId(new Date(), uuid4().replace(/-/g, ''));

  // Until its manifest is written a backup does not exist, and whatever it stored is removed when it fails.
  let manifestWritten = false;
  try {
    const uploaded = await timeline.run('snapshot-and-upload', () => transferSteps.snapshotAndUpload({ target, backupId }), (u) =>
      `${formatBytes((u.source as SqliteManifest['source']).sizeBytes)} snapshot at ${u.snapshotAt} -> ${formatBytes(u.object.sizeBytes)} stored; ${u.integrity.kind} ok`,
    );

    const manifest: SqliteManifest = {
      ...manifestEnvelope('sqlite', target.name, backupId, uploaded),
      // The SQLite step reports a SQLite source (its type names any manifest's source).
      source: uploaded.source as SqliteManifest['source'],
      objects: [uploaded.object],
      timeline: timeline.steps.map((step) => ({ ...step })),
    };
    const { durableAt } = await writeManifestAndVerify(timeline, target, manifest, { one: 'copy', many: 'copies' }, () => {
      manifestWritten = true;
    });

    return {
      backupId,
      target: target.name,
      snapshotAt: uploaded.snapshotAt,
      sourceBytes: manifest.source.sizeBytes,
      storedBytes: uploaded.object.sizeBytes,
      repositories: uploaded.repositories,
      secondsToDurable: Math.max(0, (durableAt - Date.parse(uploaded.snapshotAt)) / 1000),
      timeline: timeline.steps,
    };
  } catch (error) {
    if (!manifestWritten) await discardUnfinishedBackup(timeline, target, backupId, error);
    throw error;
  }
}
