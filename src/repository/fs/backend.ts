import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FsRepositoryConfig } from '../../config/schema.js';
import { LifeboatError } from '../../errors.js';
import { fsyncPath, writeAll } from '../../pipeline/local-file.js';
import { abortError, assertValidFolder, assertValidKey, assertValidPrefix, isAbortError, sortByKey, type Backend, type FolderListing, type ObjectInfo, type PutOptions } from '../backend.js';
import { accessFromRoot, adoptDirectory, adoptFile, currentWriter, describeDenial, repairRootOwnedDirectory, type RootAccess } from './access.js';

/** Written bytes after which put starts flushing them to disk in the background. */
const flushEveryBytes = 8 << 20;
/** Bytes of incoming chunks that may queue behind a write, to be written by the next one. */
const writeBatchBytes = 1 << 20;

/**
 * Flushes a file's data to disk while it is being written, one fdatasync at a time in the
 * background. Without it the kernel starts writing a new file back only after about 30 s, so the
 * sync that commits an object would wait for all of it at the end (about 0.5 s per 64 MiB on this
 * project's virtual disk), after the backup's source is done; with it, for the last few MiB.
 */
export class FlushBehind {
  private pending: Promise<void> | undefined;
  private unflushed = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly handle: Pick<FileHandle, 'datasync'>,
    private readonly everyBytes: number,
  ) {}

  wrote(bytes: number): void {
    this.unflushed += bytes;
    if (this.unflushed < this.everyBytes || this.pending || this.failure) return;
    this.unflushed = 0;
    this.pending = this.handle
      .datasync()
      .catch((error: unknown) => {
        this.failure = { error };
      })
      .finally(() => {
        this.pending = undefined;
      });
  }

  /** Waits for the flush in progress; throws the error of any that failed. */
  async settle(): Promise<void> {
    await this.pending;
    if (this.failure) throw this.failure.error;
  }
}

/**
 * A repository in a local (or mounted) directory. Each key is a file under the root; "/" in keys
 * becomes a directory level.
 *
 * Crash safety: put writes a temp file next to the destination, fsyncs it, renames it over the
 * final name and fsyncs the directory, so after a crash a key holds either its old or its new
 * bytes, never a torn file. Left-over temp files are invisible to list/head/get.
 *
 * Owners and modes follow the repository's root (see access.ts): what Lifeboat creates inside it
 * takes the root's owner and group when the writer may set them, the root's owner and group
 * permissions, and never any permission for others: a repository holds copies of databases.
 */
export class FsBackend implements Backend {
  readonly location: string;
  private readonly root: string;
  private readonly writer = currentWriter();
  private rootAccess: Promise<RootAccess> | undefined;
  /** Directories between the root and an object already looked at by repairRootOwnedDirectory. */
  private readonly checkedDirs = new Set<string>();

