import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors.js';
import { HashingPassThrough, sha256OfStream } from '../pipeline/hash.js';
import { walObjectKey, walRecordKey, walRecordSchema, type WalRecord } from '../postgres/wal-archive.js';
import { listWal } from '../postgres/wal-listing.js';
import { readTextIfAny } from './backend.js';
import type { Manifest } from './manifest.js';
import type { Repository } from './repository.js';
import { readSharedObjects, sharedObjectsFolder } from './shared-objects.js';

/**
 * Copying what one repository holds into another (the `copy` runbook): object by object, streamed
 * from the source backend to the destination backend, each object's sha256 checked twice (as it
 * leaves the source, against what the manifest or WAL record says; and read back from the
 * destination), and the manifest (or WAL record) written last, so the destination holds the
 * backup whole or not at all. Resumable: an object already at the destination with the right
 * size and sha256 is not copied again. Nothing at the destination is ever deleted; an object there
 * with the wrong bytes (an earlier attempt cut off, or damage) is replaced.
 */

export interface CopyProgress {
  /** Bytes of objects settled (copied or found already there). */
  bytesDone: number;
  bytesTotal: number;
  objectsCopied: number;
  objectsSkipped: number;
}

export interface CopyOptions {
  signal?: AbortSignal;
  onProgress?: (progress: CopyProgress) => void;
}

export interface ObjectToCopy {
  key: string;
  sizeBytes: number;
  sha256: string;
  /** A backup's payload (the destination's storage class applies), not a WAL file. */
  payload: boolean;
}

function abortIfAsked(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('the copy was cancelled');
}

/**
 * A failure at the destination (unreachable, refusing a write, storing bytes wrong): another
 * source would not help, so a copy does not try the next source on it; the step retries it.
 */
export class DestinationFailure extends Error {
  override readonly name = 'DestinationFailure';
}

async function atDestination<T>(destination: Repository, action: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof DestinationFailure || (error instanceof Error && error.name === 'AbortError')) throw error;
    throw new DestinationFailure(`${action} in repository "${destination.name}" (${destination.location}) failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** Whether the destination already holds this object with these bytes (read back and hashed). */
async function alreadyThere(destination: Repository, object: ObjectToCopy, storedSize: number | undefined, signal?: AbortSignal): Promise<boolean> {
  if (storedSize !== object.sizeBytes) return false;
  const read = await atDestination(destination, `reading ${object.key} back`, async () => sha256OfStream(await destination.backend.get(object.key), signal ? { signal } : {}));
  return read.sha256 === object.sha256 && read.bytes === object.sizeBytes;
}

/**
 * Copies one object: streams it from the source into the destination, hashing on the way (a
 * source that does not match is damage at the source: ChecksumMismatch naming it, so the next
 * repository holding the backup may serve it), then reads it back from the destination and hashes
 * it again (ChecksumMismatch naming the destination when the stored bytes differ).
 */
export async function copyObject(source: Repository, destination: Repository, object: ObjectToCopy, options: { signal?: AbortSignal; onBytes?: (bytes: number) => void } = {}): Promise<void> {
  const hash = new HashingPassThrough();
  const body = await source.backend.get(object.key);
  const piping = pipeline(body, hash, ...(options.signal ? [{ signal: options.signal }] : []));
  const uploading = destination.backend
    .put(object.key, hash, {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onBytes ? { onProgress: options.onBytes } : {}),
      maxSizeBytes: object.sizeBytes,
      ...(object.payload ? { payload: true } : {}),
    })
    .catch((error: unknown) => {
      hash.destroy(error instanceof Error ? error : new Error(String(error)));
      if (error instanceof Error && error.name === 'AbortError') throw error;
      throw new DestinationFailure(`storing ${object.key} in repository "${destination.name}" (${destination.location}) failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    });
  const [piped, uploaded] = await Promise.allSettled([piping, uploading]);
  // The upload's own failure first: the source stream's error is then only its echo.
  if (uploaded.status === 'rejected') throw uploaded.reason;
  if (piped.status === 'rejected') throw piped.reason;
  if (hash.sha256 !== object.sha256 || hash.bytes !== object.sizeBytes) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `${object.key} in repository "${source.name}" read as sha256 ${hash.sha256} (${hash.bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes): the copy in "${source.name}" is damaged`,
      `Copy from another repository (--from), or run \`lifeboat verify <target> --read-data\` to see what is damaged`,
    );
  }
  const back = await atDestination(destination, `reading ${object.key} back`, async () =>
    sha256OfStream(await destination.backend.get(object.key), options.signal ? { signal: options.signal } : {}),
  );
  if (back.sha256 !== object.sha256 || back.bytes !== object.sizeBytes) {
    throw new DestinationFailure(`${object.key} read back from repository "${destination.name}" as sha256 ${back.sha256} (${back.bytes} bytes) right after it was written, expected ${object.sha256}: the destination stores bytes wrong`);
  }
}

