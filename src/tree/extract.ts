/**
 * Writes the entries of a backup's tar parts into destination directories, and nowhere else: the
 * index has already been judged safe (entry.ts), every tar entry must be the index's entry of that
 * name, type and size, nothing is ever written through a symlink (each directory on the way is a
 * real one, checked or made here), files are created new and private (0600) and get their mode,
 * owner and mtime only once their content hashed right, directories theirs at the very end.
 */
import { constants } from 'node:fs';
import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { execa } from 'execa';
import { LifeboatError } from '../errors.js';
import { splitEntryPath, type EntryNamer, type TreeEntry } from './entry.js';

export interface TreeWriterOptions {
  /** Where each root's tree goes, by root name: directories this restore owns (made here when missing). */
  destinations: Readonly<Record<string, string>>;
  name: EntryNamer;
  /** Names never appear in errors (secrets): entries are named by number. */
  secret: boolean;
  /** Give entries their recorded owner (only root may). */
  owners: boolean;
}

const tarTypes: Record<TreeEntry['type'], string> = { file: 'file', directory: 'directory', symlink: 'symlink', hardlink: 'link' };

function unsafe(what: string): LifeboatError {
  return new LifeboatError('UnsafeEntry', what, 'Nothing was written outside the destination; this backup holds an entry Lifeboat does not restore');
}

function corrupt(what: string): LifeboatError {
  return new LifeboatError('BackupCorrupt', what, 'The copy is not used: another repository\'s copy is tried, or restore another backup');
}

const secondsOf = (mtimeMs: number) => mtimeMs / 1000;

export class TreeWriter {
  private readonly realDirectories = new Set<string>();
  private readonly written = new Map<string, string>();
  private readonly directories: Array<{ absolute: string; entry: TreeEntry }> = [];
  private readonly numbers = new Map<string, number>();

  constructor(
    private readonly options: TreeWriterOptions,
    /** Every entry this restore writes, in index order. */
    selected: readonly TreeEntry[],
  ) {
    selected.forEach((entry, index) => this.numbers.set(entry.path, index));
  }

  private describe(entry: Pick<TreeEntry, 'path'>): string {
    return this.options.name(entry, this.numbers.get(entry.path) ?? -1);
  }

  /** Makes the directories (from the index: no part needs downloading for them). */
  async writeDirectories(entries: readonly TreeEntry[]): Promise<void> {
    for (const entry of entries) if (entry.type === 'directory') await this.write(entry);
  }

  /** Makes the hard links (their files are written by then) and, last, the symlinks: no file is written once a link exists. */
  async writeLinks(entries: readonly TreeEntry[]): Promise<void> {
    for (const entry of entries) if (entry.type === 'hardlink') await this.write(entry);
    for (const entry of entries) if (entry.type === 'symlink') await this.write(entry);
  }

  /**
   * Writes the wanted files of one part's tar stream (`partEntries`: the index's entries of that
   * part, wanted or not). Entries the tar holds that the index does not list, or lists otherwise,
   * make the copy corrupt; so does a wanted entry the stream lacks.
   */
  async extractPart(tarStream: Readable, partEntries: readonly TreeEntry[], wanted: ReadonlySet<string>): Promise<void> {
    const byPath = new Map(partEntries.map((entry) => [entry.path, entry]));
    const seen = new Set<string>();
    const extract = tar.extract();
    const reading = pipeline(tarStream, extract as unknown as NodeJS.WritableStream);
    reading.catch(() => undefined);
    try {
      for await (const item of extract) {
        const head = item.header;
        const path = head.name.replace(/\/+$/, '');
        const entry = byPath.get(path);
        if (!entry || seen.has(path)) {
          item.resume();
          throw corrupt(`a part of the backup holds ${this.options.secret ? 'an entry' : JSON.stringify(path)}, which its index does not list (or lists once)`);
        }
        seen.add(path);
        if (head.type !== tarTypes[entry.type] || (entry.type === 'file' && head.size !== entry.size) || ((entry.type === 'symlink' || entry.type === 'hardlink') && head.linkname !== entry.linkTarget)) {
          item.resume();
          throw corrupt(`${this.describe(entry)} in the tar stream is not what the index records (type, size or link target)`);
        }
        // Only files come from the tar: directories and links are made from the index.
        if (entry.type !== 'file' || !wanted.has(path)) {
          for await (const chunk of item as unknown as AsyncIterable<Buffer>) void chunk; // read past it
          continue;
        }
        await this.write(entry, item as unknown as AsyncIterable<Buffer>);
      }
      await reading;
    } finally {
      extract.destroy();
    }
    const missing = partEntries.find((entry) => entry.type === 'file' && wanted.has(entry.path) && !seen.has(entry.path));
    if (missing) throw corrupt(`${this.describe(missing)} is listed in the index but missing from its part`);
  }

