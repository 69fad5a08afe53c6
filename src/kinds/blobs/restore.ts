import { Context, log } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lchown, lutimes, mkdir, open, rename, rm, stat, symlink, utimes } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startProgress } from '../../../activities/progress.js';
import { openRepositories } from '../../../activities/repositories.js';
import { LifeboatError } from '../../errors.js';
import { createDecompressor } from '../../pipeline/compress.js';
import { createDecryptor, decryptionKeyFor } from '../../pipeline/encrypt.js';
import { HashingPassThrough } from '../../pipeline/hash.js';
import type { Repository } from '../../repository/repository.js';
import { readSharedObjects, type SharedObject } from '../../repository/shared-objects.js';
import type { ResolvedBlobsTarget } from './index.js';
import type { BlobsManifest } from './manifest.js';
import { readIndex, type IndexEntry, type TreeIndex } from './tree-index.js';
import { smallFileBytes, writeSmallFile, yieldNow } from './small-files.js';
import { forEachLimited } from './tree.js';

export interface RestoreTreeInput {
  target: ResolvedBlobsTarget;
  manifest: BlobsManifest;
  /** The directory the tree is restored into; it must not exist (a restore --into), or is ours to replace (staging, scratch). */
  destination: string;
  /** restore --into: refuse a destination that exists or is not absolute. */
  refuseExisting?: boolean;
}

