import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResolvedSqliteTarget } from './index.js';

/** A fresh directory for a drill's scratch copy; the same run gets the same directory (idempotent). */
export async function prepareScratch(input: { target: ResolvedSqliteTarget; runName: string }): Promise<{ dir: string; databasePath: string }> {
  const dir = join(input.target.drill.scratchDir ?? tmpdir(), `lifeboat-${input.runName}`);
  await mkdir(dir, { recursive: true });
  return { dir, databasePath: join(dir, 'restored.sqlite') };
}
