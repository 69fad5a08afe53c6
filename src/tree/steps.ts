/**
 * The steps (activities) of directory-tree runbooks, shared by the `files` and `secrets` kinds:
 * each kind registers them under its own names (src/kinds/<kind>/activities.ts) with its policy,
 * and maps what they return to its own results (secrets: numbers only, never a name).
 */
import { Context, log } from '@temporalio/activity';
import { lstat, mkdir, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { LifeboatError } from '../errors.js';
import { compressionInfo } from '../pipeline/compress.js';
import { decryptionKeyFor, keyId, loadKeyFile } from '../pipeline/encrypt.js';
import { fsyncPath } from '../pipeline/local-file.js';
import type { StoredObject } from '../repository/manifest-envelope.js';
import { startProgress } from '../../activities/progress.js';
import { openRepositories } from '../../activities/repositories.js';
import { clearUnfinishedBackup } from '../../activities/repository.js';
import { entryNamers, type EntryNamer } from './entry.js';
import { packTree, type PartRecord } from './pack.js';
import { restoreTree, verifyTree, type RestoredTree, type TreeBackup } from './restore.js';
import { runTreeSmokeChecks } from './smoke.js';
import { removeStaging } from './swap.js';
import type { ResolvedTreeTarget } from './target.js';
import type { SkippedEntry } from './walk.js';
import type { SmokeCheckResult } from '../kinds/contract.js';

/** How a kind treats names: `secret` ones never leave the encrypted payload (errors, logs, results). */
export interface TreePolicy {
  secret: boolean;
}

const namerOf = (policy: TreePolicy): EntryNamer => (policy.secret ? entryNamers.byNumber : entryNamers.byName);
const runsAsRoot = () => process.getuid?.() === 0;
const exists = (path: string) => lstat(path).then(() => true, () => false);

/** What the pack step found and stored, names included: the kind decides what of it leaves the step. */
export interface PackedBackup {
  snapshotAt: string;
  counts: { roots: Array<{ name: string; path: string }>; entries: number; files: number; directories: number; symlinks: number; hardlinks: number; bytes: number };
  changedWhileRead: string[];
  skipped: SkippedEntry[];
  parts: PartRecord[];
  index: StoredObject & { entries: number };
  compression: { algorithm: 'zstd'; level: number; implementation: string; version: string };
  encryption: { algorithm: string; keyId: string } | null;
  tools: Record<string, string>;
  repositories: string[];
}

/**
 * One pass over the roots into every repository (src/tree/pack.ts). Safe to run again: it first
 * clears what earlier attempts stored under this backup id, and stores under the attempt's own names (attempt-<n>/). Secrets: refused without an
 * encryption key before a single file is read.
 */
export async function packAndUpload(input: { target: ResolvedTreeTarget; backupId: string }, env: NodeJS.ProcessEnv, policy: TreePolicy): Promise<PackedBackup> {
  const { target, backupId } = input;
  if (policy.secret && !target.encryption) {
    throw new LifeboatError('EncryptionRequired', `target "${target.name}" is a secrets target and the config has no encryption.keyFile: nothing was read`, 'Configure encryption.keyFile; secrets are never stored unencrypted');
  }
  const context = Context.current();
  const repositories = openRepositories(target, env);
  const key = target.encryption ? await loadKeyFile(target.encryption.keyFile) : undefined;
  const progress = startProgress('walk', 0);
  try {
    await clearUnfinishedBackup(repositories, target.name, backupId, context.info.attempt);
    const snapshotAt = new Date().toISOString();
    const packed = await packTree({
      repositories,
      target: target.name,
      backupId,
      roots: target.roots,
      selection: { include: target.include, exclude: target.exclude },
      symlinksOutsideRoot: target.symlinksOutsideRoot,
      partSizeBytes: target.partSizeMiB * 2 ** 20,
      compression: target.compression,
      key,
      attempt: context.info.attempt,
      name: namerOf(policy),
      signal: context.cancellationSignal,
      onTotal: (bytes) => progress.set({ phase: 'pack', bytesTotal: bytes }),
      onProgress: (bytes) => progress.update(bytes),
    });
    const count = (type: string) => packed.entries.filter((entry) => entry.type === type).length;
    const counts = {
      roots: target.roots.map((root) => ({ name: root.name, path: root.path })),
      entries: packed.entries.length,
      files: count('file'),
      directories: count('directory'),
      symlinks: count('symlink'),
      hardlinks: count('hardlink'),
      bytes: packed.entries.reduce((sum, entry) => sum + (entry.type === 'file' ? entry.size : 0), 0),
    };
    log.info('tree packed', { target: target.name, backupId, entries: counts.entries, bytes: counts.bytes, parts: packed.parts.length, changedWhileRead: packed.changedWhileRead.length, skipped: packed.skipped.length });
    const compression = await compressionInfo();
    return {
      snapshotAt,
      counts,
      changedWhileRead: packed.changedWhileRead,
      skipped: packed.skipped,
      parts: packed.parts,
      index: { ...packed.index, entries: packed.entries.length },
      compression: { algorithm: 'zstd', level: target.compression.level, implementation: compression.implementation, version: compression.version },
      encryption: key ? { algorithm: 'aes-256-gcm-chunked', keyId: keyId(key) } : null,
      tools: { node: process.version, zstd: compression.version, tar: 'tar-stream 3.2.2 (pax)' },
      repositories: repositories.map((r) => r.name),
    };
  } finally {
    progress.stop();
  }
}

export interface FetchTreeInput {
  target: ResolvedTreeTarget;
  manifest: TreeBackup;
  /** Where each root's tree goes, by root name (staging or scratch: directories of this run alone). */
  destinations: Record<string, string>;
  /** A directory made fresh for the destinations (restore --into's partial directory, a drill's scratch). */
  container?: string;
  /** restore --into: refused (before anything is fetched) when it is relative or exists. */
  into?: string;
  paths?: string[];
}

/** Downloads and writes the entries asked for, each file's sha256 checked; leftovers of an earlier attempt are cleared first. */
export async function fetchTree(input: FetchTreeInput, env: NodeJS.ProcessEnv, policy: TreePolicy): Promise<RestoredTree> {
  const { target, manifest } = input;
  if (input.into !== undefined) {
    const refuse = (why: string) => new LifeboatError('InvalidInput', `--into ${input.into} ${why}`, 'Choose a path that does not exist yet; nothing was changed');
    if (!isAbsolute(input.into)) throw refuse('is not an absolute path (it would be relative to the worker\'s directory)');
    if (await exists(input.into)) throw refuse('already exists: a restore --into makes a new directory');
  }
  const key = await decryptionKeyFor(target, manifest);
  const made = input.container ? [input.container] : Object.values(input.destinations);
  await removeStaging({ paths: made });
  if (input.container) await mkdir(input.container, { recursive: true, mode: 0o700 });
  const repositories = openRepositories(target, env);
  const progress = startProgress('fetch', 0);
  try {
    const restored = await restoreTree({
      repositories,
      backup: manifest,
      key,
      destinations: input.destinations,
      ...(input.paths ? { paths: input.paths } : {}),
      symlinksOutsideRoot: target.symlinksOutsideRoot,
      name: namerOf(policy),
      secret: policy.secret,
      owners: runsAsRoot(),
      signal: Context.current().cancellationSignal,
      onTotal: (bytes) => progress.set({ bytesTotal: bytes }),
      onProgress: (bytes) => progress.update(bytes),
    });
    log.info('tree restored and verified', { backupId: manifest.id, entries: restored.entries, files: restored.files, parts: `${restored.partsFetched}/${restored.partsInBackup}` });
    return restored;
  } finally {
    progress.stop();
  }
}

/** restore --into: the verified tree takes its final name. Done already when only the final name is there (an earlier attempt got that far). */
export async function publishTree(input: { from: string; to: string }): Promise<{ adopted: boolean }> {
  if (!(await exists(input.from))) {
    if (await exists(input.to)) return { adopted: true };
    throw new Error(`the restored tree ${input.from} is gone and ${input.to} does not exist; the restore must fetch again`);
  }
  if (await exists(input.to)) throw new LifeboatError('InvalidInput', `--into ${input.to} appeared while the restore ran`, `The restored tree is left at ${input.from}`);
  await rename(input.from, input.to);
  await fsyncPath(dirname(input.to));
  return { adopted: false };
}

/** Checks what a restore in place put live, entry by entry, against the index. */
export async function verifyPlaced(input: { target: ResolvedTreeTarget; manifest: TreeBackup; places: Record<string, string>; paths?: string[] }, env: NodeJS.ProcessEnv, policy: TreePolicy) {
  const key = await decryptionKeyFor(input.target, input.manifest);
  const progress = startProgress('verify', 0);
  try {
    return await verifyTree({ repositories: openRepositories(input.target, env), backup: input.manifest, key, places: input.places, ...(input.paths ? { paths: input.paths } : {}), name: namerOf(policy) });
  } finally {
    progress.stop();
  }
}

/** A private scratch directory for a drill (the same run gets the same one). */
export async function prepareScratch(input: { target: ResolvedTreeTarget; runName: string }): Promise<{ dir: string }> {
  const dir = join(input.target.drill.scratchDir ?? tmpdir(), `lifeboat-${input.runName}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return { dir };
}

export async function runSmokeChecks(
  input: { target: ResolvedTreeTarget; dir: string; restored: { entries: number; files: number; bytes: number } },
  policy: TreePolicy,
): Promise<SmokeCheckResult[]> {
  return runTreeSmokeChecks({
    dir: input.dir,
    mustExist: policy.secret ? [] : input.target.drill.mustExist,
    commands: input.target.drill.commands,
    restored: input.restored,
    secret: policy.secret,
  });
}

export { removeStaging };
export { rollbackTrees, swapTrees } from './swap.js';
export type { RestoredTree };
