import { Context, log } from '@temporalio/activity';
import { once } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import { LifeboatError } from '../../errors.js';
import { compressionInfo, createCompressor, createFileCompressor } from '../../pipeline/compress.js';
import { createEncryptor, keyId, loadKeyFile } from '../../pipeline/encrypt.js';
import { HashingPassThrough, sha256OfFile } from '../../pipeline/hash.js';
import type { StoredObject } from '../../repository/manifest-envelope.js';
import type { SqliteManifest as Manifest } from './manifest.js';
import { attemptObjectName } from '../../repository/repository.js';
import { storeInEvery, type MissingCopy } from '../../repository/store.js';
import { damagedSourceHint, openSnapshot, type IntegrityResult, type SqliteSnapshot } from '../../sqlite/snapshot.js';
import { countBytes, readOffsetOf, startProgress } from '../../../activities/progress.js';
import { landingFor } from '../../../activities/repositories.js';
import { clearUnfinishedBackup } from '../../../activities/repository.js';
import type { ResolvedSqliteTarget } from './index.js';

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
  /** Where the backup landed, and where it is missing and why (minCopies lets it go on without some). */
  repositories: string[];
  missing: MissingCopy[];
}

export function payloadName(encrypted: boolean): string {
  return encrypted ? 'db.sqlite.zst.enc' : 'db.sqlite.zst';
}

/**
 * One pass: snapshot -> sha256 of the source -> zstd -> (AES-256-GCM) -> sha256 of what is stored
 * -> every repository at once. No temporary copy of the database. Safe to run again: each attempt
 * stores a fresh snapshot under names of its own (removing what earlier attempts stored), and
 * nothing counts until the manifest is written.
 */
export async function snapshotAndUpload(input: SnapshotUploadInput, env: NodeJS.ProcessEnv): Promise<UploadedSnapshot> {
  const { target, backupId } = input;
  const context = Context.current();
  const landing = landingFor(target, env);
  const key = target.encryption ? await loadKeyFile(target.encryption.keyFile) : undefined;
  const attempt = context.info.attempt;
  const objectName = attemptObjectName(attempt, payloadName(key !== undefined));

  // A previous attempt killed mid-upload may have left objects, temp files or unfinished multipart
  // uploads (of its own names: this attempt never touches them, nor they this attempt's).
  // Heartbeats start before the pin: waiting for busy writers can take longer than the heartbeat timeout.
  const progress = startProgress('snapshot', 0);
  let snapshot: SqliteSnapshot;
  try {
    await clearUnfinishedBackup(landing, target.name, backupId, attempt);
    snapshot = await openSnapshot(target.path, { integrityCheck: target.checks.backup });
  } catch (error) {
    progress.stop();
    throw error;
  }
  try {
    log.info('snapshot pinned', { target: target.name, backupId, sizeBytes: snapshot.sizeBytes, snapshotAt: snapshot.snapshotAt });
    progress.set({ phase: 'upload', bytesTotal: snapshot.sizeBytes });

    let integrity: IntegrityResult;
    let source: { sha256: string; bytes: number };
    let stored: { sizeBytes: number; sha256: string };
    // Read through the descriptor the snapshot pinned, never the path: a restore may rename another
    // file onto the path meanwhile.
    const file = snapshot.fileMatchesSnapshot ? snapshot.file : undefined;
    try {
      let stages: Array<Readable | Duplex>;
      let sourceHashing: Promise<{ sha256: string; bytes: number }>;
      if (file) {
        // zstd reads the database file itself and the source is hashed beside it with one reused
        // buffer: the gigabyte never crosses a pipe or becomes garbage in this process.
        const compressor = createFileCompressor({ fd: file.fd, sizeBytes: snapshot.sizeBytes }, target.compression);
        progress.sampleWith(() => readOffsetOf(compressor.pid));
        stages = [compressor];
        sourceHashing = sha256OfFile(file, { length: snapshot.sizeBytes });
      } else {
        const sourceHash = new HashingPassThrough();
        stages = [snapshot.stream(), sourceHash, countBytes(progress), createCompressor(target.compression)];
        sourceHashing = once(sourceHash, 'end').then(() => ({ sha256: sourceHash.sha256, bytes: sourceHash.bytes }));
      }
      sourceHashing.catch(() => undefined); // awaited below; a failed pipeline must not leave it unhandled
      if (key) stages.push(createEncryptor(key));
      stored = await storeInEvery(landing, stages, {
        keyOf: (repository) => repository.objectKey(target.name, backupId, objectName),
        action: (repository) => `storing ${objectName} of backup ${backupId} in repository "${repository.name}" (${repository.location})`,
        signal: context.cancellationSignal,
        // zstd never grows data by more than a few bytes per 128 KiB block, encryption by 16 per MiB.
        maxSizeBytes: Math.ceil(snapshot.sizeBytes * 1.01) + (1 << 20),
        payload: true,
      });
      source = await sourceHashing;
      progress.update(source.bytes);
      // The check of the snapshot may outlast the upload: keep heartbeating until it is done, or a
      // long check would look like a dead worker and the whole step would start again.
      progress.setPhase('check');
      integrity = await snapshot.integrity;
    } finally {
      progress.stop();
    }

    if (!integrity.ok) {
      await Promise.all(landing.taking.map((r) => r.backend.delete(r.objectKey(target.name, backupId, objectName))));
      throw new LifeboatError(
        'IntegrityCheckFailed',
        `${integrity.kind} of ${target.path} failed at the snapshot taken ${snapshot.snapshotAt}: ${integrity.problems.slice(0, 5).join('; ')}`,
        damagedSourceHint,
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
      // The id of the key this very step read: the file may have been rotated since resolve-target.
      encryption: key ? { algorithm: 'aes-256-gcm-chunked', keyId: keyId(key) } : null,
      tools: { sqlite: snapshot.sqliteVersion, node: process.version, zstd: compression.version },
      integrity,
      ...landing.copies(),
    };
  } finally {
    await snapshot.release();
  }
}
