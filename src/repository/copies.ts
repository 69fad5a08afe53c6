import { LifeboatError } from '../errors.js';
import { isAbortError } from './backend.js';
import type { Repository } from './repository.js';

/**
 * Reading a backup back (restore, drill, PITR, a backup's own verification restore): from the
 * first repository, in the target's order, that serves it whole and intact, falling back to the
 * next one on a damaged copy (ChecksumMismatch, BackupCorrupt), a missing one (ObjectNotFound,
 * BackupNotFound: never stored there, withdrawn, or not copied yet) or an unreachable repository
 * (any untyped error: network, S3 5xx, I/O). Every kind of target reads its backups through here,
 * so the choice is made the same way for every kind.
 *
 * What is not the repository's fault ends the search at once: the run's cancellation, and typed
 * failures of input (a wrong key, a destination that exists): the next repository would fail alike.
 */

export interface CopyProblem {
  repository: string;
  /** damaged: it read back wrong; missing: it does not hold the backup; unreachable: it did not answer. */
  kind: 'damaged' | 'missing' | 'unreachable';
  error: Error;
}

export interface ReadFromCopies<T> {
  value: T;
  repository: Repository;
  /** The repositories tried before it, and why each was passed over. */
  passedOver: CopyProblem[];
}

function problemOf(repository: Repository, error: unknown): CopyProblem | undefined {
  if (!(error instanceof Error)) return undefined;
  if (isAbortError(error as unknown)) return undefined;
  if (error instanceof LifeboatError) {
    if (error.type === 'ObjectNotFound' || error.type === 'BackupNotFound') return { repository: repository.name, kind: 'missing', error };
    if (error.category === 'data') return { repository: repository.name, kind: 'damaged', error };
    return undefined;
  }
  return { repository: repository.name, kind: 'unreachable', error };
}

/**
 * Runs `read` against each repository in turn until one succeeds. `read` must leave nothing behind
 * when it fails (the next repository starts afresh). `onPassedOver` is told of each repository
 * given up on (to log it). When none succeeds: a repository that did not answer makes it a plain
 * error, retried by the step (it may answer next time); else a damaged copy makes it that typed
 * failure (the copy's own when there is one); else BackupNotFound.
 */
export async function readFromFirstGoodCopy<T>(
  repositories: Repository[],
  backup: { target: string; id: string; what?: string },
  read: (repository: Repository) => Promise<T>,
  options: { signal?: AbortSignal; onPassedOver?: (problem: CopyProblem) => void } = {},
): Promise<ReadFromCopies<T>> {
  const what = backup.what ?? `backup ${backup.id}`;
  if (repositories.length === 0) throw new LifeboatError('InvalidInput', `no repository to read ${what} of target "${backup.target}" from`);
  const passedOver: CopyProblem[] = [];
  for (const repository of repositories) {
    try {
      return { value: await read(repository), repository, passedOver };
    } catch (error) {
      const problem = options.signal?.aborted ? undefined : problemOf(repository, error);
      if (!problem) throw error;
      passedOver.push(problem);
      options.onPassedOver?.(problem);
    }
  }
  const listed = passedOver.map((p) => `"${p.repository}" ${p.kind}: ${p.error.message}`).join(' | ');
  const damaged = passedOver.filter((p) => p.kind === 'damaged');
  if (passedOver.some((p) => p.kind === 'unreachable')) {
    throw new Error(`no repository of target "${backup.target}" could serve ${what}: ${listed}`, { cause: passedOver[0]!.error });
  }
  if (damaged.length === 1 && passedOver.length === 1) throw damaged[0]!.error;
  if (damaged.length > 0) {
    const type = damaged[0]!.error instanceof LifeboatError ? damaged[0]!.error.type : 'ChecksumMismatch';
    throw new LifeboatError(type, `every copy of ${what} is damaged or missing: ${listed}`, 'Restore another backup; nothing was changed', { cause: damaged[0]!.error });
  }
  throw new LifeboatError(
    'BackupNotFound',
    `no repository of target "${backup.target}" holds ${what}: ${listed}`,
    `Run \`lifeboat backups ${backup.target}\` to see what each repository holds, or \`lifeboat copy ${backup.target} --to <repository>\` to bring one up to date`,
  );
}