export interface RestoredTree {
  path: string;
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** Blobs decoded and found to have their sha256 (every one the tree uses). */
  blobsChecked: number;
  /** Shared objects read, and from which repositories. */
  objectsRead: number;
  repositories: string[];
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Restores a whole tree from its index and the shared objects it names, from the repositories
 * alone. The tree is written to `<destination>.partial` and renamed to the destination when every
 * file is complete, so a destination that exists is always whole. Every blob is decoded, its
 * sha256 compared with its id before a byte of it is written; every shared object's stored
 * sha256 is checked as it streams; a damaged or missing object in one repository is read from the
 * next. Modes and mtimes are restored, owners when running as root.
 */
export async function restoreBlobTree(input: RestoreTreeInput, env: NodeJS.ProcessEnv): Promise<RestoredTree> {
  const { target, manifest, destination } = input;
  const signal = Context.current().cancellationSignal;
  if (!isAbsolute(destination)) throw new LifeboatError('InvalidInput', `--into ${destination} is not an absolute path`, 'Give the directory as an absolute path; nothing was changed');
  if (input.refuseExisting) {
    if (await stat(destination).then(() => true, () => false)) throw new LifeboatError('InvalidInput', `${destination} already exists`, 'Choose a directory that does not exist yet; nothing was changed');
    if (destination === target.path || destination.startsWith(`${target.path}/`)) {
      throw new LifeboatError('InvalidInput', `--into ${destination} is inside the live tree of target "${target.name}" (${target.path})`, 'Restore in place without --into (it keeps a safety copy), or choose a directory outside the tree');
    }
  } else {
    await rm(destination, { recursive: true, force: true });
  }
  const key = await decryptionKeyFor(target, manifest);
  const repositories = openRepositories(target, env);
  const progress = startProgress('index', manifest.source.sizeBytes);
  try {
    const { index, shared, repository: indexFrom } = await readFromFirst(repositories, manifest, key);
    const partial = `${destination}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true, mode: 0o700 });

    // Directories first (private until the end), then symlinks; files are created by their first write.
    const directories = index.entries.filter((entry) => entry.t === 'd');
    const files = index.entries.filter((entry) => entry.t === 'f');
    const links = index.entries.filter((entry) => entry.t === 'l');
    for (const entry of directories) await mkdir(join(partial, entry.p), { mode: 0o700 });
    for (const entry of links) await symlink(entry.l ?? '', join(partial, entry.p));

    // Which file positions each blob fills, grouped by the object that holds it, in offset order.
    // Kept small: a tree of 100,000 files is 100,000 of each of these.
    const wanted = new Map<string, WantedBlob[]>();
    const byBlob = new Map<string, WantedBlob>();
    const written = new Map<IndexEntry, number>();
    for (const file of files) {
      let position = 0;
      for (const id of file.c ?? []) {
        const location = index.blobs.get(id);
        if (!location) throw new LifeboatError('BackupCorrupt', `the index of backup ${manifest.id} names blob ${id} for ${file.p} without saying where it is stored`, 'Restore another backup');
        let blob = byBlob.get(id);
        if (!blob) {
          blob = { id, offset: location.s, length: location.n, writes: [] };
          byBlob.set(id, blob);
          const list = wanted.get(location.o);
          if (list) list.push(blob);
          else wanted.set(location.o, [blob]);
        }
        blob.writes.push({ file, position });
        position += location.n;
      }
      if (position !== file.z) throw new LifeboatError('BackupCorrupt', `the index of backup ${manifest.id} gives ${file.p} ${position} bytes of blobs for a size of ${file.z}`, 'Restore another backup');
    }
    const objects = new Map(shared.map((object) => [object.key, object]));
    for (const key of wanted.keys()) {
      if (!objects.has(key)) throw new LifeboatError('BackupCorrupt', `blobs of backup ${manifest.id} are in ${key}, which its listing of shared objects does not name`, 'Restore another backup');
    }

    progress.set({ phase: 'restore', bytesDone: 0 });
    let bytes = 0;
    let blobsChecked = 0;
    const usedRepositories = new Set<string>([indexFrom]);
    // Blobs written (after their sha256 matched): a copy found damaged further on is not written twice.
    const delivered = new Set<string>();
    // A file of one blob is written whole at once: its mode, mtime and owner are set on the same
    // descriptor (two path lookups fewer per file, for trees of many small files).
    byBlob.clear();
    const finished = new Set<IndexEntry>();
    const writeBlob = async (writes: WantedBlob['writes'], data: Buffer) => {
      for (const { file, position } of writes) {
        const path = file.p;
        const whole = file.c?.length === 1 ? file : undefined;
        if (whole && data.length <= smallFileBytes) {
          await yieldNow();
          writeSmallFile(join(partial, path), data, { mode: whole.m, mtimeMs: whole.mt, ...(isRoot ? { uid: whole.u, gid: whole.g } : {}) });
          finished.add(file);
          bytes += data.length;
          progress.update(bytes);
          continue;
        }
        const handle = await open(join(partial, path), constants.O_WRONLY | constants.O_CREAT, 0o600);
        try {
          let done = 0;
          while (done < data.length) done += (await handle.write(data, done, data.length - done, position + done)).bytesWritten;
          if (whole) {
            if (isRoot) await handle.chown(whole.u, whole.g);
            await handle.chmod(whole.m);
            await handle.utimes(whole.mt / 1000, whole.mt / 1000);
            finished.add(file);
          }
        } finally {
          await handle.close();
        }
        if (!whole) written.set(file, (written.get(file) ?? 0) + data.length);
        bytes += data.length;
        progress.update(bytes);
      }
    };
    await forEachLimited(
      [...wanted.entries()].map(([key, blobs]) => ({ object: objects.get(key)!, blobs: blobs.sort((a, b) => a.offset - b.offset) })),
      Math.min(target.concurrency, 3),
      async ({ object, blobs }) => {
        const from = await fetchObject(repositories, object, key, blobs, async (blob, data) => {
          if (delivered.has(blob.id)) return;
          await writeBlob(blob.writes, data);
          delivered.add(blob.id);
          blobsChecked++;
        });
        usedRepositories.add(from);
      },
      signal,
    );

    // Empty files (no blobs) are created here; every file must have all its bytes.
    for (const file of files) {
      if ((file.c ?? []).length === 0) await (await open(join(partial, file.p), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600)).close();
      const blobs = (file.c ?? []).length;
      const complete = blobs === 0 || (blobs === 1 ? finished.has(file) : written.get(file) === file.z);
      if (!complete) throw new Error(`${file.p} was not restored whole (${written.get(file) ?? 0} of ${file.z} bytes)`);
    }
    progress.setPhase('metadata');
    await forEachLimited(files.filter((file) => !finished.has(file)), 16, (file) => applyMetadata(join(partial, file.p), file), signal);
    await forEachLimited(links, 16, (link) => applyMetadata(join(partial, link.p), link), signal);
    // Deepest first: setting a directory's mtime before writing inside it would undo it.
    for (const entry of [...directories].reverse()) await applyMetadata(join(partial, entry.p), entry);
    await rename(partial, destination);
    log.info('tree restored', { backupId: manifest.id, destination, files: files.length, bytes });
    return { path: destination, files: files.length, directories: directories.length, symlinks: links.length, bytes, blobsChecked, objectsRead: wanted.size, repositories: [...usedRepositories] };
  } finally {
    progress.stop();
  }
}

async function applyMetadata(path: string, entry: IndexEntry): Promise<void> {
  const time = entry.mt / 1000;
  if (entry.t === 'l') {
    if (isRoot) await lchown(path, entry.u, entry.g);
    await lutimes(path, time, time);
    return;
  }
  if (isRoot) await lchown(path, entry.u, entry.g);
  await chmod(path, entry.m);
  await utimes(path, time, time);
}

const isDamage = (error: unknown) => error instanceof LifeboatError && ['ChecksumMismatch', 'BackupCorrupt', 'ObjectNotFound'].includes(error.type);

/** The index and the listing, from the first repository whose copies of both read back right. */
async function readFromFirst(repositories: Repository[], manifest: BlobsManifest, key: Buffer | undefined): Promise<{ index: TreeIndex; shared: SharedObject[]; repository: string }> {
  const problems: string[] = [];
  const indexObject = manifest.objects.find((object) => object.name === manifest.index.object);
  if (!indexObject) throw new LifeboatError('BackupCorrupt', `manifest of backup ${manifest.id} does not list its index ${manifest.index.object}`, 'Restore another backup');
  for (const repository of repositories) {
    try {
      const index = await readIndex(repository, manifest.target, manifest.id, indexObject, key);
      const shared = await readSharedObjects(repository, manifest);
      return { index, shared, repository: repository.name };
    } catch (error) {
      if (!isDamage(error) && !(error instanceof Error && /ECONN|ENOTFOUND|timeout/i.test(error.message))) throw error;
      problems.push(`${repository.name}: ${(error as Error).message}`);
    }
  }
  throw new LifeboatError('BackupCorrupt', `no repository holds a readable index of backup ${manifest.id}: ${problems.join('; ')}`, 'Restore another backup, and run `lifeboat verify`');
}

type WantedBlob = { id: string; offset: number; length: number; writes: Array<{ file: IndexEntry; position: number }> };

/**
 * Streams one shared object (stored sha256 checked on the way, decrypted, decompressed) and hands
 * each wanted blob, once its sha256 matches its id, to onBlob. From the first repository that
 * holds a good copy; a blob written from a copy that turned out damaged further on was checked
 * on its own, and is written again from the next copy anyway.
 */
async function fetchObject(repositories: Repository[], object: SharedObject, key: Buffer | undefined, blobs: WantedBlob[], onBlob: (blob: WantedBlob, data: Buffer) => Promise<void>): Promise<string> {
  const problems: string[] = [];
  for (const repository of repositories) {
    try {
      await decodeObject(repository, object, key, blobs, onBlob);
      return repository.name;
    } catch (error) {
      if (!isDamage(error)) throw error;
      problems.push(`${repository.name}: ${(error as Error).message}`);
      log.warn('damaged shared object, trying the next repository', { object: object.key, repository: repository.name, error: (error as Error).message });
    }
  }
  throw new LifeboatError('ChecksumMismatch', `no repository holds a good copy of ${object.key}: ${problems.join('; ')}`, 'Restore another backup, and run `lifeboat verify` to find what else is damaged');
}

async function decodeObject(repository: Repository, object: SharedObject, key: Buffer | undefined, blobs: WantedBlob[], onBlob: (blob: WantedBlob, data: Buffer) => Promise<void>): Promise<void> {
  const storedHash = new HashingPassThrough();
  const stages: Array<Readable | Duplex> = [await repository.backend.get(object.fullKey), storedHash];
  if (key) stages.push(createDecryptor(key));
  stages.push(createDecompressor());
  let position = 0;
  let next = 0;
  let current: { blob: WantedBlob; parts: Buffer[]; filled: number } | undefined;
  // Blobs are written while the object goes on decoding: up to 16 writes (and 8 MiB) at once.
  const writing = new Set<Promise<void>>();
  let writingBytes = 0;
  let writeFailure: unknown;
  const deliver = async (blob: WantedBlob, data: Buffer) => {
    while (writing.size >= 16 || writingBytes > 8 << 20) await Promise.race(writing);
    if (writeFailure !== undefined) throw writeFailure;
    writingBytes += data.length;
    const write = onBlob(blob, data).then(
      () => undefined,
      (error: unknown) => {
        writeFailure ??= error;
      },
    );
    writing.add(write);
    void write.finally(() => {
      writing.delete(write);
      writingBytes -= data.length;
    });
  };
  try {
    await decodeInto(stages);
  } finally {
    // Nothing of this copy keeps writing once it failed: the next copy starts from a settled tree.
    await Promise.all(writing);
  }
  if (writeFailure !== undefined) throw writeFailure;
  if (next < blobs.length) throw new LifeboatError('BackupCorrupt', `${object.key} in repository "${repository.name}" ends before blob ${blobs[next]!.id}`, 'Restore from another repository or another backup');
  if (storedHash.sha256 !== object.sha256 || storedHash.bytes !== object.sizeBytes) {
    throw new LifeboatError('ChecksumMismatch', `${object.key} in repository "${repository.name}" has sha256 ${storedHash.sha256} (${storedHash.bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`, 'Restore from another repository or another backup');
  }

  async function decodeInto(stages: Array<Readable | Duplex>): Promise<void> {
  await pipeline([
    ...(stages as NodeJS.ReadableStream[]),
    async function (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        let at = 0;
        while (at < chunk.length && next < blobs.length) {
          const blob = blobs[next]!;
          const absolute = position + at;
          if (!current) {
            if (absolute < blob.offset) {
              at = Math.min(chunk.length, blob.offset - position);
              continue;
            }
            current = { blob, parts: [], filled: 0 };
          }
          const take = Math.min(chunk.length - at, current.blob.length - current.filled);
          current.parts.push(chunk.subarray(at, at + take));
          current.filled += take;
          at += take;
          if (current.filled === current.blob.length) {
            const data = current.parts.length === 1 ? current.parts[0]! : Buffer.concat(current.parts, current.filled);
            const sha256 = createHash('sha256').update(data).digest('hex');
            if (sha256 !== current.blob.id) {
              throw new LifeboatError('ChecksumMismatch', `blob ${current.blob.id} in ${object.key} (repository "${repository.name}") decodes to sha256 ${sha256}`, 'Restore from another repository or another backup');
            }
            await deliver(current.blob, data);
            current = undefined;
            next++;
          }
        }
        position += chunk.length;
      }
    } as unknown as NodeJS.WritableStream,
  ]);
  }
}

/** Puts a staged tree in place of the live one, keeping the live tree as the safety copy (two renames). */
export async function swapBlobTree(input: { livePath: string; stagingPath: string; safetyPath: string }): Promise<{ safetyPath: string | null }> {
  const { livePath, stagingPath, safetyPath } = input;
  const exists = (path: string) => stat(path).then(() => true, () => false);
  if (!(await exists(stagingPath))) {
    // An earlier attempt of this step swapped already (the staging tree is live now).
    if (await exists(safetyPath)) return { safetyPath };
    throw new Error(`the staged tree ${stagingPath} is missing`);
  }
  let kept: string | null = null;
  if (await exists(livePath)) {
    await rename(livePath, safetyPath);
    kept = safetyPath;
  }
  await rename(stagingPath, livePath);
  return { safetyPath: kept };
}

/** Puts the safety copy back in place of a restored tree that failed its checks (the restored one is removed). */
export async function rollbackBlobTree(input: { livePath: string; safetyPath: string }): Promise<{ restored: boolean }> {
  const { livePath, safetyPath } = input;
  if (!(await stat(safetyPath).then(() => true, () => false))) return { restored: false };
  await rm(livePath, { recursive: true, force: true });
  await rename(safetyPath, livePath);
  return { restored: true };
}

/** Removes directories this run made (staging, scratch); missing ones are fine. */
export async function removeBlobPaths(input: { paths: string[] }): Promise<{ removed: number }> {
  for (const path of input.paths) await rm(path, { recursive: true, force: true });
  return { removed: input.paths.length };
}
