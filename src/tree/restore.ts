/**
 * Restoring a directory-tree backup: its index (one small object) says which parts hold the
 * entries asked for, only those parts are downloaded, each from the first repository whose copy
 * hashes right, and their entries are written by a TreeWriter into directories this restore owns.
 */
import { buffer } from 'node:stream/consumers';
import { PassThrough, Readable, Transform, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createReadStream } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { LifeboatError } from '../errors.js';
import { createDecompressor } from '../pipeline/compress.js';
import { createDecryptor } from '../pipeline/encrypt.js';
import { HashingPassThrough } from '../pipeline/hash.js';
import type { StoredObject } from '../repository/manifest-envelope.js';
import type { Repository } from '../repository/repository.js';
import { assertSafeEntries, entryNamers, entryTypes, partsOf, selectEntries, splitEntryPath, treeIndexSchema, type EntryNamer, type TreeIndex } from './entry.js';
import { TreeWriter } from './extract.js';
import { assertIndexMatchesParts, type PartRecord } from './pack.js';

/** What a restore needs of a tree backup's manifest. */
export interface TreeBackup {
  id: string;
  target: string;
  encryption: { keyId: string } | null;
  parts: PartRecord[];
  index: StoredObject;
}

function decoding(key: Buffer | undefined): Duplex[] {
  return [...(key ? [createDecryptor(key)] : []), createDecompressor()];
}

function mismatch(backup: TreeBackup, object: StoredObject, repository: Repository, got: { sha256: string; bytes: number }): LifeboatError {
  return new LifeboatError(
    'ChecksumMismatch',
    `${object.name} of backup ${backup.id} in repository "${repository.name}" has sha256 ${got.sha256} (${got.bytes} bytes), the manifest records ${object.sha256} (${object.sizeBytes} bytes)`,
    'That copy is not used',
  );
}

/** Tries each repository in turn; every failure is kept for the error when none works. */
async function fromFirstThatWorks<T>(repositories: readonly Repository[], what: string, attempt: (repository: Repository) => Promise<T>): Promise<{ value: T; repository: string }> {
  const failures: Array<{ repository: string; error: Error }> = [];
  for (const repository of repositories) {
    try {
      return { value: await attempt(repository), repository: repository.name };
    } catch (error) {
      if (error instanceof LifeboatError && (error.type === 'UnsafeEntry' || error.type === 'InvalidInput')) throw error;
      failures.push({ repository: repository.name, error: error as Error });
    }
  }
  const first = failures.find((f) => f.error instanceof LifeboatError && f.error.type !== 'ObjectNotFound')?.error ?? failures[0]?.error;
  const summary = failures.map((f) => `${f.repository}: ${f.error.message}`).join('; ');
  if (first instanceof LifeboatError) throw new LifeboatError(first.type, `no repository holds a usable copy of ${what} (${summary})`, undefined, { cause: first });
  throw new Error(`no repository holds a usable copy of ${what} (${summary})`, { cause: first });
}

/** The backup's index: downloaded whole (it is small), its sha256 checked before it is decoded. */
export async function readIndex(repositories: readonly Repository[], backup: TreeBackup, key: Buffer | undefined, name: EntryNamer = entryNamers.byNumber): Promise<{ index: TreeIndex; repository: string }> {
  const { value, repository } = await fromFirstThatWorks(repositories, `the index of backup ${backup.id}`, async (repository) => {
    const stored = await buffer(await repository.backend.get(repository.objectKey(backup.target, backup.id, backup.index.name)));
    const sha256 = createHash('sha256').update(stored).digest('hex');
    if (sha256 !== backup.index.sha256 || stored.length !== backup.index.sizeBytes) throw mismatch(backup, backup.index, repository, { sha256, bytes: stored.length });
    const chunks: Buffer[] = [];
    const collect = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    await pipeline([Readable.from([stored]), ...decoding(key), collect]);
    const raw = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    const parsed = treeIndexSchema.safeParse(raw);
    if (!parsed.success) {
      // An entry of a type Lifeboat never stores (a device, a FIFO...) is named, as unsafe.
      const entries = (raw as { entries?: unknown } | null)?.entries;
      if (Array.isArray(entries)) {
        entries.forEach((entry: { type?: unknown; path?: unknown }, number) => {
          if (typeof entry?.path === 'string' && !(entryTypes as readonly unknown[]).includes(entry.type)) {
            throw new LifeboatError('UnsafeEntry', `${name({ path: entry.path }, number)} is a ${String(entry.type)}, not a file, directory or link`, 'Nothing was written; this backup holds an entry Lifeboat does not restore');
          }
        });
      }
      throw new LifeboatError('BackupCorrupt', `the index of backup ${backup.id} is not a Lifeboat tree index`, 'Restore another backup');
    }
    assertIndexMatchesParts(parsed.data, backup.parts, backup.id);
    return parsed.data;
  });
  return { index: value, repository };
}