  constructor(config: Pick<FsRepositoryConfig, 'path'>) {
    this.root = resolve(config.path);
    this.location = `fs:${this.root}`;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const { signal, onProgress } = options;
    const path = this.pathFor(key);
    if (signal?.aborted) {
      body.destroy();
      throw abortError(`put of "${key}" into ${this.location}`, signal);
    }
    const dir = dirname(path);
    const temp = join(dir, `.${basename(path)}.tmp-${randomBytes(8).toString('hex')}`);
    const { handle, firstCreatedDir } = await this.createTempFile(key, dir, temp);

    let sizeBytes = 0;
    let closed = false;
    const flush = new FlushBehind(handle, flushEveryBytes);
    try {
      const wrote = (bytes: number) => {
        sizeBytes += bytes;
        flush.wrote(bytes);
        onProgress?.(sizeBytes);
      };
      // Chunks that arrive while a write runs are written together in one writev: a pipe delivers
      // 64 KiB at a time, and one system call per chunk cost about 0.4 s of CPU per 500 MB. (A
      // Writable with only writev hands it single chunks too.)
      const sink = new Writable({
        highWaterMark: writeBatchBytes,
        writev(chunks, done) {
          writeAll(handle, chunks.map(({ chunk }) => chunk as Buffer)).then((bytes) => {
            wrote(bytes);
            done();
          }, done);
        },
      });
      await (signal ? pipeline(body, sink, { signal }) : pipeline(body, sink));
      // The data must be on disk before the rename makes it visible, or a crash could leave a
      // complete-looking but empty or torn file under the final name.
      await flush.settle();
      await handle.sync();
      closed = true;
      await handle.close();
      // Last chance to honour an abort: after the rename the object is committed.
      if (signal?.aborted) throw abortError(`put of "${key}" into ${this.location}`, signal);
      await rename(temp, path).catch((error: unknown) => {
        if (hasCode(error, 'EISDIR', 'ENOTEMPTY', 'EEXIST')) throw prefixConflict(key, this.location, error);
        throw error;
      });
    } catch (error) {
      if (!closed) {
        // Never close the descriptor under a datasync still running on it.
        await flush.settle().catch(() => undefined);
        await handle.close().catch(() => undefined);
      }
      await unlink(temp).catch(() => undefined);
      throw await this.describe(error, `put "${key}" into`, { path, intent: 'write' });
    }
    // The rename is only durable once the directory entry is; new parent directories likewise
    // need their own entries synced in their parents. With folderSyncedByNextPut, the next put
    // into this directory fsyncs it, and that one fsync makes both renames durable (it commits
    // the directory's entries, not one entry); not when this put created directories, whose
    // entries in their parents the next put would not sync.
    if (options.folderSyncedByNextPut && firstCreatedDir === undefined) return { key, sizeBytes };
    try {
      await fsyncPath(dir);
      if (firstCreatedDir !== undefined) {
        for (let parent = dirname(dir); ; parent = dirname(parent)) {
          await fsyncPath(parent);
          if (parent === dirname(firstCreatedDir) || parent === dirname(parent)) break;
        }
      }
    } catch (error) {
      throw await this.describe(error, `sync the directory of "${key}" in`);
    }
    return { key, sizeBytes };
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathFor(key);
    // Open before returning so that a missing object rejects this await instead of surfacing later
    // as a stream error in the middle of somebody's pipeline.
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw this.notFound(key);
      throw await this.describe(error, `read "${key}" from`, { path, intent: 'read' });
    }
    const info = await handle.stat();
    if (!info.isFile()) {
      await handle.close();
      throw this.notFound(key);
    }
    // 1 MiB reads: a restore or a verification reads gigabytes, 64 KiB at a time costs 16x the calls.
    // A small object (a manifest, a record) gets a buffer of its size: a thousand manifests read
    // through 1 MiB buffers allocated a gigabyte (a retention plan of 1,000 backups: 1.1 s -> 0.2 s).
    return handle.createReadStream({ highWaterMark: Math.min(1 << 20, Math.max(info.size, 16 << 10)) });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.pathFor(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { key, sizeBytes: info.size } : undefined;
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR')) return undefined;
      throw await this.describe(error, `stat "${key}" in`, { path, intent: 'read' });
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    // Only the directory that contains the prefix's last segment can hold matches.
    const dirKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const found: ObjectInfo[] = [];
    await this.walk(join(this.root, ...dirKey.split('/')), dirKey, prefix, found);
    return sortByKey(found);
  }

