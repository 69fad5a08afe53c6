import { Context, log } from '@temporalio/activity';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { open } from 'node:fs/promises';
import type { Duplex, Readable } from 'node:stream';
import { LifeboatError } from '../src/errors.js';
import { compressionInfo, createCompressor, createFileCompressor, createFileToFileCompressor, type CompressorOptions, type ZstdProcess } from '../src/pipeline/compress.js';
import { createEncryptor, loadKeyFile } from '../src/pipeline/encrypt.js';
import { HashingPassThrough, sha256OfFile, sha256OfGrowingFile } from '../src/pipeline/hash.js';
import type { Manifest, StoredObject } from '../src/repository/manifest.js';
import { abortError, isAbortError } from '../src/repository/backend.js';
import type { Repository } from '../src/repository/repository.js';
import { storeInEvery } from '../src/repository/store.js';
import { openSnapshot, type IntegrityResult } from '../src/sqlite/snapshot.js';
import { countBytes, readOffsetOf, startProgress, type ProgressReporter } from './progress.js';
import { openRepositories } from './repositories.js';
import type { ResolvedSqliteTarget } from './target.js';

export interface SnapshotUploadInput {
  target: ResolvedSqliteTarget;
  backupId: string;
}

/** What the manifest needs from the snapshot-and-upload step. */
export interface UploadedSnapshot {
  snapshotAt: string;
  source: Manifest['source'];
  object: StoredObject;
  compression: Manifest['compression'];
  encryption: Manifest['encryption'];
  tools: Record<string, string>;
  integrity: IntegrityResult;
  repositories: string[];
}

export function payloadName(encrypted: boolean): string {
  return encrypted ? 'db.sqlite.zst.enc' : 'db.sqlite.zst';
}

/**
 * One pass: snapshot -> sha256 of the source -> zstd -> (AES-256-GCM) -> sha256 of what is stored
 * -> every repository at once. No temporary copy of the database. Safe to run again: it stores
 * a fresh snapshot under the same keys, and nothing counts until the manifest is written.
 */
