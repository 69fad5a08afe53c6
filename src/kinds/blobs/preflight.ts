import { constants } from 'node:fs';
import { access, opendir, stat } from 'node:fs/promises';
import { Finding } from '../../check/result.js';
import type { PreflightContext } from '../contract.js';
import type { BlobsTargetConfig } from './config.js';

/**
 * `lifeboat check` of a blobs target: its root is a directory this user can list and read (a
 * backup would fail with SourceNotFound or EACCES otherwise), and the drill's scratch directory,
 * when set, exists. Run where the worker runs, as its user, to check what the worker will see.
 */
export async function preflightBlobs(name: string, target: BlobsTargetConfig, context: PreflightContext): Promise<void> {
  const where = `targets.${name}.path`;
  await context.check(
    'source',
    `${name}: ${target.path}`,
    context.timeoutMs,
    async () => {
      const info = await stat(target.path).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') throw new Finding(`${target.path} does not exist`, `Create it, or point ${where} at the directory that holds the uploads`);
        throw error;
      });
      if (!info.isDirectory()) throw new Finding(`${target.path} is not a directory`, `A blobs target's path is the directory that holds the uploads: fix ${where}`);
      await access(target.path, constants.R_OK | constants.X_OK).catch(() => {
        throw new Finding(`${target.path} cannot be listed by this user (uid ${process.getuid?.() ?? '?'})`, 'Run the worker as a user that can read the tree (root, or a group that owns it), or grant read access');
      });
      let entries = 0;
      const directory = await opendir(target.path);
      for await (const _entry of directory) if (++entries >= 1000) break;
      return `a directory this user can read (${entries >= 1000 ? 'at least 1000' : entries} entries at its top level)`;
    },
    (error) => `Check ${where} and who may read it: ${(error as Error).message}`,
  );
  const scratch = target.drill.scratchDir;
  if (scratch) {
    await context.check(
      'source',
      `${name}: drill.scratchDir ${scratch}`,
      context.timeoutMs,
      async () => {
        const info = await stat(scratch).catch(() => undefined);
        if (!info?.isDirectory()) throw new Finding(`${scratch} is not a directory`, `Create it, or change targets.${name}.drill.scratchDir (default: the system temp dir)`);
        await access(scratch, constants.W_OK).catch(() => {
          throw new Finding(`${scratch} is not writable by this user`, 'A drill restores its scratch tree there: give the worker\'s user write access');
        });
        return 'a directory this user can write';
      },
      (error) => (error as Error).message,
    );
  }
}
