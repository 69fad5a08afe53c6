import { Context, log } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { leaseForThisRun, releaseLease } from '../../../activities/leases.js';
import { startProgress } from '../../../activities/progress.js';
import { openRepositories } from '../../../activities/repositories.js';
import { LifeboatError } from '../../errors.js';
import { compressionInfo } from '../../pipeline/compress.js';
import { keyId, loadKeyFile } from '../../pipeline/encrypt.js';
import type { SharedObjects, StoredObject } from '../../repository/manifest-envelope.js';
import { attemptObjectName, type Repository } from '../../repository/repository.js';
import { inProgressMarkerName, readSharedObjects, sharedListingLines, sharedListingName, summariseShared, type SharedObjectRecord } from '../../repository/shared-objects.js';
import { storeInEvery } from '../../repository/store.js';
import type { ResolvedBlobsTarget } from './index.js';
import type { BlobsManifest } from './manifest.js';
import { Packer } from './packer.js';
import { blobSizeBytes, readIndex, storeIndex, type BlobLocation, type IndexEntry } from './tree-index.js';
import { readSmallFile, smallFileBytes, yieldNow } from './small-files.js';
import { forEachLimited, walkTree } from './tree.js';

export interface BlobsBackupInput {
  target: ResolvedBlobsTarget;
  backupId: string;
  /** Read every file, whatever the previous backup's index says of it. */
  rehash?: boolean;
}

export interface StoredBlobsBackup {
  snapshotAt: string;
  source: BlobsManifest['source'];
  index: BlobsManifest['index'];
  changes: BlobsManifest['changes'];
  /** The backup's own objects: its index and its listing of shared objects. */
  objects: StoredObject[];
  shared: SharedObjects;
  compression: BlobsManifest['compression'];
  encryption: BlobsManifest['encryption'];
  tools: Record<string, string>;
  parent: string | null;
  repositories: string[];
  /** Paths that changed while they were read, twice (the first 100): stored as read the second time. */
  changedWhileRead: string[];
  /** Paths that are neither files, directories nor symlinks (sockets, devices, FIFOs): not backed up. */
  skipped: string[];
}

interface Parent {
  manifest: BlobsManifest;
  entries: Map<string, IndexEntry>;
  blobs: Map<string, BlobLocation>;
  shared: Map<string, SharedObjectRecord>;
}

/**
 * One pass over the tree into every repository:
 *
 * 1. the newest blobs backup (the parent) is leased, then its index and listing read: a file whose
 *    size, mtime and inode are those the parent recorded is not read (its blobs are reused);
 *    `rehash` reads every file;
 * 2. the files to read are read `concurrency` at once, each in blobs of at most 4 MiB, hashed;
 *    a blob the parent or this backup already has is referenced, a new one goes into a pack
 *    (packer.ts); a file whose size or mtime changed while it was read is read again once;
 * 3. the index (every entry, every blob's location) and the listing of the shared objects this
 *    backup references are stored as its own objects.
 *
 * Safe to run again: each attempt stores its index and listing under attempt-<n>/ and clears what
 * earlier attempts left there; packs are named by their content, so
 * those a killed attempt stored are either stored again under the same name or left for the
 * sweep (no backup references them).
 */
