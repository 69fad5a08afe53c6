/**
 * The entries of a directory-tree backup (`files` and `secrets` targets) and the index that lists
 * them: what each entry is, which part (stored object) holds it, and the checks that every entry
 * must pass before a restore writes anything. Names are `<root>/<path inside the root>`, where
 * `<root>` is the root directory's name (its last path segment).
 */
import picomatch from 'picomatch';
import { posix } from 'node:path';
import { z } from 'zod';
import { LifeboatError } from '../errors.js';

export const treeIndexFormat = 'lifeboat.tree-index/v1';

export const entryTypes = ['file', 'directory', 'symlink', 'hardlink'] as const;
export type EntryType = (typeof entryTypes)[number];

export const treeEntrySchema = z.object({
  /** `<root>/<relative path>`; the root's own entry is `<root>`. */
  path: z.string().min(1),
  type: z.enum(entryTypes),
  /** Bytes of a file's content as stored (0 for anything else). */
  size: z.number().int().nonnegative(),
  /** Permission bits (0o7777); restored as recorded, 0600 for files and 0700 for directories when absent. */
  mode: z.number().int().min(0).max(0o7777).optional(),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  /** Modification time, in milliseconds since the epoch (fractions kept). */
  mtimeMs: z.number(),
  /** sha256 of a file's content as stored (a hard link: its target's). */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** A symlink's target as it reads, or the entry a hard link shares its content with. */
  linkTarget: z.string().optional(),
  /** The part (0, 1, ...) whose tar stream holds the entry. */
  part: z.number().int().nonnegative(),
});

export type TreeEntry = z.infer<typeof treeEntrySchema>;

export const treeIndexSchema = z.object({
  format: z.literal(treeIndexFormat),
  entries: z.array(treeEntrySchema),
});

export type TreeIndex = z.infer<typeof treeIndexSchema>;

/** How errors and logs name an entry: by name, or (secrets) by its number only. */
export type EntryNamer = (entry: Pick<TreeEntry, 'path'>, index: number) => string;

export const entryNamers = {
  byName: (entry: Pick<TreeEntry, 'path'>) => JSON.stringify(entry.path),
  byNumber: (_entry: Pick<TreeEntry, 'path'>, index: number) => `entry #${index + 1}`,
} satisfies Record<string, EntryNamer>;

/** The root an entry belongs to and its path inside it ('' for the root itself). */
export function splitEntryPath(path: string): { root: string; relative: string } {
  const slash = path.indexOf('/');
  return slash === -1 ? { root: path, relative: '' } : { root: path.slice(0, slash), relative: path.slice(slash + 1) };
}

/** Why a stored name could never be a path inside its destination; undefined when it can. */
export function pathProblem(path: string): string | undefined {
  if (path.includes('\0')) return 'has a NUL byte';
  if (path.startsWith('/')) return 'is an absolute path';
  const segments = path.split('/');
  if (segments.includes('..')) return 'has a ".." segment';
  if (segments.some((segment) => segment === '' || segment === '.')) return 'is not a normalised path (empty or "." segment)';
  return undefined;
}

/**
 * Whether a symlink at `path` (a stored name) pointing at `target` stays inside its root: the
 * target, read from the link's directory, must not climb above the root, and must not be absolute.
 */
export function symlinkStaysInRoot(path: string, target: string): boolean {
  if (target.length === 0 || target.startsWith('/') || target.includes('\0')) return false;
  const { root } = splitEntryPath(path);
  const resolved = posix.normalize(posix.join(posix.dirname(path), target));
  return resolved === root || resolved.startsWith(`${root}/`);
}

function unsafe(name: string, why: string, whatNext = 'Nothing was written outside the destination; this backup holds an entry Lifeboat does not restore'): LifeboatError {
  return new LifeboatError('UnsafeEntry', `${name} ${why}`, whatNext);
}

export interface SafetyRules {
  /** The roots a restore knows (names): an entry of any other root is refused. */
  roots: readonly string[];
  /** `keep`: symlinks pointing outside their root are restored as links (never followed). */
  symlinksOutsideRoot: 'refuse' | 'keep';
  name: EntryNamer;
}