export interface RestoreTreeInput {
  repositories: readonly Repository[];
  backup: TreeBackup;
  key: Buffer | undefined;
  /** Where each root's tree is written, by root name (directories this restore owns). */
  destinations: Readonly<Record<string, string>>;
  /** Globs over stored names; none: everything. */
  paths?: readonly string[];
  symlinksOutsideRoot: 'refuse' | 'keep';
  name: EntryNamer;
  secret: boolean;
  owners: boolean;
  /** Stops the download (between chunks) when it fires. */
  signal?: AbortSignal;
  onTotal?(bytes: number): void;
  onProgress?(bytes: number): void;
}

export interface RestoredTree {
  entries: number;
  files: number;
  bytes: number;
  /** The parts downloaded (of `partsInBackup`): those that hold the files asked for. */
  partsFetched: number;
  partsInBackup: number;
  repositories: string[];
  /** The roots that got entries (a --path restore may touch only some). */
  roots: string[];
}

/** Restores the entries asked for (every one by default), downloading only the parts that hold them. */
export async function restoreTree(input: RestoreTreeInput): Promise<RestoredTree> {
  const { backup, key } = input;
  const { index, repository: indexFrom } = await readIndex(input.repositories, backup, key, input.name);
  const selected = selectEntries(index.entries, input.paths);
  assertSafeEntries(selected, { roots: Object.keys(input.destinations), symlinksOutsideRoot: input.symlinksOutsideRoot, name: input.name });
  const writer = new TreeWriter({ destinations: input.destinations, name: input.name, secret: input.secret, owners: input.owners }, selected);
  const files = selected.filter((entry) => entry.type === 'file');
  const wanted = new Set(files.map((entry) => entry.path));
  const parts = partsOf(files);
  await writer.writeDirectories(selected);
  input.onTotal?.(parts.reduce((sum, part) => sum + backup.parts[part]!.sizeBytes, 0));
  let done = 0;
  const used = new Set([indexFrom]);
  for (const part of parts) {
    if (input.signal?.aborted) throw new Error('the restore was cancelled');
    const object = backup.parts[part]!;
    const partEntries = index.entries.filter((entry) => entry.part === part);
    const { repository } = await fromFirstThatWorks(input.repositories, `${object.name} of backup ${backup.id}`, async (repository) => {
      const stored = new HashingPassThrough();
      let fetched = 0;
      const counting = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          if (input.signal?.aborted) {
            callback(new Error('the restore was cancelled'));
            return;
          }
          fetched += chunk.length;
          input.onProgress?.(done + fetched);
          callback(null, chunk);
        },
      });
      const body = await repository.backend.get(repository.objectKey(backup.target, backup.id, object.name));
      const decoded = new PassThrough();
      const decodingDone = pipeline([body, counting, stored, ...decoding(key), decoded]);
      decodingDone.catch(() => undefined);
      await Promise.all([writer.extractPart(decoded, partEntries, wanted), decodingDone]);
      if (stored.sha256 !== object.sha256 || stored.bytes !== object.sizeBytes) throw mismatch(backup, object, repository, { sha256: stored.sha256, bytes: stored.bytes });
    });
    done += object.sizeBytes;
    used.add(repository);
  }
  await writer.writeLinks(selected);
  await writer.finish();
  return { entries: selected.length, files: files.length, bytes: files.reduce((sum, entry) => sum + entry.size, 0), partsFetched: parts.length, partsInBackup: backup.parts.length, repositories: [...used], roots: [...new Set(selected.map((entry) => splitEntryPath(entry.path).root))] };
}

/**
 * Hashes again what a restore put in place (the live roots, after the swap): every entry asked
 * for must be there as recorded (type, link target, file content). Failures name the entry (or,
 * for secrets, its number).
 */
export async function verifyTree(input: {
  repositories: readonly Repository[];
  backup: TreeBackup;
  key: Buffer | undefined;
  places: Readonly<Record<string, string>>;
  paths?: readonly string[];
  name: EntryNamer;
}): Promise<{ entries: number; files: number; bytes: number }> {
  const { index } = await readIndex(input.repositories, input.backup, input.key, input.name);
  const selected = selectEntries(index.entries, input.paths);
  let files = 0;
  let bytes = 0;
  for (const [number, entry] of selected.entries()) {
    const { root, relative } = splitEntryPath(entry.path);
    const base = input.places[root];
    const fail = (why: string) => new LifeboatError('VerificationFailed', `${input.name(entry, number)} ${why} after the restore`, 'The restore is rolled back to the safety copy');
    if (base === undefined) throw fail('has no place');
    const absolute = relative === '' ? base : join(base, relative);
    const stats = await lstat(absolute).catch(() => undefined);
    if (!stats) throw fail('is missing');
    const expected = entry.type === 'hardlink' ? 'file' : entry.type;
    const actual = stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink' : 'other';
    if (actual !== expected) throw fail(`is a ${actual}, not a ${expected},`);
    if (expected !== 'file') continue;
    const handle = await open(absolute, constants.O_RDONLY | constants.O_NOFOLLOW);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream('', { fd: handle.fd, autoClose: false }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    await handle.close();
    if (hash.digest('hex') !== entry.sha256) throw fail(`does not hash to its recorded sha256 (${size} bytes)`);
    files++;
    bytes += size;
  }
  return { entries: selected.length, files, bytes };
}