/** Copies objects not already at the destination with the right bytes, reporting progress; returns how many were copied and skipped. */
async function copyObjects(
  source: Repository,
  destination: Repository,
  objects: ObjectToCopy[],
  storedSizes: Map<string, number>,
  options: CopyOptions,
): Promise<{ copied: number; skipped: number; bytesCopied: number }> {
  const progress: CopyProgress = { bytesDone: 0, bytesTotal: objects.reduce((sum, o) => sum + o.sizeBytes, 0), objectsCopied: 0, objectsSkipped: 0 };
  let bytesCopied = 0;
  for (const object of objects) {
    abortIfAsked(options.signal);
    const before = progress.bytesDone;
    if (await alreadyThere(destination, object, storedSizes.get(object.key), options.signal)) {
      progress.objectsSkipped++;
    } else {
      await copyObject(source, destination, object, {
        ...(options.signal ? { signal: options.signal } : {}),
        onBytes: (bytes) => options.onProgress?.({ ...progress, bytesDone: before + bytes }),
      });
      progress.objectsCopied++;
      bytesCopied += object.sizeBytes;
    }
    progress.bytesDone = before + object.sizeBytes;
    options.onProgress?.({ ...progress });
  }
  return { copied: progress.objectsCopied, skipped: progress.objectsSkipped, bytesCopied };
}

export interface BackupCopied {
  backupId: string;
  kind: Manifest['kind'];
  from: string;
  objectsCopied: number;
  objectsSkipped: number;
  bytesCopied: number;
  /** The destination held the backup already (its manifest): nothing was done. */
  alreadyThere: boolean;
}

/**
 * Copies one backup from `source` into `destination`: every object its manifest lists, then the
 * manifest itself, byte for byte as the source stores it (it says where the backup run stored it;
 * the destination holding it is said by its manifest being there).
 */