/**
 * Refuses (UnsafeEntry, naming the first offending entry) any entry that could write outside its
 * destination: absolute paths, `..`, unknown roots, types other than file, directory, symlink and
 * hard link, symlinks out of their root (unless kept), hard links to anything but a file of the
 * same backup that comes before them. Run on the index before a single byte is written.
 */
export function assertSafeEntries(entries: readonly TreeEntry[], rules: SafetyRules): void {
  const files = new Set<string>();
  const seen = new Set<string>();
  const types = new Map(entries.map((entry) => [entry.path, entry.type]));
  entries.forEach((entry, index) => {
    const name = rules.name(entry, index);
    const problem = pathProblem(entry.path);
    if (problem) throw unsafe(name, problem);
    if (seen.has(entry.path)) throw unsafe(name, 'appears twice in the backup');
    seen.add(entry.path);
    if (!(entryTypes as readonly string[]).includes(entry.type)) throw unsafe(name, `is a ${String(entry.type)}, not a file, directory or link`);
    const { root } = splitEntryPath(entry.path);
    if (!rules.roots.includes(root)) throw unsafe(name, `belongs to no root of this target (it starts with "${root}/")`);
    const parent = posix.dirname(entry.path);
    if (parent !== '.') {
      const above = types.get(parent);
      if (above === 'symlink') throw unsafe(name, 'would be written through a symlink of the backup');
      if (above !== 'directory') throw unsafe(name, 'has no directory above it in the backup');
    }
    if (entry.type === 'symlink') {
      const target = entry.linkTarget ?? '';
      if (target.length === 0 || target.includes('\0')) throw unsafe(name, 'is a symlink without a valid target');
      if (rules.symlinksOutsideRoot === 'refuse' && !symlinkStaysInRoot(entry.path, target)) {
        throw unsafe(
          name,
          `is a symlink to ${rules.name === entryNamers.byName ? JSON.stringify(target) : 'a place'} outside its root`,
          'Nothing was written. If the backup is yours and the link is meant to point there, set `symlinksOutsideRoot: keep` on the target (links are restored as links, never followed)',
        );
      }
    }
    if (entry.type === 'hardlink') {
      if (!entry.linkTarget || !files.has(entry.linkTarget)) throw unsafe(name, 'is a hard link to something that is not a file restored before it');
    }
    if (entry.type === 'file') files.add(entry.path);
  });
}

/** A matcher of paths relative to a root, for the target's include and exclude globs. */
export function globMatcher(globs: readonly string[]): (path: string) => boolean {
  if (globs.length === 0) return () => false;
  return picomatch([...globs], { dot: true });
}

/**
 * The entries a restore of `paths` (globs over stored names) needs: those that match, everything
 * under a matching directory, the directories above them, and the files their hard links share.
 * Without paths: every entry. A glob that matches nothing is bad input.
 */
export function selectEntries(entries: readonly TreeEntry[], paths: readonly string[] | undefined): TreeEntry[] {
  if (!paths || paths.length === 0) return [...entries];
  const wanted = new Set<string>();
  for (const glob of paths) {
    const pattern = glob.replace(/^\/+/, '').replace(/\/+$/, '');
    const matches = picomatch(pattern, { dot: true });
    const matched = entries.filter((entry) => matches(entry.path));
    if (matched.length === 0) {
      throw new LifeboatError('InvalidInput', `--path ${JSON.stringify(glob)} matches no entry of the backup`, 'Names start with the root\'s name (e.g. "myapp/conf/*.yaml"); `lifeboat ls <target>` lists them. Nothing was restored');
    }
    for (const entry of matched) wanted.add(entry.path);
  }
  const directories = entries.filter((entry) => entry.type === 'directory' && wanted.has(entry.path)).map((entry) => `${entry.path}/`);
  if (directories.length > 0) for (const entry of entries) if (directories.some((dir) => entry.path.startsWith(dir))) wanted.add(entry.path);
  for (const entry of entries) if (wanted.has(entry.path) && entry.type === 'hardlink' && entry.linkTarget) wanted.add(entry.linkTarget);
  for (const path of [...wanted]) {
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent)) wanted.add(parent);
  }
  return entries.filter((entry) => wanted.has(entry.path));
}

/** The parts (object numbers) that hold these entries, in order. */
export function partsOf(entries: readonly TreeEntry[]): number[] {
  return [...new Set(entries.map((entry) => entry.part))].sort((a, b) => a - b);
}
