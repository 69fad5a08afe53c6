import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A generated tree of uploads, the same for a given seed: many small files, some medium, a few
 * large ones (more than one 4 MiB blob), half compressible text and half random bytes, in nested
 * directories. Used by the blobs tests (a few hundred files) and the benchmark (100,000 files, 2 GiB).
 */
export interface TreeSpec {
  files: number;
  /** About this many bytes in all. */
  totalBytes: number;
  seed?: number;
  /** Files per directory. */
  perDirectory?: number;
}

/** A small deterministic PRNG (mulberry32): the tree is the same on every machine. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Sizes of `files` files adding up to about totalBytes: 90% small (about 0.2x the mean), 9%
 * medium (about 4x), 1% large (the rest, so that the total holds), like a media folder.
 */
export function fileSizes(spec: TreeSpec): number[] {
  const random = prng(spec.seed ?? 1);
  const mean = spec.totalBytes / spec.files;
  const sizes = Array.from({ length: spec.files }, (_, index) => {
    const bucket = index % 100;
    const factor = bucket === 0 ? 0 : bucket < 10 ? 4 : 0.2;
    return Math.floor(mean * factor * (0.5 + random()));
  });
  const large = sizes.map((_, index) => index).filter((index) => index % 100 === 0);
  const rest = spec.totalBytes - sizes.reduce((sum, size) => sum + size, 0);
  for (const index of large) sizes[index] = Math.max(0, Math.floor(rest / large.length));
  return sizes;
}

export function pathOf(index: number, perDirectory = 200): string {
  const directory = Math.floor(index / perDirectory);
  return `d${String(Math.floor(directory / 50)).padStart(3, '0')}/s${String(directory % 50).padStart(2, '0')}/f${String(index).padStart(6, '0')}.${index % 2 ? 'bin' : 'txt'}`;
}

const words = 'upload image video thumbnail avatar invoice report export order customer product'.split(' ');

/** The content of file `index` at `version` (a changed file gets version 1, 2, ...). */
export function contentOf(index: number, size: number, version = 0, seed = 1): Buffer {
  const random = prng(seed * 1_000_003 + index * 7919 + version * 104_729);
  const buffer = Buffer.allocUnsafe(size);
  if (index % 2 === 1) {
    const whole = size - (size % 4);
    for (let at = 0; at < whole; at += 4) buffer.writeUInt32LE((random() * 4294967296) >>> 0, at);
    for (let at = whole; at < size; at++) buffer[at] = (random() * 256) | 0;
    return buffer;
  }
  let at = 0;
  while (at < size) {
    const line = `${index}:${version} ${words[(random() * words.length) | 0]} ${words[(random() * words.length) | 0]} ${(random() * 1e6) | 0}\n`;
    at += buffer.write(line, at);
  }
  return buffer;
}

/** Writes the tree under root; returns the relative paths and sizes. */
export async function writeTree(root: string, spec: TreeSpec): Promise<Array<{ path: string; size: number }>> {
  const sizes = fileSizes(spec);
  const files = sizes.map((size, index) => ({ path: pathOf(index, spec.perDirectory), size }));
  const made = new Set<string>();
  for (let index = 0; index < files.length; index++) {
    const { path, size } = files[index]!;
    const directory = join(root, path.slice(0, path.lastIndexOf('/')));
    if (!made.has(directory)) {
      await mkdir(directory, { recursive: true });
      made.add(directory);
    }
    const handle = await open(join(root, path), 'w');
    try {
      // Large files in pieces: the generator must not hold a gigabyte either.
      for (let at = 0; at < size; at += 8 << 20) await handle.write(contentOf(index + at, Math.min(8 << 20, size - at), 0, spec.seed ?? 1));
    } finally {
      await handle.close();
    }
  }
  return files;
}

/**
 * What a tree holds, for comparing a restore with its source: every entry's type, size, mode,
 * mtime (ms) and content sha256 or link target.
 */
export async function describeTree(root: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  const walk = async (relative: string) => {
    for (const name of (await readdir(join(root, relative))).sort()) {
      const path = relative ? `${relative}/${name}` : name;
      const info = await lstat(join(root, path));
      if (info.isDirectory()) {
        result.set(path, `dir ${(info.mode & 0o7777).toString(8)}`);
        await walk(path);
      } else if (info.isSymbolicLink()) {
        result.set(path, `link ${await readlink(join(root, path))}`);
      } else {
        const sha = createHash('sha256').update(await readFile(join(root, path))).digest('hex');
        result.set(path, `file ${info.size} ${(info.mode & 0o7777).toString(8)} ${Math.floor(info.mtimeMs)} ${sha}`);
      }
    }
  };
  await walk('');
  return result;
}
