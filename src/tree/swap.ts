/**
 * Restore in place of directory trees: each root's staged tree (a full, verified tree beside the
 * live root) takes the live root's place by two renames, the live root kept whole as the safety
 * copy. What the restore does not cover (what the target's globs leave out, or what --path does not
 * name) is carried over from the live root into the staged tree first, as hard links (the same
 * files, not copies), so a restore replaces exactly what the backup holds and nothing else.
 */
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { chmod, chown, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, readlink, rename, rm, symlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import picomatch from 'picomatch';
import { fsyncPath } from '../pipeline/local-file.js';
import { globMatcher } from './entry.js';

export interface RootSwap {
  name: string;
  live: string;
  staging: string;
  safety: string;
}

/** What the restore covers: the target's globs (relative to a root) and --path (over stored names). */
export interface RestoreScope {
  include: readonly string[];
  exclude: readonly string[];
  paths?: readonly string[];
}

const statIfAny = (path: string): Promise<Stats | undefined> => lstat(path).catch((error: NodeJS.ErrnoException) => {
  if (error.code === 'ENOENT') return undefined;
  throw error;
});

function scopeOf(root: string, scope: RestoreScope) {
  const included = globMatcher(scope.include);
  const excluded = globMatcher(scope.exclude);
  const named = scope.paths && scope.paths.length > 0 ? picomatch(scope.paths.map((glob) => glob.replace(/^\/+/, '').replace(/\/+$/, '')), { dot: true }) : undefined;
  /** Whether --path names this entry or a directory above it. */
  const isNamed = (relative: string) => {
    if (!named) return true;
    const segments = relative.split('/');
    for (let depth = segments.length; depth >= 1; depth--) if (named(`${root}/${segments.slice(0, depth).join('/')}`)) return true;
    return named(root);
  };
  return {
    /** A directory the restore does not cover at all: carried over whole. */
    directoryLeftOut: (relative: string) => excluded(relative) || !isNamed(relative),
    /** Anything else the restore does not cover. */
    entryLeftOut: (relative: string) => excluded(relative) || !included(relative) || !isNamed(relative),
  };
}

async function giveMetadata(path: string, stats: Stats, owners: boolean): Promise<void> {
  if (owners) await chown(path, stats.uid, stats.gid);
  await chmod(path, stats.mode & 0o7777);
  await utimes(path, stats.atime, stats.mtime);
}

/**
 * Carries what the restore leaves out from `live` into `staging` (idempotent: what is there
 * already stays). Directories above a carried entry are made where the staged tree lacks them.
 * Sockets, FIFOs and devices are not carried (their programs make them again). Returns how many
 * entries were carried.
 */
export async function carryOver(root: string, live: string, staging: string, scope: RestoreScope): Promise<number> {
  const { directoryLeftOut, entryLeftOut } = scopeOf(root, scope);
  const owners = process.getuid?.() === 0;
  const made: Array<{ path: string; stats: Stats }> = [];
  let carried = 0;

  const ensureDirectory = async (relative: string): Promise<void> => {
    if (relative === '') return;
    const target = join(staging, relative);
    if (await statIfAny(target)) return;
    await ensureDirectory(dirname(relative) === '.' ? '' : dirname(relative));
    const stats = await lstat(join(live, relative));
    await mkdir(target, { mode: 0o700 });
    made.push({ path: target, stats });
  };

  const carry = async (relative: string, stats: Stats): Promise<void> => {
    const from = join(live, relative);
    const to = join(staging, relative);
    if (await statIfAny(to)) return;
    await ensureDirectory(dirname(relative) === '.' ? '' : dirname(relative));
    if (stats.isDirectory()) {
      await mkdir(to, { mode: 0o700 });
      made.push({ path: to, stats });
      for (const name of await readdir(from)) await carry(join(relative, name), await lstat(join(from, name)));
    } else if (stats.isFile()) {
      await link(from, to).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EXDEV' && error.code !== 'EPERM') throw error;
        await copyFile(from, to, constants.COPYFILE_EXCL);
        await giveMetadata(to, stats, owners);
      });
    } else if (stats.isSymbolicLink()) {
      await symlink(await readlink(from), to);
      if (owners) await lchown(to, stats.uid, stats.gid);
      await lutimes(to, stats.atime, stats.mtime);
    } else {
      return;
    }
    carried++;
  };

  const visit = async (relative: string): Promise<void> => {
    for (const name of await readdir(relative === '' ? live : join(live, relative))) {
      const child = relative === '' ? name : `${relative}/${name}`;
      const stats = await lstat(join(live, child));
      if (stats.isDirectory()) {
        if (directoryLeftOut(child)) await carry(child, stats);
        else await visit(child);
      } else if (entryLeftOut(child)) {
        await carry(child, stats);
      }
    }
  };
  await visit('');
  // Directories get their modes and times after what they hold, deepest first.
  for (const { path, stats } of made.reverse()) await giveMetadata(path, stats, owners);
  return carried;
}

