import { lstat, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SmokeCheckResult } from '../contract.js';
import { LifeboatError } from '../../errors.js';
import type { ResolvedBlobsTarget } from './index.js';
import { walkTree } from './tree.js';

/** A fresh directory for a drill's scratch tree; the same run gets the same directory (idempotent). */
export async function prepareBlobScratch(input: { target: ResolvedBlobsTarget; runName: string }): Promise<{ dir: string; treePath: string }> {
  const dir = join(input.target.drill.scratchDir ?? tmpdir(), `lifeboat-${input.runName}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return { dir, treePath: join(dir, 'tree') };
}

/**
 * The drill's checks of a restored tree: every file of the index restored with every blob's
 * sha256 matching (from the restore step's counts), the paths that must exist, the minimum
 * number of files.
 */
export async function checkBlobTree(input: {
  path: string;
  expected: { files: number; blobs: number };
  restored: { files: number; blobsChecked: number };
  mustExist: string[];
  minFiles?: number;
}): Promise<SmokeCheckResult[]> {
  const results: SmokeCheckResult[] = [];
  const timed = async (name: string, check: () => Promise<{ passed: boolean; detail: string }>) => {
    const started = Date.now();
    const outcome = await check().catch((error: Error) => ({ passed: false, detail: error.message }));
    results.push({ name, ...outcome, durationMs: Date.now() - started });
  };
  await timed('every file restored, every blob sha256 matched', async () => ({
    passed: input.restored.files === input.expected.files && input.restored.blobsChecked === input.expected.blobs,
    detail: `${input.restored.files}/${input.expected.files} files, ${input.restored.blobsChecked}/${input.expected.blobs} blobs checked`,
  }));
  for (const path of input.mustExist) {
    await timed(`${path} exists`, async () => {
      const info = await lstat(join(input.path, path)).catch(() => undefined);
      return { passed: info !== undefined, detail: info ? `${info.isDirectory() ? 'directory' : `${info.size} bytes`}` : 'missing' };
    });
  }
  if (input.minFiles !== undefined) {
    const minFiles = input.minFiles;
    await timed(`at least ${minFiles} files`, async () => ({ passed: input.restored.files >= minFiles, detail: `${input.restored.files} files` }));
  }
  return results;
}

/** After a restore in place: the live root is the restored tree (a directory with at least its files; the application may add more). */
export async function verifyLiveTree(input: { path: string; files: number }): Promise<{ files: number }> {
  const { entries } = await walkTree(input.path);
  const files = entries.filter((entry) => entry.t === 'f').length;
  if (files < input.files) throw new LifeboatError('VerificationFailed', `${input.path} holds ${files} files after the swap, the backup ${input.files}`, 'The restore rolled back; check what changed the tree meanwhile');
  return { files };
}
