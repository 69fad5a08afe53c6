/**
 * A backup of directory trees in one pass: each file is read once and streamed as a tar (pax)
 * stream through zstd (and encryption) and sha256 into every repository. The stream is cut at
 * entry boundaries into parts of about `partSizeBytes` (each a complete tar archive, its own
 * object), and an index object lists every entry and the part that holds it, so that listing a
 * backup or restoring one path downloads the index and the parts it needs, not the rest.
 */
import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Readable, type Duplex } from 'node:stream';
import tar from 'tar-stream';
import { LifeboatError } from '../errors.js';
import { createCompressor, type CompressorOptions } from '../pipeline/compress.js';
import { createEncryptor } from '../pipeline/encrypt.js';
import type { StoredObject } from '../repository/manifest-envelope.js';
import { attemptObjectName, type Repository } from '../repository/repository.js';
import { storeInEvery } from '../repository/store.js';
import { treeIndexFormat, type EntryNamer, type TreeEntry, type TreeIndex } from './entry.js';
import { walkRoots, type FoundEntry, type SkippedEntry, type TreeRoot, type TreeSelection } from './walk.js';

/** Files up to this size are read whole, so that one changing under the read can be read again. */
const rereadableBytes = 8 << 20;
/** Bytes a tar entry takes besides its content: its header, and the pax header before it. */
const entryOverheadBytes = 1536;
const largestUstarId = 0o7777777;

type TarHeader = Parameters<tar.Pack['entry']>[0];

export function partObjectName(part: number, encrypted: boolean): string {
  return `part-${String(part).padStart(6, '0')}.tar.zst${encrypted ? '.enc' : ''}`;
}

export function indexObjectName(encrypted: boolean): string {
  return `index.json.zst${encrypted ? '.enc' : ''}`;
}

export interface PartRecord extends StoredObject {
  /** Entries in the part's tar stream. */
  entries: number;
  /** Bytes of the part's tar stream before compression. */
  tarBytes: number;
}

export interface PackInput {
  repositories: Repository[];
  target: string;
  backupId: string;
  roots: readonly TreeRoot[];
  selection: TreeSelection;
  symlinksOutsideRoot: 'refuse' | 'keep';
  partSizeBytes: number;
  compression: CompressorOptions;
  key: Buffer | undefined;
  /** The backup step's attempt: its objects are stored under names of their own (attemptObjectName). */
  attempt: number;
  /** How errors name an entry (secrets: by number only). */
  name: EntryNamer;
  /** Files up to this size are read whole (and read again when they change meanwhile); default 8 MiB. */
  rereadableBytes?: number;
  signal?: AbortSignal;
  /** Told the total bytes of the files found, then the bytes read so far. */
  onTotal?(bytes: number): void;
  onProgress?(bytesRead: number): void;
}

export interface PackedTree {
  entries: TreeEntry[];
  parts: PartRecord[];
  index: StoredObject;
  /** Files whose size or mtime changed while they were read, and again when read a second time. */
  changedWhileRead: string[];
  skipped: SkippedEntry[];
}

/** One file's content as read, and whether it held still while it was read. */
interface ReadFile {
  stats: Stats;
  changed: boolean;
}

const unchanged = (before: Stats, after: Stats) => before.size === after.size && before.mtimeMs === after.mtimeMs;

async function openEntry(absolute: string): Promise<FileHandle | undefined> {
  try {
    return await open(absolute, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    // Gone, or replaced by a symlink, since the walk saw it.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ELOOP') return undefined;
    throw error;
  }
}

function header(entry: Pick<TreeEntry, 'path' | 'mode' | 'uid' | 'gid' | 'mtimeMs'>, fields: { type: 'file' | 'directory' | 'symlink' | 'link'; size?: number; linkname?: string }): TarHeader {
  const pax: Record<string, string> = { mtime: (entry.mtimeMs / 1000).toFixed(6) };
  if (entry.uid > largestUstarId) pax.uid = String(entry.uid);
  if (entry.gid > largestUstarId) pax.gid = String(entry.gid);
  return {
    name: entry.path,
    type: fields.type,
    size: fields.size ?? 0,
    mode: entry.mode ?? 0,
    uid: entry.uid > largestUstarId ? 0 : entry.uid,
    gid: entry.gid > largestUstarId ? 0 : entry.gid,
    mtime: new Date(Math.floor(entry.mtimeMs)),
    ...(fields.linkname !== undefined ? { linkname: fields.linkname } : {}),
    pax,
  };
}

/** Adds one entry to the pack and resolves once the pack has taken all of it (its backpressure). */
function addEntry(pack: tar.Pack, head: TarHeader, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null) => (error ? reject(error) : resolve());
    if (content) pack.entry(head, content, done);
    else pack.entry(head, done);
  });
}