export async function copyBackup(source: Repository, destination: Repository, target: string, backupId: string, options: CopyOptions = {}): Promise<BackupCopied> {
  // A manifest there that does not parse is damage: the copy writes a good one over it.
  const held = await atDestination(destination, 'reading the manifest', () =>
    destination.readManifestIfAny(target, backupId).catch((error: unknown) => {
      if (error instanceof LifeboatError && error.type === 'BackupCorrupt') return undefined;
      throw error;
    }),
  );
  const read = await source.readManifestTextIfAny(target, backupId);
  if (!read) throw new LifeboatError('BackupNotFound', `repository "${source.name}" holds no backup ${backupId} of target "${target}"`, `Run \`lifeboat backups ${target}\` to see what each repository holds`);
  const { manifest, text } = read;
  if (held) return { backupId, kind: manifest.kind, from: source.name, objectsCopied: 0, objectsSkipped: 0, bytesCopied: 0, alreadyThere: true };
  const stored = await atDestination(destination, 'listing the backup', () => destination.backend.list(`${destination.backupDir(target, backupId)}/`));
  const storedSizes = new Map(stored.map((o) => [o.key, o.sizeBytes]));
  const objects: ObjectToCopy[] = manifest.objects.map((o) => ({ key: source.objectKey(target, backupId, o.name), sizeBytes: o.sizeBytes, sha256: o.sha256, payload: true }));
  // Shared objects (blobs' packs) after the backup's own: its folder, without a manifest yet, is
  // what makes a retention sweep at the destination leave new packs alone meanwhile. A pack is
  // named by its content's sha256 and never rewritten, so one already there with its size is
  // taken as it is, as a backup takes it (verify reads it back).
  const shared = await readSharedObjects(source, manifest);
  let sharedThere = 0;
  if (shared.length) {
    const there = await atDestination(destination, 'listing the shared objects', () => destination.backend.list(`${target}/${sharedObjectsFolder}`));
    const sizes = new Map(there.map((o) => [o.key, o.sizeBytes]));
    for (const object of shared) {
      if (sizes.get(object.fullKey) === object.sizeBytes) sharedThere++;
      else objects.push({ key: object.fullKey, sizeBytes: object.sizeBytes, sha256: object.sha256, payload: true });
    }
  }
  const done = await copyObjects(source, destination, objects, storedSizes, options);
  abortIfAsked(options.signal);
  await atDestination(destination, 'writing the manifest', () => destination.writeManifest(manifest, { text }));
  return { backupId, kind: manifest.kind, from: source.name, objectsCopied: done.copied, objectsSkipped: done.skipped + sharedThere, bytesCopied: done.bytesCopied, alreadyThere: false };
}

export interface WalCopied {
  /** Files (segments, .history, .backup) copied, and already there. */
  filesCopied: number;
  filesAlreadyThere: number;
  bytesCopied: number;
  /** Per file copied, the repository it came from (counted). */
  from: Record<string, number>;
  /** Files no source could serve intact (damaged or unreadable everywhere), with why. */
  notCopied: Array<{ name: string; problem: string }>;
}

async function readWalRecord(repository: Repository, target: string, name: string): Promise<{ record: WalRecord; text: string } | undefined> {
  const text = await readTextIfAny(repository.backend, walRecordKey(target, name));
  if (text === undefined) return undefined;
  try {
    const parsed = walRecordSchema.safeParse(JSON.parse(text));
    if (parsed.success && parsed.data.name === name && parsed.data.target === target) return { record: parsed.data, text };
  } catch {
    // not JSON: below
  }
  throw new LifeboatError('ChecksumMismatch', `${walRecordKey(target, name)} in repository "${repository.name}" is not a Lifeboat WAL record of ${name}`);
}

/**
 * Copies every archived WAL file (segments and timeline .history files alike) that the sources
 * hold and the destination does not: its payload, then its record (the record is what makes a
 * WAL file archived). Each file comes from the first source (in the given order) that holds it
 * intact; a file damaged in one source is taken from the next. A file no source can serve is
 * reported, not a failure of the whole copy (the WAL verify would report the same gap).
 */
