import { createInterface } from 'node:readline';
import { Readable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors.js';
import { createCompressor, createDecompressor } from '../../pipeline/compress.js';
import { createDecryptor, createEncryptor } from '../../pipeline/encrypt.js';
import { HashingPassThrough } from '../../pipeline/hash.js';
import type { StoredObject } from '../../repository/manifest-envelope.js';
import { attemptObjectName, type Repository } from '../../repository/repository.js';
import { storeInEvery } from '../../repository/store.js';

/**
 * The index of one blobs backup: every entry of the tree (path, type, size, mode, owner, mtime,
 * inode, and for a file the ids of its blobs in order), and where each blob it uses is stored
 * (object, offset and length in the object's decoded bytes). One object per backup, JSON lines,
 * zstd-compressed and encrypted when configured: it alone (with the objects it names) restores
 * the backup, and the next backup reads it to find what did not change.
 *
 *   {"format":"lifeboat.blobs-index/v1","entries":n,"blobs":m}
 *   {"b":"<sha256 of the blob>","o":"blobs/<sha256 of the object>","s":offset,"n":length}   one per blob
 *   {"p":"a/b.jpg","t":"f","z":size,"m":mode,"u":uid,"g":gid,"mt":mtimeMs,"i":inode,"c":["<blob id>", ...]}
 *   {"p":"a","t":"d",...}   {"p":"a/link","t":"l","l":"target",...}
 */

export const indexFormat = 'lifeboat.blobs-index/v1';

export interface IndexEntry {
  /** Relative to the root, '/'-separated. */
  p: string;
  /** file, directory, symlink. */
  t: 'f' | 'd' | 'l';
  z: number;
  m: number;
  u: number;
  g: number;
  mt: number;
  i: number;
  /** A file's blobs, in order (each at most blobSizeBytes). */
  c?: string[];
  /** A symlink's target. */
  l?: string;
}

export interface BlobLocation {
  b: string;
  o: string;
  s: number;
  n: number;
}

export interface TreeIndex {
  entries: IndexEntry[];
  blobs: Map<string, BlobLocation>;
}

/** Blobs are at most this big: a larger file is cut into pieces of this size. */
export const blobSizeBytes = 4 << 20;

export function indexObjectName(encrypted: boolean): string {
  return encrypted ? 'index.jsonl.zst.enc' : 'index.jsonl.zst';
}

/** Writes the index into every repository in one pass (JSON lines -> zstd -> encryption). */
export async function storeIndex(
  repositories: Repository[],
  target: string,
  backupId: string,
  index: { entries: IndexEntry[]; blobs: Iterable<BlobLocation>; blobCount: number },
  options: { key: Buffer | undefined; compression: { level: number; threads: number }; signal?: AbortSignal; attempt?: number },
): Promise<StoredObject> {
  const name = options.attempt === undefined ? indexObjectName(options.key !== undefined) : attemptObjectName(options.attempt, indexObjectName(options.key !== undefined));
  const lines = Readable.from(
    (function* () {
      yield `${JSON.stringify({ format: indexFormat, entries: index.entries.length, blobs: index.blobCount })}\n`;
      let batch = '';
      for (const blob of index.blobs) {
        batch += `${JSON.stringify(blob)}\n`;
        if (batch.length > 1 << 16) {
          yield batch;
          batch = '';
        }
      }
      for (const entry of index.entries) {
        batch += `${JSON.stringify(entry)}\n`;
        if (batch.length > 1 << 16) {
          yield batch;
          batch = '';
        }
      }
      if (batch) yield batch;
    })(),
  );
  const stages: Array<Readable | Duplex> = [lines, createCompressor({ level: options.compression.level, threads: 1 })];
  if (options.key) stages.push(createEncryptor(options.key));
  const stored = await storeInEvery(repositories, stages, {
    keyOf: (repository) => repository.objectKey(target, backupId, name),
    action: (repository) => `storing the index of backup ${backupId} in repository "${repository.name}"`,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { name, ...stored };
}

const unsafePath = (path: string) => path === '' || path.startsWith('/') || path.includes('\0') || path.split('/').some((segment) => segment === '' || segment === '.' || segment === '..');

/**
 * Reads an index back: the stored bytes' sha256 and size are checked against the manifest's
 * record as they stream (a mismatch is ChecksumMismatch), then decrypted and decompressed.
 * Every path is checked to stay inside the root.
 */
export async function readIndex(repository: Repository, target: string, backupId: string, object: StoredObject, key: Buffer | undefined): Promise<TreeIndex> {
  const storedHash = new HashingPassThrough();
  const stages: Array<Readable | Duplex> = [await repository.backend.get(repository.objectKey(target, backupId, object.name)), storedHash];
  if (key) stages.push(createDecryptor(key));
  const decompressor = createDecompressor();
  stages.push(decompressor);
  const entries: IndexEntry[] = [];
  const blobs = new Map<string, BlobLocation>();
  const packNames = new Map<string, string>();
  let header = undefined as { format?: string; entries?: number; blobs?: number } | undefined;
  const parseLine = (line: string) => {
    const record = JSON.parse(line) as Partial<IndexEntry & BlobLocation & { format: string }>;
    if (header === undefined) {
      header = record as { format?: string };
      if (header.format !== indexFormat) throw new Error(`it is not a ${indexFormat} index`);
      return;
    }
    if (typeof record.b === 'string') {
      // One string per pack name (a few hundred, not one per blob).
      const pack = record.o === undefined ? undefined : (packNames.get(record.o) ?? (packNames.set(record.o, record.o), record.o));
      blobs.set(record.b, { b: record.b, o: pack as string, s: record.s as number, n: record.n as number });
    } else if (typeof record.p === 'string') {
      if (unsafePath(record.p)) throw new Error(`entry ${JSON.stringify(record.p)} is not a path inside the root`);
      // A file's blob ids as the same strings as the blobs' keys (blobs come first): 100,000
      // entries would otherwise hold a second copy of each 64-character id.
      if (record.c) record.c = record.c.map((id) => blobs.get(id)?.b ?? id);
      entries.push(record as IndexEntry);
    } else {
      throw new Error('a line is neither a blob nor an entry');
    }
  };
  // A line that does not parse is remembered and the rest drained (the pipeline ends normally).
  let parseError: Error | undefined;
  const parsing = (async () => {
    const lines = createInterface({ input: decompressor, crlfDelay: Infinity });
    for await (const line of lines) {
      if (line === '' || parseError) continue;
      try {
        parseLine(line);
      } catch (error) {
        parseError = error as Error;
      }
    }
    if (parseError) throw parseError;
  })();
  // The decompressor ends the pipeline and is the parser's input: both are awaited.
  const [piped, parsed] = await Promise.allSettled([pipeline(stages), parsing]);
  if (piped.status === 'rejected' && (piped.reason instanceof LifeboatError || parsed.status === 'fulfilled')) throw piped.reason;
  if (parsed.status === 'fulfilled' && (storedHash.sha256 !== object.sha256 || storedHash.bytes !== object.sizeBytes)) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `index ${object.name} of backup ${backupId} in repository "${repository.name}" has sha256 ${storedHash.sha256} (${storedHash.bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`,
      'Restore from another repository or another backup',
    );
  }
  if (parsed.status === 'rejected') {
    throw new LifeboatError('BackupCorrupt', `index ${object.name} of backup ${backupId} cannot be read: ${(parsed.reason as Error).message}`, 'Restore another backup');
  }
  if (header?.entries !== entries.length || header.blobs !== blobs.size) {
    throw new LifeboatError('BackupCorrupt', `index ${object.name} of backup ${backupId} holds ${entries.length} entries and ${blobs.size} blobs, its header says ${header?.entries} and ${header?.blobs}`, 'Restore another backup');
  }
  return { entries, blobs };
}