function write(sink: { write(chunk: Buffer): boolean; once(event: 'drain', listener: () => void): unknown }, chunk: Buffer): Promise<void> {
  return sink.write(chunk) ? Promise.resolve() : new Promise((resolve) => sink.once('drain', () => resolve()));
}

export async function packTree(input: PackInput): Promise<PackedTree> {
  const { repositories, target, backupId, key, signal } = input;
  const encrypted = key !== undefined;
  const { entries: found, skipped } = await walkRoots(input.roots, input.selection, { symlinksOutsideRoot: input.symlinksOutsideRoot, name: input.name });
  input.onTotal?.(found.reduce((sum, entry) => sum + (entry.type === 'file' ? entry.stats.size : 0), 0));

  const entries: TreeEntry[] = [];
  const parts: PartRecord[] = [];
  const changedWhileRead: string[] = [];
  const shaOf = new Map<string, string>();
  let bytesRead = 0;

  const transform = (source: Readable): Array<Readable | Duplex> => [source, createCompressor(input.compression), ...(key ? [createEncryptor(key)] : [])];
  const store = (name: string, stages: Array<Readable | Duplex>) =>
    storeInEvery(repositories, stages, {
      keyOf: (repository) => repository.objectKey(target, backupId, name),
      action: (repository) => `storing ${name} of backup ${backupId} in repository "${repository.name}" (${repository.location})`,
      ...(signal ? { signal } : {}),
    });

  let next = 0;
  while (next < found.length || parts.length === 0) {
    const part = parts.length;
    const name = attemptObjectName(input.attempt, partObjectName(part, encrypted));
    const pack = tar.pack();
    const storing = store(name, transform(pack as unknown as Readable));
    // A failed upload must stop the writer, which may wait on the pack's backpressure meanwhile.
    let failure: unknown;
    const failed = storing.then(
      () => undefined,
      (error: unknown) => {
        failure = error;
        pack.destroy(error instanceof Error ? error : new Error(String(error)));
      },
    );
    let tarBytes = 0;
    let count = 0;
    try {
      while (next < found.length && (count === 0 || tarBytes < input.partSizeBytes)) {
        if (signal?.aborted) throw new Error('the backup was cancelled');
        if (failure !== undefined) break;
        const entry = found[next]!;
        next++;
        const written = await packEntry(pack, entry, part);
        if (!written) {
          skipped.push({ path: entry.path, reason: 'vanished' });
          continue;
        }
        if (written.changed) changedWhileRead.push(entry.path);
        if (written.entry.type === 'file') {
          bytesRead += written.entry.size;
          input.onProgress?.(bytesRead);
          shaOf.set(written.entry.path, written.entry.sha256!);
        }
        entries.push(written.entry);
        tarBytes += entryOverheadBytes + Math.ceil(written.entry.size / 512) * 512;
        count++;
      }
      if (failure === undefined) pack.finalize();
    } catch (error) {
      pack.destroy(error as Error);
      await failed;
      throw failure ?? error;
    }
    const stored = await storing;
    await failed;
    parts.push({ name, ...stored, entries: count, tarBytes: tarBytes + 1024 });
  }

  const index: TreeIndex = { format: treeIndexFormat, entries };
  const indexName = attemptObjectName(input.attempt, indexObjectName(encrypted));
  const storedIndex = await store(indexName, transform(Readable.from([Buffer.from(JSON.stringify(index))])));
  return { entries, parts, index: { name: indexName, ...storedIndex }, changedWhileRead, skipped };

  /** Writes one entry into the pack; undefined when it vanished since the walk. */
  async function packEntry(pack: tar.Pack, found: FoundEntry, part: number): Promise<{ entry: TreeEntry; changed: boolean } | undefined> {
    const base = { path: found.path, mode: found.stats.mode & 0o7777, uid: found.stats.uid, gid: found.stats.gid, mtimeMs: found.stats.mtimeMs, part };
    switch (found.type) {
      case 'directory':
        await addEntry(pack, header(base, { type: 'directory' }));
        return { entry: { ...base, type: 'directory', size: 0 }, changed: false };
      case 'symlink':
        await addEntry(pack, header(base, { type: 'symlink', linkname: found.linkTarget! }));
        return { entry: { ...base, type: 'symlink', size: 0, linkTarget: found.linkTarget! }, changed: false };
      case 'hardlink': {
        const sha256 = shaOf.get(found.linkTarget!);
        // Its first name vanished before it was read: store this name as a file of its own.
        if (sha256 === undefined) return packEntry(pack, { ...found, type: 'file' }, part);
        await addEntry(pack, header(base, { type: 'link', linkname: found.linkTarget! }));
        return { entry: { ...base, type: 'hardlink', size: 0, sha256, linkTarget: found.linkTarget! }, changed: false };
      }
      case 'file':
        return packFile(pack, found, part);
    }
  }

  async function packFile(pack: tar.Pack, found: FoundEntry, part: number): Promise<{ entry: TreeEntry; changed: boolean } | undefined> {
    if (found.stats.size <= (input.rereadableBytes ?? rereadableBytes)) {
      // Read whole, then looked at again: a file that changed under the read is read once more.
      let last: (ReadFile & { content: Buffer }) | undefined;
      for (let attempt = 0; attempt < 2; attempt++) {
        const handle = await openEntry(found.absolute);
        if (!handle) return undefined;
        try {
          const before = await handle.stat();
          if (!before.isFile()) return undefined;
          const content = await handle.readFile();
          const after = await handle.stat();
          last = { content, stats: after, changed: !unchanged(before, after) || content.length !== after.size };
        } finally {
          await handle.close();
        }
        if (!last.changed) break;
      }
      const { content, stats, changed } = last!;
      const entry: TreeEntry = {
        path: found.path,
        type: 'file',
        size: content.length,
        mode: stats.mode & 0o7777,
        uid: stats.uid,
        gid: stats.gid,
        mtimeMs: stats.mtimeMs,
        sha256: createHash('sha256').update(content).digest('hex'),
        part,
      };
      await addEntry(pack, header(entry, { type: 'file', size: content.length }), content);
      return { entry, changed };
    }
    // A large file streams through once: if it changes meanwhile it cannot be read again without
    // storing it twice, so it is stored as read and reported.
    const handle = await openEntry(found.absolute);
    if (!handle) return undefined;
    try {
      const before = await handle.stat();
      if (!before.isFile()) return undefined;
      const entry: TreeEntry = { path: found.path, type: 'file', size: before.size, mode: before.mode & 0o7777, uid: before.uid, gid: before.gid, mtimeMs: before.mtimeMs, part };
      const hash = createHash('sha256');
      let shortBy = 0;
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(header(entry, { type: 'file', size: before.size }), (error) => (error ? reject(error) : resolve()));
        void (async () => {
          const buffer = Buffer.allocUnsafe(1 << 20);
          let position = 0;
          while (position < before.size) {
            if (signal?.aborted) throw new Error('the backup was cancelled');
            const { bytesRead: got } = await handle.read(buffer, 0, Math.min(buffer.length, before.size - position), position);
            // The file shrank: the header promised `size` bytes, so the rest is zeros (and reported).
            const chunk = got === 0 ? Buffer.alloc(Math.min(buffer.length, before.size - position)) : Buffer.from(buffer.subarray(0, got));
            if (got === 0) shortBy += chunk.length;
            hash.update(chunk);
            position += chunk.length;
            input.onProgress?.(bytesRead + position);
            await write(sink, chunk);
          }
          sink.end(undefined);
        })().catch((error: unknown) => {
          sink.destroy(error as Error);
          reject(error as Error);
        });
      });
      const after = await handle.stat();
      return { entry: { ...entry, sha256: hash.digest('hex') }, changed: shortBy > 0 || !unchanged(before, after) };
    } finally {
      await handle.close();
    }
  }
}

/** The index's own checks: an index whose parts disagree with the manifest is not used. */
export function assertIndexMatchesParts(index: TreeIndex, parts: ReadonlyArray<{ entries: number }>, backupId: string): void {
  const counts = parts.map(() => 0);
  for (const entry of index.entries) {
    if (entry.part >= counts.length) throw new LifeboatError('BackupCorrupt', `the index of backup ${backupId} places an entry in part ${entry.part}, which the manifest does not list`, 'Restore another backup');
    counts[entry.part]!++;
  }
  const wrong = counts.findIndex((count, part) => count !== parts[part]!.entries);
  if (wrong !== -1) throw new LifeboatError('BackupCorrupt', `the index of backup ${backupId} lists ${counts[wrong]} entries in part ${wrong}, the manifest ${parts[wrong]!.entries}`, 'Restore another backup');
}