  /** The directory where an entry goes, made of real directories only (none is a symlink). */
  private async parentOf(entry: TreeEntry): Promise<{ absolute: string }> {
    const { root, relative } = splitEntryPath(entry.path);
    const base = this.options.destinations[root];
    if (base === undefined) throw unsafe(`${this.describe(entry)} belongs to no root of this restore`);
    const segments = relative === '' ? [] : relative.split('/');
    let current = base;
    await this.realDirectory(current, entry);
    for (const segment of segments.slice(0, -1)) {
      current = join(current, segment);
      await this.realDirectory(current, entry);
    }
    const absolute = segments.length === 0 ? base : join(current, segments.at(-1)!);
    if (absolute !== base && !absolute.startsWith(`${base}${sep}`)) throw unsafe(`${this.describe(entry)} would be written outside its destination`);
    return { absolute };
  }

  private async realDirectory(path: string, entry: TreeEntry): Promise<void> {
    if (this.realDirectories.has(path)) return;
    const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!stats) await mkdir(path, { mode: 0o700 });
    else if (!stats.isDirectory()) throw unsafe(`${this.describe(entry)} would be written through ${stats.isSymbolicLink() ? 'a symlink' : 'something that is not a directory'} on its way`);
    this.realDirectories.add(path);
  }

  /** An earlier attempt at this part (another repository's copy) may have left the entry: replaced. */
  private async clear(absolute: string): Promise<void> {
    const stats = await lstat(absolute).catch(() => undefined);
    if (stats && !stats.isDirectory()) await rm(absolute, { force: true });
  }

  private async write(entry: TreeEntry, content: AsyncIterable<Buffer> | Iterable<Buffer> = []): Promise<void> {
    const { absolute } = await this.parentOf(entry);
    const { owners } = this.options;
    switch (entry.type) {
      case 'directory': {
        if (!this.realDirectories.has(absolute)) {
          await this.clear(absolute);
          await mkdir(absolute, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== 'EEXIST') throw error;
          });
          this.realDirectories.add(absolute);
        }
        this.directories.push({ absolute, entry });
        break;
      }
      case 'file': {
        await this.clear(absolute);
        const handle = await open(absolute, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          const hash = createHash('sha256');
          let size = 0;
          for await (const chunk of content) {
            hash.update(chunk);
            size += chunk.length;
            let offset = 0;
            while (offset < chunk.length) offset += (await handle.write(chunk, offset, chunk.length - offset)).bytesWritten;
          }
          const sha256 = hash.digest('hex');
          if (size !== entry.size || sha256 !== entry.sha256) {
            throw new LifeboatError('ChecksumMismatch', `${this.describe(entry)} restored as ${size} bytes with sha256 ${sha256}, the index records ${entry.size} bytes with ${entry.sha256 ?? 'no sha256'}`, 'The copy is not used: another repository\'s copy is tried, or restore another backup');
          }
          // chown first: it clears set-id bits that chmod then sets.
          if (owners) await handle.chown(entry.uid, entry.gid);
          await handle.chmod(entry.mode ?? 0o600);
          await handle.utimes(secondsOf(entry.mtimeMs), secondsOf(entry.mtimeMs));
        } finally {
          await handle.close();
        }
        this.written.set(entry.path, absolute);
        break;
      }
      case 'symlink': {
        await this.clear(absolute);
        await symlink(entry.linkTarget!, absolute);
        if (owners) await lchown(absolute, entry.uid, entry.gid);
        await lutimes(absolute, secondsOf(entry.mtimeMs), secondsOf(entry.mtimeMs));
        break;
      }
      case 'hardlink': {
        const source = this.written.get(entry.linkTarget!);
        if (!source) throw unsafe(`${this.describe(entry)} is a hard link to a file this restore did not write`);
        await this.clear(absolute);
        await link(source, absolute);
        break;
      }
    }
  }

  /** Gives directories their mode, owner and mtime (deepest first, after what they hold), and flushes every destination to disk. */
  async finish(): Promise<void> {
    const byDepth = [...this.directories].sort((a, b) => b.absolute.split(sep).length - a.absolute.split(sep).length);
    for (const { absolute, entry } of byDepth) {
      if (this.options.owners) await chown(absolute, entry.uid, entry.gid);
      await chmod(absolute, entry.mode ?? 0o700);
      await utimes(absolute, secondsOf(entry.mtimeMs), secondsOf(entry.mtimeMs));
    }
    // One syncfs per destination instead of an fsync per file: the tree is on disk before it is used.
    for (const destination of new Set(Object.values(this.options.destinations))) {
      const exists = await lstat(destination).catch(() => undefined);
      if (exists) await execa('sync', ['-f', destination]);
    }
  }
}