export async function copyWal(sources: Repository[], destination: Repository, target: string, options: CopyOptions = {}): Promise<WalCopied> {
  const result: WalCopied = { filesCopied: 0, filesAlreadyThere: 0, bytesCopied: 0, from: {}, notCopied: [] };
  const there = new Set((await atDestination(destination, 'listing the WAL archive', () => listWal(destination, target))).archived);
  const listings = await Promise.all(sources.map(async (source) => ({ source, archived: (await listWal(source, target)).archived })));
  const wanted = new Map<string, Repository[]>();
  for (const { source, archived } of listings) {
    for (const name of archived) {
      if (there.has(name)) continue;
      wanted.set(name, [...(wanted.get(name) ?? []), source]);
    }
  }
  result.filesAlreadyThere = there.size;
  const names = [...wanted.keys()].sort();
  const progress: CopyProgress = { bytesDone: 0, bytesTotal: 0, objectsCopied: 0, objectsSkipped: 0 };
  const destinationSizes = new Map((await atDestination(destination, 'listing the WAL archive', () => destination.backend.list(`${target}/wal/`))).map((o) => [o.key, o.sizeBytes]));
  for (const name of names) {
    abortIfAsked(options.signal);
    const problems: string[] = [];
    let copied = false;
    for (const source of wanted.get(name)!) {
      try {
        const read = await readWalRecord(source, target, name);
        if (!read) continue; // removed meanwhile (retention of the source)
        const object: ObjectToCopy = { key: walObjectKey(target, name), sizeBytes: read.record.stored.sizeBytes, sha256: read.record.stored.sha256, payload: false };
        if (!(await alreadyThere(destination, object, destinationSizes.get(object.key), options.signal))) {
          await copyObject(source, destination, object, options.signal ? { signal: options.signal } : {});
          result.bytesCopied += object.sizeBytes;
        }
        await atDestination(destination, `writing the WAL record of ${name}`, () => destination.backend.put(walRecordKey(target, name), Readable.from([Buffer.from(read.text)])));
        result.from[source.name] = (result.from[source.name] ?? 0) + 1;
        result.filesCopied++;
        copied = true;
        break;
      } catch (error) {
        if (!(error instanceof LifeboatError && error.category === 'data')) throw error;
        if (error.type === 'ObjectNotFound' && !(await readTextIfAny(source.backend, walRecordKey(target, name)))) break; // removed meanwhile
        problems.push(error.message);
      }
    }
    if (!copied && problems.length) result.notCopied.push({ name, problem: problems.join(' | ') });
    progress.objectsCopied = result.filesCopied;
    options.onProgress?.({ ...progress, bytesDone: result.bytesCopied });
  }
  return result;
}

export interface SourcePassedOver {
  repository: string;
  problem: string;
}

/**
 * Copies one backup from the first of `sources` (in the target's order) that serves it whole and
 * intact: a source that does not hold it, holds it damaged or does not answer is passed over for
 * the next one (objects already copied from it stay: they have the same bytes, checked). A
 * failure at the destination, or the run's cancellation, ends it at once.
 */
export async function copyBackupFromFirst(
  sources: Repository[],
  destination: Repository,
  target: string,
  backupId: string,
  options: CopyOptions & { onPassedOver?: (passed: SourcePassedOver) => void } = {},
): Promise<BackupCopied & { passedOver: SourcePassedOver[] }> {
  const passedOver: SourcePassedOver[] = [];
  let lastError: unknown;
  let unreachable = false;
  for (const source of sources) {
    try {
      return { ...(await copyBackup(source, destination, target, backupId, options)), passedOver };
    } catch (error) {
      if (error instanceof DestinationFailure || options.signal?.aborted) throw error;
      if (error instanceof LifeboatError && error.category !== 'data' && error.type !== 'BackupNotFound') throw error;
      lastError = error;
      if (!(error instanceof LifeboatError)) unreachable = true;
      const passed = { repository: source.name, problem: error instanceof Error ? error.message : String(error) };
      passedOver.push(passed);
      options.onPassedOver?.(passed);
    }
  }
  const listed = passedOver.map((p) => `"${p.repository}": ${p.problem}`).join(' | ');
  // A source that did not answer may answer on the step's next attempt: retried. Damage everywhere is not.
  if (unreachable || !(lastError instanceof LifeboatError)) throw new Error(`no source could serve backup ${backupId} of target "${target}": ${listed}`, { cause: lastError });
  throw new LifeboatError(lastError.type, `no source holds backup ${backupId} of target "${target}" intact: ${listed}`, 'Nothing was deleted; the destination keeps what was copied so far. Name another source with --from, or run `lifeboat verify` to see what is damaged', { cause: lastError });
}