  async listFolder(folder: string): Promise<FolderListing> {
    assertValidFolder(folder);
    const dir = folder === '' ? this.root : join(this.root, ...folder.slice(0, -1).split('/'));
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR')) return { objects: [], folders: [] };
      throw this.describe(error, `list "${folder}" in`);
    }
    const folders: string[] = [];
    const objects: Array<Promise<ObjectInfo | undefined>> = [];
    for (const entry of entries) {
      if (entry.isDirectory()) folders.push(entry.name);
      else if (entry.isFile() && !isTempName(entry.name)) {
        objects.push(
          stat(join(dir, entry.name)).then(
            (info) => ({ key: folder + entry.name, sizeBytes: info.size }),
            (error: unknown) => {
              if (hasCode(error, 'ENOENT')) return undefined; // deleted while we listed
              throw this.describe(error, `list "${folder}" in`);
            },
          ),
        );
      }
    }
    const found = (await Promise.all(objects)).filter((object): object is ObjectInfo => object !== undefined);
    return { objects: sortByKey(found), folders: sortByKey(folders.map((name) => ({ key: name }))).map(({ key }) => key) };
  }

  async delete(key: string): Promise<void> {
    const path = this.pathFor(key);
    try {
      await unlink(path);
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR')) return; // already gone: deleting is idempotent
      // unlink(2) on a directory fails with EISDIR (Linux) or EPERM (macOS); a directory is not
      // an object, so there is nothing to delete. A real permission error must still surface.
      if (hasCode(error, 'EISDIR', 'EPERM') && (await stat(path).then((info) => info.isDirectory(), () => false))) return;
      throw await this.describe(error, `delete "${key}" from`, { path, intent: 'write' });
    }
    await this.pruneEmptyParents(dirname(path));
  }

  /**
   * Removes directories left empty by a delete, so the tree looks like S3 (no empty "folders") and
   * a later put of a key equal to the old folder name does not collide with it.
   */
  private async pruneEmptyParents(dir: string): Promise<void> {
    for (let current = dir; current !== this.root && current.startsWith(this.root + sep); current = dirname(current)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or already gone, or in use by a concurrent put): stop here
      }
    }
  }

  private async createTempFile(
    key: string,
    dir: string,
    temp: string,
  ): Promise<{ handle: FileHandle; firstCreatedDir: string | undefined }> {
    let rootAccess: RootAccess;
    try {
      rootAccess = await this.accessOfRoot();
    } catch (error) {
      throw await this.describe(error, `put "${key}" into`, { path: temp, intent: 'write' });
    }
    // A concurrent delete may prune the directory between mkdir and open; try again a few times.
    let firstCreatedDir: string | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const created = await mkdir(dir, { recursive: true, mode: rootAccess.dirMode & 0o777 });
        firstCreatedDir ??= created;
        await this.adoptDirectories(dir, created, rootAccess);
      } catch (error) {
        // A path component exists as a file, i.e. an object named like one of our folders.
        if (hasCode(error, 'ENOTDIR', 'EEXIST')) throw prefixConflict(key, this.location, error);
        throw await this.describe(error, `put "${key}" into`, { path: temp, intent: 'write' });
      }
      let handle: FileHandle;
      try {
        handle = await open(temp, 'wx', rootAccess.fileMode);
      } catch (error) {
        if (hasCode(error, 'ENOENT') && attempt < 5) continue;
        throw await this.describe(error, `put "${key}" into`, { path: temp, intent: 'write' });
      }
      try {
        await adoptFile(handle, rootAccess, this.writer);
      } catch (error) {
        await handle.close().catch(() => undefined);
        await unlink(temp).catch(() => undefined);
        throw await this.describe(error, `put "${key}" into`, { path: temp, intent: 'write' });
      }
      return { handle, firstCreatedDir };
    }
  }

  /** The root's owner, group and modes (access.ts); the root is created (0700, the writer's) when missing. */
  private accessOfRoot(): Promise<RootAccess> {
    this.rootAccess ??= (async () => {
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      return accessFromRoot(await stat(this.root));
    })().catch((error: unknown) => {
      this.rootAccess = undefined;
      throw error;
    });
    return this.rootAccess;
  }

  /**
   * Gives the directories mkdir just created (from `created` down to dir) the root's owner, group
   * and mode, and hands back to the root's owner the ones above them that an older Lifeboat
   * running as root made root's own.
   */
  private async adoptDirectories(dir: string, created: string | undefined, rootAccess: RootAccess): Promise<void> {
    const chain: string[] = [];
    for (let current = dir; current !== this.root && current.startsWith(this.root + sep); current = dirname(current)) chain.unshift(current);
    const firstNew = created === undefined ? chain.length : chain.indexOf(created);
    for (const [index, path] of chain.entries()) {
      if (index >= firstNew && firstNew >= 0) {
        await adoptDirectory(path, rootAccess, this.writer);
      } else if (!this.checkedDirs.has(path)) {
        await repairRootOwnedDirectory(path, rootAccess, this.writer);
      }
      this.checkedDirs.add(path);
    }
  }

  async discardIncomplete(prefix: string): Promise<number> {
    assertValidPrefix(prefix);
    const trimmed = prefix.replace(/\/+$/, '');
    const base = trimmed ? this.pathFor(trimmed) : this.root;
    let entries: string[];
    try {
      entries = await readdir(base, { recursive: true });
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR')) return 0;
      throw await this.describe(error, `clean up "${prefix}" in`);
    }
    const stale = entries.filter((entry) => isTempName(basename(entry)));
    await Promise.all(stale.map((entry) => unlink(join(base, entry)).catch(() => undefined)));
    return stale.length;
  }

  private async walk(dir: string, dirKey: string, prefix: string, found: ObjectInfo[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR')) return; // nothing stored under this prefix yet
      throw await this.describe(error, `list "${prefix}" in`, { path: dir, intent: 'read' });
    }
    // Stat the files of one directory in parallel, but descend into subdirectories one at a time
    // so a deep tree does not hold many directory handles open at once.
    const subdirs: string[] = [];
    const files: Promise<void>[] = [];
    for (const entry of entries) {
      const key = dirKey + entry.name;
      if (entry.isDirectory()) {
        if ((key + '/').startsWith(prefix)) subdirs.push(entry.name);
      } else if (entry.isFile() && !isTempName(entry.name) && key.startsWith(prefix)) {
        files.push(
          stat(join(dir, entry.name)).then(
            (info) => void found.push({ key, sizeBytes: info.size }),
            async (error: unknown) => {
              if (!hasCode(error, 'ENOENT')) throw await this.describe(error, `list "${prefix}" in`);
              // deleted while we listed: it is not there any more
            },
          ),
        );
      }
    }
    await Promise.all(files);
    for (const name of subdirs) await this.walk(join(dir, name), `${dirKey}${name}/`, prefix, found);
  }

  private pathFor(key: string): string {
    assertValidKey(key);
    const segments = key.split('/');
    if (segments.some(isTempName)) {
      throw new LifeboatError(
        'InvalidInput',
        `invalid object key ${JSON.stringify(key)}: names like ".<name>.tmp-<16 hex digits>" are reserved for uploads in progress`,
        'Choose another key; this is a bug in the caller',
      );
    }
    const path = join(this.root, ...segments);
    // assertValidKey already rules out "..", this guards against anything it might have missed.
    if (!path.startsWith(this.root + sep)) {
      throw new LifeboatError('InvalidInput', `object key ${JSON.stringify(key)} escapes ${this.location}`, 'This is a bug in the caller');
    }
    return path;
  }

  private notFound(key: string): LifeboatError {
    return new LifeboatError(
      'ObjectNotFound',
      `no object "${key}" in ${this.location}`,
      'Check that the repository path is right and that the backup was not pruned or moved',
    );
  }

  /**
   * Adds what we were doing and where to unexpected errors; permission problems become typed, and
   * say which directory or file refused whom (when `at`, the object's path, is given).
   */
  private async describe(error: unknown, action: string, at?: { path: string; intent: 'read' | 'write' }): Promise<Error> {
    if (error instanceof LifeboatError || isAbortError(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    if (hasCode(error, 'EACCES', 'EPERM', 'EROFS')) {
      const why = at === undefined || hasCode(error, 'EROFS') ? undefined : await describeDenial(this.root, at.path, at.intent).catch(() => undefined);
      return new LifeboatError(
        'InvalidConfig',
        `cannot ${action} ${this.location}: ${message}${why ? `; ${why}` : ''}`,
        'Every user that writes into an fs repository (the worker, and PostgreSQL\'s archive_command) must be able to write its root: ' +
          'give the root to the PostgreSQL user, or a group both users share with mode 2770 (docs/postgresql-deployment.md); ' +
          `directories created as root by an older Lifeboat are fixed with \`chown -R --reference=${this.root} ${this.root}\``,
        { cause: error },
      );
    }
    return new Error(`cannot ${action} ${this.location}: ${message}`, { cause: error });
  }
}

const tempNamePattern = /^\..+\.tmp-[0-9a-f]{16}$/;

function isTempName(name: string): boolean {
  return tempNamePattern.test(name);
}

function prefixConflict(key: string, location: string, cause: unknown): LifeboatError {
  return new LifeboatError(
    'ObjectConflict',
    `cannot store "${key}" in ${location}: on a filesystem a key cannot be both an object and the folder of other objects`,
    'Use keys where no object name is a "/"-prefix of another (e.g. "a" and "a/b" cannot both exist)',
    { cause },
  );
}


function hasCode(error: unknown, ...codes: string[]): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}
