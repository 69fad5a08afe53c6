/**
 * Kinds whose backup is one stream (a Redis RDB, a command's stdout) share these steps: storing
 * the stream in one pass (source -> sha256 of the source -> zstd -> encryption -> sha256 of what is
 * stored -> every repository at once, no local copy), and reading it back (into a file beside the
 * target, or into a program's stdin) only from a copy whose stored bytes and decoded bytes both
 * match the manifest. A damaged or missing copy in one repository sends the read to the next.
 */
import { log } from '@temporalio/activity';
import { chown, mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors.js';
import { compressionInfo, createCompressor, createDecompressor, createDecompressorToFile } from '../pipeline/compress.js';
import { createDecryptor, createEncryptor, decryptionKeyFor, keyId, loadKeyFile } from '../pipeline/encrypt.js';
import { HashingPassThrough, sha256OfFile, sha256OfStream } from '../pipeline/hash.js';
import { fsyncPath } from '../pipeline/local-file.js';
import type { StoredObject } from '../repository/manifest-envelope.js';
import { attemptObjectName, type Repository } from '../repository/repository.js';
import { storeInEvery } from '../repository/store.js';
import { countBytes, type ProgressReporter } from '../../activities/progress.js';
import { openRepositories } from '../../activities/repositories.js';
import { clearUnfinishedBackup } from '../../activities/repository.js';
import type { ResolvedTargetBase } from './contract.js';

/** The stored object's name: <base>.zst, or .zst.enc when encrypted. */
export function payloadObjectName(base: string, encrypted: boolean): string {
  return `${base}.zst${encrypted ? '.enc' : ''}`;
}

/** The encryption key of a target, when it encrypts (the step reads it; the manifest records its id). */
export async function encryptionKeyOf(target: ResolvedTargetBase): Promise<Buffer | undefined> {
  return target.encryption ? loadKeyFile(target.encryption.keyFile) : undefined;
}

/** What the envelope of a one-stream backup records of how it was stored. */
export async function storageFacts(target: ResolvedTargetBase, key: Buffer | undefined) {
  const compression = await compressionInfo();
  return {
    compression: { algorithm: 'zstd' as const, level: target.compression.level, implementation: compression.implementation, version: compression.version },
    // The id of the key this very step read: the file may have been rotated since resolve-target.
    encryption: key ? { algorithm: 'aes-256-gcm-chunked', keyId: keyId(key) } : null,
    zstd: compression.version,
  };
}

export interface StoredPayload {
  object: StoredObject;
  /** The source stream as it was read (before compression). */
  source: { sizeBytes: number; sha256: string };
}

interface StoreInput {
  target: ResolvedTargetBase;
  backupId: string;
  /** The step's attempt (Context.current().info.attempt). */
  attempt: number;
  /** The object's name within the attempt's folder. */
  objectName: string;
  key: Buffer | undefined;
  progress: ProgressReporter;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}

/**
 * Streams `source` through `taps` (pass-throughs that look at the source bytes: a header reader, a
 * checker) into one object in every repository: one pass, whatever the number of repositories.
 * Each attempt of the step stores under names of its own (attemptObjectName: an attempt that lost
 * its heartbeat but still writes can never overwrite what a later one stored), and first removes
 * what earlier attempts stored under this backup id.
 */
export async function storePayload(input: StoreInput & { source: Readable; taps?: Duplex[] }): Promise<StoredPayload> {
  const sourceHash = new HashingPassThrough();
  const object = await storeStages(input, () => [input.source, ...(input.taps ?? []), sourceHash, countBytes(input.progress), createCompressor(input.target.compression)]);
  return { object, source: { sizeBytes: sourceHash.bytes, sha256: sourceHash.sha256 } };
}

/**
 * Stores a stream that is zstd's output already (a compressor fed by another process: the raw
 * bytes never pass through the worker) as storePayload does: `taps` see the compressed bytes, then
 * encryption when a key is given, sha256 of what is stored, every repository at once. The source
 * is neither hashed nor counted here (the caller knows what its producer wrote).
 */
export async function storeCompressedPayload(input: StoreInput & { compressed: Readable; taps?: Duplex[] }): Promise<StoredObject> {
  return storeStages(input, () => [input.compressed, ...(input.taps ?? [])]);
}

async function storeStages(input: StoreInput, buildStages: () => Array<Readable | Duplex>): Promise<StoredObject> {
  const { target, backupId, key } = input;
  const objectName = attemptObjectName(input.attempt, input.objectName);
  const repositories = openRepositories(target, input.env);
  const cleared = await clearUnfinishedBackup(repositories, target.name, backupId, input.attempt);
  if (cleared > 0) log.info('removed what an earlier attempt stored', { backupId, objects: cleared });
  // Built once the leftovers are gone (storePayload starts its zstd here, as it always did).
  const stages = buildStages();
  if (key) stages.push(createEncryptor(key));
  const stored = await storeInEvery(repositories, stages, {
    keyOf: (repository) => repository.objectKey(target.name, backupId, objectName),
    action: (repository) => `storing ${objectName} of backup ${backupId} in repository "${repository.name}" (${repository.location})`,
    signal: input.signal,
  });
  return { name: objectName, ...stored };
}

/** A backup's one payload: the stored object, and what it decodes to. */
export interface PayloadOfBackup {
  manifest: { id: string; target: string; encryption: { keyId: string } | null };
  object: StoredObject;
  /** What the stored object decodes to; without sha256 (a Redis backup whose RDB zstd read directly), its size alone, beside zstd's own content checksum. */
  decoded: { sizeBytes: number; sha256?: string | undefined };
}

const unusable = (error: unknown) => error instanceof LifeboatError && ['ChecksumMismatch', 'BackupCorrupt', 'ObjectNotFound'].includes(error.type);

/** Tries `read` on each repository in turn until one holds a good copy; a damaged or missing copy sends it to the next. */
async function fromFirstGoodCopy<T>(target: ResolvedTargetBase, payload: PayloadOfBackup, env: NodeJS.ProcessEnv, read: (repository: Repository) => Promise<T>): Promise<T> {
  const problems: string[] = [];
  let missing = 0;
  const repositories = openRepositories(target, env);
  for (const repository of repositories) {
    const key = repository.objectKey(payload.manifest.target, payload.manifest.id, payload.object.name);
    const info = await repository.backend.head(key).catch((error: Error) => {
      problems.push(`${repository.name}: ${error.message}`);
      return undefined;
    });
    if (!info) {
      missing++;
      if (problems.length < missing) problems.push(`${repository.name}: no ${payload.object.name}`);
      continue;
    }
    try {
      return await read(repository);
    } catch (error) {
      if (!unusable(error)) throw error;
      log.warn('unusable copy, trying the next repository', { repository: repository.name, error: (error as Error).message });
      problems.push(`${repository.name}: ${(error as Error).message}`);
    }
  }
  throw new LifeboatError(
    missing === repositories.length ? 'BackupNotFound' : 'ChecksumMismatch',
    `no repository of target "${target.name}" holds a good copy of ${payload.object.name} of backup ${payload.manifest.id}: ${problems.join(' | ')}`,
    'Restore another backup. Nothing was changed',
  );
}

function storedMismatch(repository: Repository, payload: PayloadOfBackup, found: { sha256: string; bytes: number }): LifeboatError {
  return new LifeboatError(
    'ChecksumMismatch',
    `${payload.object.name} of backup ${payload.manifest.id} in repository "${repository.name}" does not match its manifest: sha256 ${found.sha256} ` +
      `(${found.bytes} bytes), expected ${payload.object.sha256} (${payload.object.sizeBytes} bytes)`,
    'The stored copy is damaged; restore another backup or copy it from another repository. Nothing was changed',
  );
}

function decodedMismatch(payload: PayloadOfBackup, found: { sha256?: string | undefined; bytes: number }): LifeboatError {
  const expected = payload.decoded.sha256 === undefined ? '' : ` and sha256 ${payload.decoded.sha256}`;
  return new LifeboatError(
    'ChecksumMismatch',
    `backup ${payload.manifest.id} decodes to ${found.bytes} bytes${found.sha256 === undefined ? '' : ` with sha256 ${found.sha256}`}, expected ${payload.decoded.sizeBytes} bytes${expected}`,
    'Restore another backup. Nothing was changed',
  );
}

function decodedMatches(payload: PayloadOfBackup, found: { sha256?: string | undefined; bytes: number }): boolean {
  return found.bytes === payload.decoded.sizeBytes && (payload.decoded.sha256 === undefined || found.sha256 === payload.decoded.sha256);
}

/**
 * Fetches a backup's payload into `destination`: decoded by zstd into <destination>.partial while
 * the stored bytes are hashed, then the decoded file hashed (when the manifest has its sha256; its
 * size otherwise); renamed into place (and flushed) only when both match the manifest. With
 * `truncateTo`, only the first that many decoded bytes are kept (a trailer stored after the
 * payload). With `owner`, the file is given to that uid/gid before the rename (a server that reads
 * it runs as another user).
 */
export async function fetchPayloadToFile(input: {
  target: ResolvedTargetBase;
  payload: PayloadOfBackup;
  destination: string;
  progress: ProgressReporter;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  owner?: { uid: number; gid: number } | undefined;
  truncateTo?: number | undefined;
}): Promise<{ repository: string; sizeBytes: number }> {
  const { target, payload, destination, progress, signal } = input;
  const key = await decryptionKeyFor(target, payload.manifest);
  await mkdir(dirname(destination), { recursive: true });
  const partial = `${destination}.partial`;
  return fromFirstGoodCopy(target, payload, input.env, async (repository) => {
    const objectKey = repository.objectKey(payload.manifest.target, payload.manifest.id, payload.object.name);
    await rm(partial, { force: true });
    try {
      const storedHash = new HashingPassThrough();
      const stages: Duplex[] = [storedHash, countBytes(progress)];
      if (key) stages.push(createDecryptor(key));
      try {
        await pipeline([await repository.backend.get(objectKey), ...stages, createDecompressorToFile(partial)], { signal });
      } catch (error) {
        // A damaged object trips the decoder before its hash can be compared: report the cause.
        if (signal.aborted) throw error;
        const found = await sha256OfStream(await repository.backend.get(objectKey));
        if (found.sha256 !== payload.object.sha256 || found.bytes !== payload.object.sizeBytes) throw storedMismatch(repository, payload, found);
        throw error;
      }
      if (storedHash.sha256 !== payload.object.sha256 || storedHash.bytes !== payload.object.sizeBytes) throw storedMismatch(repository, payload, storedHash);
      progress.setPhase('verify');
      const decoded = payload.decoded.sha256 === undefined ? { bytes: (await stat(partial)).size } : await sha256OfFile(partial);
      if (!decodedMatches(payload, decoded)) throw decodedMismatch(payload, decoded);
      if (input.truncateTo !== undefined && input.truncateTo < decoded.bytes) await truncate(partial, input.truncateTo);
      if (input.owner) await chown(partial, input.owner.uid, input.owner.gid);
      const handle = await open(partial, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(partial, destination);
      await fsyncPath(dirname(destination));
      return { repository: repository.name, sizeBytes: Math.min(decoded.bytes, input.truncateTo ?? decoded.bytes) };
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  });
}

/**
 * Streams a backup's payload into `sink` (a program's stdin): the stored copy is first read back
 * and hashed (nothing reaches the sink from a copy that does not match its manifest), then read
 * again, decrypted and decoded into the sink while the decoded bytes are hashed. The sink is ended
 * only when those match too: on any failure it is destroyed without an end of input, so the
 * program sees a cut stream, not a complete one.
 */
export async function streamPayloadInto(input: {
  target: ResolvedTargetBase;
  payload: PayloadOfBackup;
  sink: Writable;
  progress: ProgressReporter;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}): Promise<{ repository: string; sizeBytes: number }> {
  const { target, payload, sink, progress, signal } = input;
  const key = await decryptionKeyFor(target, payload.manifest);
  return fromFirstGoodCopy(target, payload, input.env, async (repository) => {
    const objectKey = repository.objectKey(payload.manifest.target, payload.manifest.id, payload.object.name);
    progress.set({ phase: 'verify-stored', bytesDone: 0, bytesTotal: payload.object.sizeBytes });
    const storedFirst = await sha256OfStream(await repository.backend.get(objectKey));
    if (storedFirst.sha256 !== payload.object.sha256 || storedFirst.bytes !== payload.object.sizeBytes) throw storedMismatch(repository, payload, storedFirst);

    progress.set({ phase: 'restore', bytesDone: 0, bytesTotal: payload.decoded.sizeBytes });
    const storedHash = new HashingPassThrough();
    const decodedHash = new HashingPassThrough();
    const stages: Duplex[] = [storedHash];
    if (key) stages.push(createDecryptor(key));
    stages.push(createDecompressor(), decodedHash, countBytes(progress));
    await pipeline([await repository.backend.get(objectKey), ...stages, withoutEnd(sink)], { signal });
    if (storedHash.sha256 !== payload.object.sha256 || storedHash.bytes !== payload.object.sizeBytes) throw storedMismatch(repository, payload, storedHash);
    if (!decodedMatches(payload, decodedHash)) throw decodedMismatch(payload, decodedHash);
    return { repository: repository.name, sizeBytes: decodedHash.bytes };
  });
}

/**
 * A writable that passes every chunk to `sink` at its pace, but does not end it when it finishes
 * (the caller ends the sink once the bytes are proven). A sink that fails or closes fails it.
 */
function withoutEnd(sink: Writable): Writable {
  const waitFor = () =>
    new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        sink.off('drain', onDrain);
        sink.off('error', onError);
        sink.off('close', onClose);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onError = (error: Error) => {
        cleanup();
        reject(error);
      };
      const onClose = () => {
        cleanup();
        reject(new Error('the program stopped reading its input'));
      };
      sink.once('drain', onDrain);
      sink.once('error', onError);
      sink.once('close', onClose);
    });
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      if (sink.destroyed || sink.writableEnded) {
        callback(new Error('the program stopped reading its input'));
        return;
      }
      if (sink.write(chunk)) callback();
      else waitFor().then(() => callback(), callback);
    },
  });
}
