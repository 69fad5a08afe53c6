import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { LifeboatError } from '../errors.js';

/**
 * The one small interface every storage backend implements (local disk, S3, ...).
 * Everything above it (the repository layer, activities) never knows which backend it talks to.
 *
 * Keys are '/'-separated relative paths such as "demo/backups/<id>/manifest.json" (see
 * assertValidKey for the exact rules, which are the same for every backend so that a repository
 * can be copied from one backend to another).
 */
export interface ObjectInfo {
  key: string;
  sizeBytes: number;
}

export interface FolderListing {
  objects: ObjectInfo[];
  /** Names of the sub-folders (no "/"), e.g. the backup ids under "<target>/backups/". */
  folders: string[];
}

export interface PutOptions {
  /** Called with the cumulative number of bytes accepted by the backend (never decreasing). */
  onProgress?: (bytesDone: number) => void;
  /**
   * Cancels the upload: put rejects with an error named 'AbortError', the body stream is
   * destroyed (as stream.pipeline does) and nothing is left behind (no object, no temp file, no
   * pending multipart upload). The abort is honoured until the backend has read the whole body;
   * after that it may be too late (fs still checks once before its rename, S3 lets its last
   * requests finish), and then put resolves normally and the object exists.
   */
  signal?: AbortSignal;
  /**
   * An upper bound of the body's size when one is known (e.g. the uncompressed source): S3 grows
   * its part size so that even this many bytes fit in its 10,000 parts.
   */
  maxSizeBytes?: number;
  /**
   * A payload object: a backup's data, read back rarely (restore, verify, copy). Backends with
   * storage classes store it in the repository's class for payloads (S3 `storageClass`); every
   * other object (manifests, WAL, reports, leases, markers) stays in the default class, because
   * it is small and read often, and cheaper classes charge by the request and a minimum size.
   */
  payload?: boolean;
  /**
   * The caller puts another object into the same folder right after this one, and counts this one
   * stored only once that next put has returned (a WAL file's payload, then its record). A backend
   * whose put ends with a sync of the folder (fs: the directory fsync that makes the rename
   * durable) may leave it to the next put, whose sync makes both names durable at once. Until then
   * the object is readable but may not survive a crash. Backends without such a sync ignore it.
   */
  folderSyncedByNextPut?: boolean;
}

export interface Backend {
  /** Human-readable location without secrets, e.g. "fs:/var/backups" or "s3://bucket/prefix". */
  readonly location: string;
  /**
   * Store the stream under key. Atomic: readers see the whole object or none (fs: temp file +
   * fsync + rename; S3: single PUT or multipart upload completed only at the end).
   * Overwriting an existing key replaces it.
   */
  put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo>;
  /** Stream the object. Throws LifeboatError('ObjectNotFound') when it does not exist. */
  get(key: string): Promise<Readable>;
  /** Size of the object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix, in lexicographic (UTF-8 byte) key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /**
   * One level under folder (a prefix ending in "/", or "" for the root): the objects directly in it
   * and the names of the folders below it (S3: ListObjectsV2 with Delimiter "/"; fs: one readdir),
   * each in key order. Costs requests per entry of this level, not per object below it: listing
   * 1,000 backups of many parts each is one request per 1,000 backups. A folder holding only
   * unfinished uploads may be listed on fs (its temp files) and not on S3.
   */
  listFolder(folder: string): Promise<FolderListing>;
  /** Remove the object; removing a missing object is not an error (idempotent). */
  delete(key: string): Promise<void>;
  /**
   * Remove what interrupted puts under prefix left behind (fs: temp files; S3: unfinished multipart
   * uploads), e.g. after a worker was killed mid-upload. Returns how many were removed. Only call it
   * when no put under prefix is running.
   */
  discardIncomplete(prefix: string): Promise<number>;
}

/** S3's limit on key length; the fs backend enforces it too so keys stay portable. */
const maxKeyBytes = 1024;

/**
 * Throws LifeboatError('InvalidInput') unless key is a portable object key: non-empty, relative,
 * '/'-separated, no empty, "." or ".." segments (they would escape the fs root or be normalised
 * away by S3 servers that map keys to files), no NUL, at most 1024 UTF-8 bytes.
 */
export function assertValidKey(key: string): void {
  const problem = keyProblem(key, { allowPartialLastSegment: false });
  if (problem) {
    throw new LifeboatError(
      'InvalidInput',
      `invalid object key ${JSON.stringify(key)}: ${problem}`,
      'Keys are relative paths like "target/backups/<id>/manifest.json"; this is a bug in the caller',
    );
  }
}

/** Throws InvalidInput unless folder is "" or a valid prefix ending in "/". */
export function assertValidFolder(folder: string): void {
  if (folder === '') return;
  assertValidPrefix(folder);
  if (!folder.endsWith('/')) {
    throw new LifeboatError('InvalidInput', `invalid folder ${JSON.stringify(folder)}: it must end in "/"`, 'This is a bug in the caller');
  }
}

/**
 * Like assertValidKey for list prefixes: "" (everything) is allowed, and the last segment may be
 * empty (a trailing '/') or any partial name ("demo/backups/2024-").
 */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  const problem = keyProblem(prefix, { allowPartialLastSegment: true });
  if (problem) {
    throw new LifeboatError(
      'InvalidInput',
      `invalid list prefix ${JSON.stringify(prefix)}: ${problem}`,
      'Prefixes are relative paths like "target/backups/"; this is a bug in the caller',
    );
  }
}

function keyProblem(key: string, { allowPartialLastSegment }: { allowPartialLastSegment: boolean }): string | undefined {
  if (key.length === 0) return 'it is empty';
  if (key.includes('\0')) return 'it contains a NUL character';
  if (key.startsWith('/')) return 'it is absolute (starts with "/")';
  if (Buffer.byteLength(key, 'utf8') > maxKeyBytes) return `it is longer than ${maxKeyBytes} UTF-8 bytes`;
  const segments = key.split('/');
  for (const [index, segment] of segments.entries()) {
    const last = index === segments.length - 1;
    if (last && allowPartialLastSegment) continue;
    if (segment === '') return 'it has an empty path segment ("//" or a trailing "/")';
    if (segment === '.' || segment === '..') return `it has a "${segment}" path segment`;
  }
  return undefined;
}

/**
 * Sorts objects the way S3 lists them: by the UTF-8 bytes of the key. JavaScript's default string
 * order compares UTF-16 code units, which differs for characters beyond the Basic Multilingual Plane.
 */
export function sortByKey<T extends { key: string }>(objects: T[]): T[] {
  return objects
    .map((object) => ({ object, bytes: Buffer.from(object.key, 'utf8') }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map(({ object }) => object);
}

/** The error a put rejects with when its AbortSignal fires (both backends). */
export function abortError(what: string, signal: AbortSignal): Error {
  const error = new Error(`${what} was aborted`, { cause: signal.reason });
  error.name = 'AbortError';
  return error;
}

export function isAbortError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'AbortError';
}

/** A small object's content as text; undefined when there is no such object. */
export async function readTextIfAny(backend: Backend, key: string): Promise<string | undefined> {
  try {
    return await text(await backend.get(key));
  } catch (error) {
    if (error instanceof LifeboatError && error.type === 'ObjectNotFound') return undefined;
    throw error;
  }
}