/**
 * The swap of every root, idempotent: a root already swapped (staging gone, live there) is left
 * as it is; one interrupted between its two renames is finished. Returns the safety copies (roots
 * that had no live tree have none) and how many live entries were carried over.
 */
export async function swapTrees(input: { roots: RootSwap[]; scope: RestoreScope }): Promise<{ safetyCopies: string[]; carried: number }> {
  const safetyCopies: string[] = [];
  let carried = 0;
  for (const root of input.roots) {
    const [live, staging, safety] = await Promise.all([statIfAny(root.live), statIfAny(root.staging), statIfAny(root.safety)]);
    if (!staging) {
      if (!live) throw new Error(`the staged tree ${root.staging} is gone and ${root.live} does not exist; the restore must fetch again`);
      if (safety) safetyCopies.push(root.safety);
      continue;
    }
    if (live && safety) throw new Error(`${root.live} and its safety copy ${root.safety} both exist while the staged tree waits: something recreated the live root during the restore`);
    if (live) {
      carried += await carryOver(root.name, root.live, root.staging, input.scope);
      await rename(root.live, root.safety);
    }
    await rename(root.staging, root.live);
    await fsyncPath(dirname(root.live));
    if (live || safety) safetyCopies.push(root.safety);
  }
  return { safetyCopies, carried };
}

/**
 * Compensation: every root back as it was. The restored tree goes back under its staging name
 * (the cleanup removes it) and the safety copy takes its place again; a root that had no live tree
 * before has none again.
 */
export async function rollbackTrees(input: { roots: RootSwap[] }): Promise<{ restored: number }> {
  let restored = 0;
  for (const root of input.roots) {
    const [live, staging, safety] = await Promise.all([statIfAny(root.live), statIfAny(root.staging), statIfAny(root.safety)]);
    if (staging) {
      // Not swapped (or swapped halfway: the live root was renamed, the staged one not yet).
      if (!live && safety) {
        await rename(root.safety, root.live);
        restored++;
      }
      continue;
    }
    if (live) await rename(root.live, root.staging);
    if (safety) {
      await rename(root.safety, root.live);
      restored++;
    }
    await fsyncPath(dirname(root.live));
  }
  return { restored };
}

/** Removes what a restore or drill made (staged trees, scratch directories); only names Lifeboat gives. */
export async function removeStaging(input: { paths: string[] }): Promise<{ removed: number }> {
  let removed = 0;
  for (const path of input.paths) {
    if (!/(^|\/)(lifeboat-[^/]+|[^/]+\.lifeboat-[a-z-]+-[^/]+)$/.test(path)) throw new Error(`refusing to remove ${path}: not a name Lifeboat gives its staging or scratch directories`);
    if (await statIfAny(path)) {
      await rm(path, { recursive: true, force: true }).catch(async (error: NodeJS.ErrnoException) => {
        // A restored read-only directory stops a worker that is not root from emptying it.
        if (error.code !== 'EACCES') throw error;
        await makeWritable(path);
        await rm(path, { recursive: true, force: true });
      });
      removed++;
    }
  }
  return { removed };
}

async function makeWritable(path: string): Promise<void> {
  const stats = await lstat(path);
  if (!stats.isDirectory()) return;
  await chmod(path, 0o700);
  for (const name of await readdir(path)) await makeWritable(join(path, name));
}
