/**
 * What a backup of directory trees reads: every entry under each root that the include and
 * exclude globs keep, in a fixed order (each directory before what it holds, names in byte order),
 * so two backups of the same tree list it the same way.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LifeboatError } from '../errors.js';
import { globMatcher, symlinkStaysInRoot, type EntryNamer, type EntryType } from './entry.js';

export interface TreeRoot {
  /** The root's name: its entries are stored as `<name>/<path inside it>`. */
  name: string;
  path: string;
}

export interface TreeSelection {
  include: readonly string[];
  exclude: readonly string[];
}

/** One entry found under a root, as lstat saw it during the walk. */
export interface FoundEntry {
  path: string;
  absolute: string;
  type: EntryType;
  stats: Stats;
  linkTarget?: string;
}

/** What the walk left out, and why (files: by name in the result; secrets: counted). */
export interface SkippedEntry {
  path: string;
  reason: 'socket' | 'fifo' | 'device' | 'vanished' | 'unreadable';
}

/** Roots are named by their last segment: two roots with one name could not be told apart. */
export function rootsOf(paths: readonly string[]): TreeRoot[] {
  const roots = paths.map((path) => ({ name: basename(path), path }));
  for (const root of roots) {
    if (root.name === '' || root.name === '.' || root.name === '..') {
      throw new LifeboatError('InvalidConfig', `the root ${root.path} has no name of its own (its last segment names it in the backup)`, 'List the directories to back up, not "/"');
    }
  }
  const names = roots.map((root) => root.name);
  const twice = names.find((name, index) => names.indexOf(name) !== index);
  if (twice) {
    throw new LifeboatError(
      'InvalidConfig',
      `two roots are named "${twice}" (${roots.filter((r) => r.name === twice).map((r) => r.path).join(', ')}): a backup names entries by their root's last segment`,
      'Back them up as two targets',
    );
  }
  return roots;
}

function typeOf(stats: Stats): EntryType | SkippedEntry['reason'] {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isSocket()) return 'socket';
  if (stats.isFIFO()) return 'fifo';
  return 'device';
}

export interface WalkOptions {
  symlinksOutsideRoot: 'refuse' | 'keep';
  name: EntryNamer;
}

/**
 * Every entry of every root that the globs keep (matched against the path inside the root; a
 * directory that an exclude glob matches is not entered). Directories are kept when a glob
 * includes them or when they hold something kept. Files seen twice (hard links) become `hardlink`
 * entries to the first name. Missing roots and symlinks out of their root (unless kept) fail.
 */
export async function walkRoots(roots: readonly TreeRoot[], selection: TreeSelection, options: WalkOptions): Promise<{ entries: FoundEntry[]; skipped: SkippedEntry[] }> {
  const included = globMatcher(selection.include);
  const excluded = globMatcher(selection.exclude);
  const entries: FoundEntry[] = [];
  const skipped: SkippedEntry[] = [];
  const inodes = new Map<string, string>();

  for (const root of roots) {
    const stats = await lstat(root.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new LifeboatError('SourceNotFound', `the root ${root.path} does not exist`, 'Fix `roots` in the target\'s config (relative paths are relative to the config file)');
      throw error;
    });
    if (!stats.isDirectory()) throw new LifeboatError('SourceNotFound', `the root ${root.path} is not a directory`, 'A root is a directory; list its parent, and narrow with include');

    const visit = async (absolute: string, relative: string, stats: Stats): Promise<boolean> => {
      const path = relative === '' ? root.name : `${root.name}/${relative}`;
      const type = typeOf(stats);
      if (type === 'directory') {
        const at = entries.length;
        entries.push({ path, absolute, type, stats });
        let names: string[];
        try {
          names = (await readdir(absolute)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          entries.splice(at, 1);
          skipped.push({ path, reason: 'vanished' });
          return false;
        }
        let holdsKept = false;
        for (const name of names) {
          const childRelative = relative === '' ? name : `${relative}/${name}`;
          if (excluded(childRelative)) continue;
          const childAbsolute = join(absolute, name);
          const childStats = await lstat(childAbsolute).catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'ENOENT') return undefined;
            throw error;
          });
          if (!childStats) {
            if (included(childRelative)) skipped.push({ path: `${root.name}/${childRelative}`, reason: 'vanished' });
            continue;
          }
          if (await visit(childAbsolute, childRelative, childStats)) holdsKept = true;
        }
        if (relative === '' || holdsKept || included(relative)) return true;
        entries.splice(at, 1);
        return false;
      }
      if (!included(relative)) return false;
      if (type === 'file') {
        if (stats.nlink > 1) {
          const inode = `${stats.dev}:${stats.ino}`;
          const first = inodes.get(inode);
          if (first) {
            entries.push({ path, absolute, type: 'hardlink', stats, linkTarget: first });
            return true;
          }
          inodes.set(inode, path);
        }
        entries.push({ path, absolute, type, stats });
        return true;
      }
      if (type === 'symlink') {
        const linkTarget = await readlink(absolute);
        if (options.symlinksOutsideRoot === 'refuse' && !symlinkStaysInRoot(path, linkTarget)) {
          throw new LifeboatError(
            'UnsafeEntry',
            `${options.name({ path }, entries.length)} is a symlink pointing outside its root ${root.path}: a restore would refuse it`,
            'Set `symlinksOutsideRoot: keep` on the target if the link is meant to point there (it is then restored as a link, never followed), or exclude it. Nothing was stored',
          );
        }
        entries.push({ path, absolute, type, stats, linkTarget });
        return true;
      }
      skipped.push({ path, reason: type as SkippedEntry['reason'] });
      return false;
    };
    await visit(root.path, '', stats);
  }
  return { entries, skipped };
}
