/**
 * The smoke checks of a drill of a directory tree, run on the copy restored into scratch: the
 * files that must exist, and commands run in the restored directory that must succeed. Never
 * throws for a failed check: the drill reports pass or fail per check.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { SmokeCheckResult } from '../kinds/contract.js';
import { pathProblem } from './entry.js';

export interface DrillCommand {
  name: string;
  run: string;
  timeoutSeconds: number;
}

export interface TreeSmokeInput {
  /** The scratch directory: each root's restored tree is `<dir>/<root name>`. */
  dir: string;
  mustExist: readonly string[];
  commands: readonly DrillCommand[];
  /** What the restore checked: every file's sha256 against the index. */
  restored: { entries: number; files: number; bytes: number };
  /** Secrets: details never quote a command's output (it could print a secret). */
  secret: boolean;
}

export async function runTreeSmokeChecks(input: TreeSmokeInput): Promise<SmokeCheckResult[]> {
  const results: SmokeCheckResult[] = [
    { name: 'every file hashes to its sha256', passed: true, detail: `${input.restored.files} files (${input.restored.bytes} bytes) in ${input.restored.entries} entries match the index`, durationMs: 0 },
  ];
  for (const path of input.mustExist) {
    const started = Date.now();
    const problem = pathProblem(path);
    const stats = problem ? undefined : await lstat(join(input.dir, path)).catch(() => undefined);
    results.push({
      name: `${path} exists`,
      passed: stats !== undefined,
      detail: problem ? `not a path inside the backup: it ${problem}` : stats ? (stats.isDirectory() ? 'a directory' : stats.isSymbolicLink() ? 'a symlink' : `${stats.size} bytes`) : 'missing from the restored copy',
      durationMs: Date.now() - started,
    });
  }
  for (const command of input.commands) {
    const started = Date.now();
    const result = await execa(command.run, {
      shell: true,
      cwd: input.dir,
      reject: false,
      all: true,
      timeout: command.timeoutSeconds * 1000,
      env: { LIFEBOAT_RESTORED_DIR: input.dir },
    });
    const how = result.timedOut ? `timed out after ${command.timeoutSeconds}s` : `exited with ${result.exitCode ?? result.signal}`;
    const output = input.secret ? '' : String(result.all ?? '').trim().split('\n').slice(-3).join(' | ').slice(0, 300);
    results.push({ name: command.name, passed: !result.failed, detail: output ? `${how}: ${output}` : how, durationMs: Date.now() - started });
  }
  return results;
}