export async function backupBlobTree(input: BlobsBackupInput, env: NodeJS.ProcessEnv): Promise<StoredBlobsBackup> {
  const { target, backupId } = input;
  const rehash = input.rehash === true;
  const context = Context.current();
  const signal = context.cancellationSignal;
  const attempt = context.info.attempt;
  const repositories = openRepositories(target, env);
  const key = target.encryption ? await loadKeyFile(target.encryption.keyFile) : undefined;
  const currentKeyId = key ? keyId(key) : null;
  await assertTreeRoot(target.path);
  const progress = startProgress('scan', 0);
  try {
    // Before the first shared object: a sweep that sees this folder without a manifest removes
    // nothing. Written before what earlier attempts left is cleared, so the folder never looks empty.
    const marker = Buffer.from(`${JSON.stringify({ backupId, attempt, startedAt: new Date().toISOString() })}\n`);
    await Promise.all(repositories.map((r) => r.backend.put(r.objectKey(target.name, backupId, attemptObjectName(attempt, inProgressMarkerName)), Readable.from([marker]))));
    // Each attempt stores under names of its own (attempt-<n>/): one that lost its heartbeat but
    // still writes cannot overwrite what this one stores; what earlier attempts left goes.
    for (const repository of repositories) await repository.discardUnfinishedBackup(target.name, backupId, { beforeAttempt: attempt });

    const parent = await readParent(repositories, target, currentKeyId, key);
    if (parent) await keepOnlyStoredEverywhere(parent, repositories, target.name);
    const snapshotAt = new Date().toISOString();
    const tree = await walkTree(target.path, { signal, onProgress: (entries) => progress.set({ bytesDone: entries }) });

    const toRead: IndexEntry[] = [];
    let newFiles = 0;
    let changedFiles = 0;
    let unchangedFiles = 0;
    for (const entry of tree.entries) {
      if (entry.t !== 'f') continue;
      const before = parent?.entries.get(entry.p);
      if (!before || before.t !== 'f') newFiles++;
      const unchanged = before?.t === 'f' && before.z === entry.z && before.mt === entry.mt && before.i === entry.i && (before.c ?? []).every((id) => parent!.blobs.has(id));
      if (unchanged) unchangedFiles++;
      else if (before?.t === 'f') changedFiles++;
      if (unchanged && !rehash) entry.c = before.c ?? [];
      else toRead.push(entry);
    }
    let removedFiles = 0;
    if (parent) {
      for (const entry of tree.entries) parent.entries.delete(entry.p);
      for (const entry of parent.entries.values()) if (entry.t === 'f') removedFiles++;
      // The parent's entries are no longer needed (its blob locations are): 100,000 of them are tens of MB.
      parent.entries.clear();
    }

    const bytesToRead = toRead.reduce((sum, entry) => sum + entry.z, 0);
    progress.set({ phase: 'read', bytesDone: 0, bytesTotal: bytesToRead });
    const packer = new Packer({
      repositories,
      target: target.name,
      backupId,
      packSizeBytes: target.packSizeMiB << 20,
      sealing: 2,
      key,
      compression: target.compression,
      signal,
    });
    let readBytes = 0;
    let newBlobBytes = 0;
    const changedWhileRead: string[] = [];
    // Large files' blobs (up to 4 MiB each) read and not yet in a pack: at most 8 MiB of them,
    // whatever `concurrency` is (8 readers of 4 MiB blobs would hold 32 MiB).
    const largeReads = new ByteBudget(8 << 20);
    const known = (id: string) => parent?.blobs.has(id) === true || packer.has(id);
    try {
      await forEachLimited(
        toRead,
        target.concurrency,
        async (entry) => {
          for (let attempt = 1; ; attempt++) {
            const onBlob = async (id: string, data: Buffer) => {
              readBytes += data.length;
              progress.update(readBytes);
              if (known(id)) return;
              newBlobBytes += data.length;
              await packer.add(id, data);
            };
            const path = join(target.path, entry.p);
            const read = entry.z <= smallFileBytes ? await readSmall(path, onBlob) : await readFileBlobs(path, onBlob, largeReads);
            if (read === undefined) {
              entry.c = undefined; // removed while the tree was read
              return;
            }
            Object.assign(entry, { z: read.size, mt: read.mtimeMs, i: read.ino, m: read.mode, c: read.blobs });
            if (!read.changed) return;
            if (attempt === 2) {
              changedWhileRead.push(entry.p);
              log.warn('file changed while it was read, twice: stored as read the second time', { target: target.name, path: entry.p });
              return;
            }
          }
        },
        signal,
      );
      await packer.finish();
    } catch (error) {
      await packer.abandon();
      throw error;
    }

    const entries = tree.entries.filter((entry) => entry.t !== 'f' || entry.c !== undefined);
    const locations = new Map<string, BlobLocation>();
    const shared = new Map<string, SharedObjectRecord>();
    for (const entry of entries) {
      for (const id of entry.c ?? []) {
        if (locations.has(id)) continue;
        const location = packer.stored.get(id) ?? parent?.blobs.get(id);
        if (!location) throw new Error(`blob ${id} of ${entry.p} was neither stored nor found in the parent backup`);
        locations.set(id, location);
        if (!shared.has(location.o)) {
          const record = packer.objects.get(location.o) ?? parent?.shared.get(location.o);
          if (!record) throw new Error(`shared object ${location.o} of blob ${id} is in no listing`);
          shared.set(location.o, record);
        }
      }
    }

    progress.setPhase('index');
    const indexObject = await storeIndex(repositories, target.name, backupId, { entries, blobs: locations.values(), blobCount: locations.size }, { key, compression: target.compression, signal, attempt });
    const records = [...shared.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    const listingName = attemptObjectName(attempt, sharedListingName);
    const listing = await storeInEvery(repositories, [sharedListingLines(records)], {
      keyOf: (repository) => repository.objectKey(target.name, backupId, listingName),
      action: (repository) => `storing the listing of shared objects of backup ${backupId} in repository "${repository.name}"`,
      signal,
    });

    const files = entries.filter((entry) => entry.t === 'f');
    const compression = await compressionInfo();
    return {
      snapshotAt,
      source: {
        path: target.path,
        files: files.length,
        directories: entries.filter((entry) => entry.t === 'd').length,
        symlinks: entries.filter((entry) => entry.t === 'l').length,
        sizeBytes: files.reduce((sum, entry) => sum + entry.z, 0),
      },
      index: { object: indexObject.name, entries: entries.length, blobs: locations.size },
      changes: {
        newFiles,
        changedFiles,
        unchangedFiles,
        removedFiles,
        readFiles: toRead.length,
        readBytes,
        newBlobs: packer.stored.size,
        newBlobBytes,
        rehash,
        changedWhileRead: changedWhileRead.length,
      },
      objects: [indexObject, { name: listingName, ...listing }],
      shared: { listing: listingName, ...summariseShared(records, backupId) },
      compression: { algorithm: 'zstd', level: target.compression.level, implementation: compression.implementation, version: compression.version },
      encryption: key ? { algorithm: 'aes-256-gcm-chunked', keyId: keyId(key) } : null,
      tools: { node: process.version, zstd: compression.version },
      parent: parent?.manifest.id ?? null,
      repositories: repositories.map((r) => r.name),
      changedWhileRead: changedWhileRead.slice(0, 100),
      skipped: tree.skipped.slice(0, 100),
    };
  } finally {
    progress.stop();
  }
}

/** The target's root must be a directory that exists: checked before anything is written. */
async function assertTreeRoot(root: string): Promise<void> {
  const info = await stat(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new LifeboatError('SourceNotFound', `the root ${root} does not exist`, 'Check the target\'s path in lifeboat.config.yaml');
    throw error;
  });
  if (!info.isDirectory()) throw new LifeboatError('InvalidConfig', `the root ${root} is not a directory`, 'A blobs target\'s path is the directory that holds the uploads');
}

