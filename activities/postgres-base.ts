import { Context, log } from '@temporalio/activity';
import { takeBaseBackup, type BaseBackupManifest, type BaseBackupResult } from '../src/postgres/base-backup.js';
import { loadKeyFile } from '../src/pipeline/encrypt.js';
import type { PostgresBaseManifest } from '../src/repository/manifest.js';
import { openRepositories } from './repositories.js';
import type { ResolvedPostgresTarget } from './target.js';

// The repository's manifest union (src/repository/manifest.ts) and the data plane's own schema
// (src/postgres/base-backup.ts) describe the same record: this fails to compile when they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const manifestsAgree: Same<BaseBackupManifest, PostgresBaseManifest> = true;
void manifestsAgree;

/** Where a long step is, as its heartbeat says (also what the CLI's progress line shows). */
export interface StepProgress {
  phase: string;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Heartbeats the latest progress every second, whether or not it moved (a silent step looks like a
 * dead worker), until stop(). Heartbeats also carry cancellation to the step.
 */
export function heartbeatEverySecond(initial: StepProgress): { update(progress: Partial<StepProgress>): void; stop(): void } {
  const context = Context.current();
  const current = { ...initial };
  const beat = (): void => context.heartbeat({ ...current });
  beat();
  const timer = setInterval(beat, 1000);
  return {
    update(progress) {
      Object.assign(current, progress);
    },
    stop() {
      clearInterval(timer);
      beat();
    },
  };
}

/** The target's encryption key, when backups are encrypted; read here, never passed through history. */
export async function encryptionKeyOf(target: ResolvedPostgresTarget): Promise<Buffer | undefined> {
  return target.encryption ? loadKeyFile(target.encryption.keyFile) : undefined;
}

/**
 * One base backup (pg_basebackup) streamed into every repository of the target, in parts, with
 * heartbeats of the bytes read. Idempotent (takeBaseBackup): an attempt first discards whatever an
 * interrupted attempt of the same backupId left (parts, unfinished multipart uploads); a backup
 * that already has a manifest is returned as it is. The manifest is written by a later step.
 */
export async function takeBaseBackupStep(input: { target: ResolvedPostgresTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<BaseBackupResult> {
  const { target, backupId } = input;
  const context = Context.current();
  const progress = heartbeatEverySecond({ phase: 'backup', bytesDone: 0, bytesTotal: 0 });
  try {
    const key = await encryptionKeyOf(target);
    const result = await takeBaseBackup({
      connection: target.connection,
      env,
      target: target.name,
      backupId,
      repositories: openRepositories(target, env),
      compression: target.compression,
      ...(key ? { encryptionKey: key } : {}),
      partSizeBytes: target.base.partSizeMiB * 1024 * 1024,
      checkpoint: target.base.checkpoint,
      onProgress: (p) => progress.update({ phase: p.phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
      signal: context.cancellationSignal,
    });
    log.info('base backup stored', { backupId, parts: result.objects.length, tarBytes: result.base.tar.sizeBytes, attempt: context.info.attempt });
    return result;
  } finally {
    progress.stop();
  }
}
