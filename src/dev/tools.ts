import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (where package.json lives), independent of the current directory. */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Tools installed by scripts/bootstrap.sh into the ignored .tools/ folder. */
export type ToolName = 'temporal' | 'versitygw';

export const toolsDir = join(projectRoot, '.tools');

/** Absolute path of a bootstrapped tool; throws with the command to run when it is missing. */
export function toolPath(tool: ToolName): string {
  const path = join(toolsDir, 'bin', tool);
  if (!existsSync(path)) {
    throw new Error(`${tool} is not installed at ${path}. Run \`npm run bootstrap\` (it is pinned and idempotent).`);
  }
  return path;
}