/**
 * A blob of the parent is reused only if its pack is in every repository (one listing of
 * `<target>/blobs/` each): a repository added to the target later, or one that lost packs, gets
 * the content again instead of a backup that points at nothing there.
 */
async function keepOnlyStoredEverywhere(parent: Parent, repositories: Repository[], target: string): Promise<void> {
  const listings = await Promise.all(repositories.map(async (repository) => new Set((await repository.backend.list(`${target}/blobs/`)).map((object) => object.key.slice(target.length + 1)))));
  let dropped = 0;
  for (const [id, location] of parent.blobs) {
    if (listings.every((keys) => keys.has(location.o))) continue;
    parent.blobs.delete(id);
    dropped++;
  }
  if (dropped > 0) log.warn('packs of the previous backup are missing in a repository: their files are read and stored again', { target, blobs: dropped });
}

/** A small file (smallFileBytes) in one synchronous read: one blob, or none when it is empty. */
async function readSmall(path: string, onBlob: (id: string, data: Buffer) => Promise<void>): ReturnType<typeof readFileBlobs> {
  await yieldNow();
  const read = readSmallFile(path);
  if (!read) return undefined;
  const blobs: string[] = [];
  if (read.data.length > blobSizeBytes) return readFileBlobs(path, onBlob); // grew past a blob: the general path
  if (read.data.length > 0) {
    const id = createHash('sha256').update(read.data).digest('hex');
    blobs.push(id);
    await onBlob(id, read.data);
  }
  const changed = read.after.size !== read.before.size || read.after.mtimeMs !== read.before.mtimeMs || read.data.length !== read.before.size;
  return { blobs, size: read.data.length, mtimeMs: read.after.mtimeMs, ino: read.after.ino, mode: read.after.mode, changed };
}