export async function snapshotAndUpload(input: SnapshotUploadInput, env: NodeJS.ProcessEnv): Promise<UploadedSnapshot> {
  const { target, backupId } = input;
  const context = Context.current();
  const repositories = openRepositories(target, env);
  const key = target.encryption ? await loadKeyFile(target.encryption.keyFile) : undefined;
  const objectName = payloadName(key !== undefined);

  // A previous attempt killed mid-upload may have left temp files or unfinished multipart uploads.
  await Promise.all(repositories.map((r) => r.backend.discardIncomplete(`${r.backupDir(target.name, backupId)}/`)));
  const snapshot = await openSnapshot(target.path, { integrityCheck: target.checks.backup });
  try {
    log.info('snapshot pinned', { target: target.name, backupId, sizeBytes: snapshot.sizeBytes, snapshotAt: snapshot.snapshotAt });
    const progress = startProgress('upload', snapshot.sizeBytes);

    let integrity: IntegrityResult;
    let source: { sha256: string; bytes: number };
    let stored: { sizeBytes: number; sha256: string };
    const file = snapshot.fileMatchesSnapshot ? await open(target.path, 'r') : undefined;
    try {
      const action = (repository: Repository) => `storing ${objectName} of backup ${backupId} in repository "${repository.name}" (${repository.location})`;
      const keyOf = (repository: Repository) => repository.objectKey(target.name, backupId, objectName);
      let sourceHashing: Promise<{ sha256: string; bytes: number }>;
      const local = repositories.length === 1 && repositories[0]!.backend.putWritten ? repositories[0]! : undefined;
      if (file && local && !key) {
        // One local repository, no encryption: zstd reads the database file and writes the
        // repository's new file itself, so neither passes through this process; the source and the
        // stored file are each hashed beside it with one reused buffer.
        sourceHashing = sha256OfFile(target.path, { length: snapshot.sizeBytes });
        sourceHashing.catch(() => undefined); // awaited below; a failed store must not leave it unhandled
        stored = await compressIntoFile(local, keyOf(local), {
          source: { fd: file.fd, sizeBytes: snapshot.sizeBytes },
          compression: target.compression,
          progress,
          signal: context.cancellationSignal,
          action: action(local),
        });
      } else {
        let read: Array<Readable | Duplex>;
        if (file) {
          // zstd reads the database file itself and the source is hashed beside it with one reused
          // buffer: the gigabyte never crosses a pipe or becomes garbage in this process.
          const compressor = createFileCompressor({ fd: file.fd, sizeBytes: snapshot.sizeBytes }, target.compression);
          progress.sampleWith(() => readOffsetOf(compressor.pid));
          read = [compressor];
          sourceHashing = sha256OfFile(target.path, { length: snapshot.sizeBytes });
        } else {
          const sourceHash = new HashingPassThrough();
          read = [snapshot.stream(), sourceHash, countBytes(progress), createCompressor(target.compression)];
          sourceHashing = once(sourceHash, 'end').then(() => ({ sha256: sourceHash.sha256, bytes: sourceHash.bytes }));
        }
        sourceHashing.catch(() => undefined); // awaited below; a failed pipeline must not leave it unhandled
        stored = await storeInEvery(repositories, key ? [...read, createEncryptor(key)] : read, {
          keyOf,
          action,
          signal: context.cancellationSignal,
          // zstd never grows data by more than a few bytes per 128 KiB block, encryption by 16 per MiB.
          maxSizeBytes: Math.ceil(snapshot.sizeBytes * 1.01) + (1 << 20),
        });
      }
      source = await sourceHashing;
      progress.update(source.bytes);
      // The check of the snapshot may outlast the upload: keep heartbeating until it is done, or a
      // long check would look like a dead worker and the whole step would start again.
      progress.setPhase('check');
      integrity = await snapshot.integrity;
    } finally {
      progress.stop();
      await file?.close();
    }

    if (!integrity.ok) {
      await Promise.all(repositories.map((r) => r.backend.delete(r.objectKey(target.name, backupId, objectName))));
      throw new LifeboatError(
        'IntegrityCheckFailed',
        `${integrity.kind} of ${target.path} failed at the snapshot taken ${snapshot.snapshotAt}: ${integrity.problems.slice(0, 5).join('; ')}`,
        'The live database is damaged: do not overwrite older backups; restore or repair it (sqlite3 .recover)',
      );
    }
    const compression = await compressionInfo();
    return {
      snapshotAt: snapshot.snapshotAt,
      source: {
        path: target.path,
        sizeBytes: snapshot.sizeBytes,
        sha256: source.sha256,
        pageSize: snapshot.pageSize,
        pageCount: snapshot.pageCount,
        journalMode: snapshot.journalMode,
        integrityCheck: integrity.kind,
      },
      object: { name: objectName, ...stored },
      compression: { algorithm: 'zstd', level: target.compression.level, implementation: compression.implementation, version: compression.version },
      encryption: target.encryption ? { algorithm: 'aes-256-gcm-chunked', keyId: target.encryption.keyId } : null,
      tools: { sqlite: snapshot.sqliteVersion, node: process.version, zstd: compression.version },
      integrity,
      repositories: repositories.map((r) => r.name),
    };
  } finally {
    await snapshot.release();
  }
}

/**
 * zstd reads the open database file and writes the repository's new file itself (Backend.putWritten,
 * fs), while that file is hashed as it grows: the stored bytes' sha256, as storeInEvery gives it.
 * zstd is stopped on cancellation and on any failure, before the error is thrown.
 */
async function compressIntoFile(
  repository: Repository,
  objectKey: string,
  options: { source: { fd: number; sizeBytes: number }; compression: CompressorOptions; progress: ProgressReporter; signal: AbortSignal; action: string },
): Promise<{ sizeBytes: number; sha256: string }> {
  const { source, compression, progress, signal } = options;
  let zstd: ZstdProcess | undefined;
  let stored: { sha256: string; bytes: number } | undefined;
  const stop = () => zstd?.destroy(abortError(options.action, signal));
  signal.addEventListener('abort', stop, { once: true });
  try {
    await repository.backend.putWritten!(
      objectKey,
      async (file) => {
        const compressor = createFileToFileCompressor(source, file.fd, compression);
        zstd = compressor;
        if (signal.aborted) stop();
        progress.sampleWith(() => readOffsetOf(compressor.pid));
        const compressed = finished(compressor, { readable: false });
        stored = await sha256OfGrowingFile(file.path, compressed);
        await compressed;
      },
      { signal },
    );
  } catch (error) {
    if (zstd) {
      zstd.destroy();
      await finished(zstd).catch(() => undefined);
    }
    if (error instanceof LifeboatError || isAbortError(error)) throw error;
    throw new Error(`${options.action} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    signal.removeEventListener('abort', stop);
  }
  if (!stored) throw new Error(`${options.action}: the stored file was not hashed`);
  return { sizeBytes: stored.bytes, sha256: stored.sha256 };
}
