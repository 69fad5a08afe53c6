import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A private (0700) spool directory for one attempt of one step, under `parent`. Directories that
 * earlier attempts of the same step left behind (a killed worker cannot clean up) are removed
 * first: a pg_dump orphaned by a killed worker then fails instead of writing into the new one.
 */
export async function prepareSpool(parent: string, name: string, attempt: number): Promise<string> {
  await mkdir(parent, { recursive: true });
  for (const entry of await readdir(parent)) {
    if (entry === name || entry.startsWith(`${name}.attempt-`)) await rm(join(parent, entry), { recursive: true, force: true });
  }
  const directory = join(parent, `${name}.attempt-${attempt}`);
  await mkdir(directory, { mode: 0o700 });
  return directory;
}
