import { Context, log } from '@temporalio/activity';
import { takeBaseBackup, type BaseBackupResult } from '../../postgres/base-backup.js';
import { encryptionKeyOf } from '../payload.js';
import { startProgress } from '../../../activities/progress.js';
import { openRepositories } from '../../../activities/repositories.js';
import type { ResolvedPostgresTarget } from './index.js';

/**
 * One base backup (pg_basebackup) streamed into every repository of the target, in parts, with
 * heartbeats of the bytes read. Idempotent (takeBaseBackup): an attempt first discards whatever an
 * interrupted attempt of the same backupId left (parts, unfinished multipart uploads); a backup
 * that already has a manifest is returned as it is. The manifest is written by a later step.
 */
export async function takeBaseBackupStep(input: { target: ResolvedPostgresTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<BaseBackupResult> {
  const { target, backupId } = input;
  const context = Context.current();
  const progress = startProgress('backup', 0);
  try {
    const key = await encryptionKeyOf(target);
    const result = await takeBaseBackup({
      connection: target.connection,
      env,
      target: target.name,
      backupId,
      repositories: openRepositories(target, env),
      ...(target.minCopies !== undefined ? { minCopies: target.minCopies } : {}),
      compression: { level: target.base.compressionLevel, threads: target.compression.threads },
      ...(key ? { encryptionKey: key } : {}),
      partSizeBytes: target.base.partSizeMiB * 1024 * 1024,
      checkpoint: target.base.checkpoint,
      compressAt: target.base.compressAt,
      ...(target.base.spoolDir ? { spoolDir: target.base.spoolDir } : {}),
      attempt: context.info.attempt,
      onProgress: (p) => progress.set(p),
      signal: context.cancellationSignal,
    });
    log.info('base backup stored', { backupId, parts: result.base.parts.length, tarBytes: result.base.tar.sizeBytes, attempt: context.info.attempt });
    return result;
  } finally {
    progress.stop();
  }
}