/**
 * Reads one file in blobs of at most 4 MiB, handing each (with its sha256) to `onBlob`, which may
 * wait (backpressure). Returns the blob ids and the file's stat after the read, with `changed`
 * when its size or mtime differ from before the read; undefined when the file is gone.
 */
async function readFileBlobs(path: string, onBlob: (id: string, data: Buffer) => Promise<void>, budget?: ByteBudget): Promise<{ blobs: string[]; size: number; mtimeMs: number; ino: number; mode: number; changed: boolean } | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const before = await handle.stat();
    const blobs: string[] = [];
    let position = 0;
    // Exactly the size the stat gave: a file that grows or shrinks meanwhile is "changed" (read again).
    while (position < before.size) {
      const size = Math.min(blobSizeBytes, before.size - position);
      await budget?.acquire(size);
      let filled = 0;
      try {
        const buffer = Buffer.allocUnsafe(size);
        while (filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        if (filled === 0) break;
        const data = filled === buffer.length ? buffer : buffer.subarray(0, filled);
        const id = createHash('sha256').update(data).digest('hex');
        blobs.push(id);
        await onBlob(id, data);
      } finally {
        budget?.release(size);
      }
      position += filled;
      if (filled < size) break;
    }
    const after = await handle.stat();
    return { blobs, size: position, mtimeMs: after.mtimeMs, ino: after.ino, mode: after.mode & 0o7777, changed: after.size !== before.size || after.mtimeMs !== before.mtimeMs || position !== before.size };
  } finally {
    await handle.close();
  }
}

/**
 * The newest blobs backup made with the same key, read from the first repository that holds one:
 * leased first (src/retention/leases.ts), so that retention keeps it, and so the objects this
 * backup reuses, while this backup runs; then its manifest is read (again), its index and listing.
 */
async function readParent(repositories: Repository[], target: ResolvedBlobsTarget, currentKeyId: string | null, key: Buffer | undefined): Promise<Parent | undefined> {
  for (const repository of repositories) {
    let ids: string[];
    try {
      ids = await repository.listBackupIds(target.name);
    } catch (error) {
      log.warn('repository unreadable while looking for the parent backup', { repository: repository.name, error: (error as Error).message });
      continue;
    }
    for (const id of ids.slice(0, 5)) {
      // Retention's lease protocol: leased before the manifest is read (again), so retention keeps
      // its folder, listing and objects while this backup reuses them.
      const lease = await leaseForThisRun(repositories, target.name, id);
      const manifest = await repository.readManifestIfAny(target.name, id, 'blobs').catch(() => undefined);
      if (manifest?.kind !== 'blobs') {
        await releaseLease(repositories, lease);
        continue;
      }
      if ((manifest.encryption?.keyId ?? null) !== currentKeyId) {
        await releaseLease(repositories, lease);
        log.info('the newest backup was made with another key: every file is read and stored again', { backupId: id });
        return undefined;
      }
      try {
        const indexObject = manifest.objects.find((object) => object.name === manifest.index.object)!;
        const index = await readIndex(repository, target.name, id, indexObject, key);
        const shared = await readSharedObjects(repository, manifest);
        return {
          manifest,
          entries: new Map(index.entries.map((entry) => [entry.p, entry])),
          blobs: index.blobs,
          shared: new Map(shared.map((object) => [object.key, { key: object.key, sizeBytes: object.sizeBytes, sha256: object.sha256, addedBy: object.addedBy }])),
        };
      } catch (error) {
        log.warn('parent backup unreadable: every file is read', { backupId: id, repository: repository.name, error: (error as Error).message });
        return undefined;
      }
    }
    return undefined;
  }
  return undefined;
}

/** A count of bytes that may be held at once; acquire waits while the rest is taken. */
class ByteBudget {
  private available: number;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly total: number) {
    this.available = total;
  }

  async acquire(bytes: number): Promise<void> {
    const want = Math.min(bytes, this.total);
    while (this.available < want) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.available -= want;
  }

  release(bytes: number): void {
    this.available += Math.min(bytes, this.total);
    for (const wake of this.waiting.splice(0)) wake();
  }
}
