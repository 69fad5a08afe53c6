import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors.js';
import { fanOut } from '../pipeline/fan-out.js';
import { HashingPassThrough } from '../pipeline/hash.js';
import { isAbortError } from './backend.js';
import type { MissingCopy } from './manifest-envelope.js';
import type { Repository } from './repository.js';

export type { MissingCopy };

/**
 * Where one backup is being stored: the target's repositories, those dropped on the way (each
 * with the failure that dropped it), and how many copies the backup needs (the target's
 * minCopies). Every object of the backup goes through the same Landing, so a repository that
 * failed one object gets none of the next ones: it holds the backup whole or not at all.
 */
export class Landing {
  private readonly droppedCopies = new Map<string, { reason: string; error: unknown }>();
  readonly minCopies: number;

  constructor(
    readonly repositories: Repository[],
    minCopies?: number,
  ) {
    this.minCopies = Math.min(Math.max(1, minCopies ?? repositories.length), repositories.length);
  }

  /** The repositories still taking the backup, in the target's order. */
  get taking(): Repository[] {
    return this.repositories.filter((repository) => !this.droppedCopies.has(repository.name));
  }

  /** The repositories dropped, in the target's order, and why. */
  get missing(): MissingCopy[] {
    return this.repositories.flatMap(({ name }) => {
      const dropped = this.droppedCopies.get(name);
      return dropped ? [{ repository: name, reason: dropped.reason }] : [];
    });
  }

  get enough(): boolean {
    return this.taking.length >= this.minCopies;
  }

  /** Lets a repository go: the backup goes on without it, if enough others remain (see failure()). */
  drop(repository: Repository, error: unknown): void {
    if (this.droppedCopies.has(repository.name)) return;
    this.droppedCopies.set(repository.name, { reason: error instanceof Error ? error.message : String(error), error });
  }

  /**
   * Why the backup cannot go on, once fewer than minCopies repositories take it. With one
   * repository dropped (or every failure typed alike), the failure is that repository's own, typed
   * as it was (a wrong bucket is InvalidConfig, and not retried); otherwise a plain error naming
   * every repository and why, which the step retries (an unreachable repository may come back).
   */
  failure(): Error {
    const dropped = this.repositories.flatMap(({ name }) => this.droppedCopies.get(name) ?? []);
    const first = dropped[0]?.error;
    if (dropped.length === 1 && first instanceof Error) return first;
    const listed = this.missing.map((m) => `"${m.repository}": ${m.reason}`).join('; ');
    const message = `the backup reached ${this.taking.length} of ${this.repositories.length} repositories, and needs ${this.minCopies} (minCopies): ${listed}`;
    const typed = dropped.map((d) => d.error).filter((error): error is LifeboatError => error instanceof LifeboatError);
    if (typed.length === dropped.length && first instanceof LifeboatError) {
      return new LifeboatError(first.type, message, 'Fix the repositories named above and run the backup again', { cause: first });
    }
    return new Error(message, { cause: first });
  }

  /**
   * Runs `step` in every repository still taking the backup (at once); a repository where it fails
   * is dropped, named by `action`. Throws failure() once too few remain.
   */
  async each(action: (repository: Repository) => string, step: (repository: Repository) => Promise<unknown>): Promise<void> {
    await Promise.all(
      this.taking.map((repository) =>
        step(repository).catch((error: unknown) => {
          const reason = error instanceof Error ? error : new Error(String(error));
          this.drop(repository, reason instanceof LifeboatError ? reason : new Error(`${action(repository)} failed: ${reason.message}`, { cause: reason }));
        }),
      ),
    );
    if (!this.enough) throw this.failure();
  }

  /** What the manifest and the result record: where the backup landed, and where it is missing. */
  copies(): { repositories: string[]; missing: MissingCopy[] } {
    return { repositories: this.taking.map((r) => r.name), missing: this.missing };
  }
}

export interface StoreOptions {
  /** The object's key in a repository. */
  keyOf(repository: Repository): string;
  /** What storing into one repository is, for an error message: `archiving X into repository "r" (location)`. */
  action(repository: Repository): string;
  signal?: AbortSignal;
  /** An upper bound of the stored size, when known (S3 grows its parts to fit). */
  maxSizeBytes?: number;
  /** A payload object (a backup's data, not its manifest or WAL): the repository's storage class applies (S3). */
  payload?: boolean;
  /** See PutOptions.folderSyncedByNextPut: every repository gets another object into the same folder next. */
  folderSyncedByNextPut?: boolean;
}

/**
 * Streams one object through `stages` (the first is the source) into every repository at once,
 * at the pace of the slowest, hashing what is stored: one pass however many repositories there
 * are. Everything has settled when it returns or throws, so no upload still runs afterwards.
 *
 * Given repositories, each must store the object: the first that fails fails it, named.
 * Given a Landing, a repository that fails (unreachable, or failing mid-stream) is dropped from it
 * (its partial upload is discarded by its backend, as every failed put is) and the others go on;
 * it fails only once fewer than the Landing's minCopies remain (Landing.failure()).
 */
export async function storeInEvery(into: Repository[] | Landing, stages: Array<Readable | Duplex>, options: StoreOptions): Promise<{ sizeBytes: number; sha256: string }> {
  const landing = into instanceof Landing ? into : new Landing(into);
  const { signal } = options;
  if (!landing.enough) throw landing.failure();
  const repositories = landing.taking;
  const storedHash = new HashingPassThrough();
  const { sink, branches, drop } = fanOut(repositories.length);
  let stopped: Error | undefined;
  const uploads = repositories.map((repository, index) =>
    repository.backend
      .put(options.keyOf(repository), branches[index]!, {
        ...(signal ? { signal } : {}),
        ...(options.maxSizeBytes !== undefined ? { maxSizeBytes: options.maxSizeBytes } : {}),
        ...(options.payload ? { payload: true } : {}),
        ...(options.folderSyncedByNextPut ? { folderSyncedByNextPut: true } : {}),
      })
      .catch((error: unknown) => {
        // The step's cancellation, or the echo of the stream's own failure (the source's, or a
        // stop below): not this repository's failure.
        if ((isAbortError(error) && signal?.aborted) || sink.errored) throw error;
        const reason = error instanceof Error ? error : new Error(String(error));
        const named = reason instanceof LifeboatError ? reason : new Error(`${options.action(repository)} failed: ${reason.message}`, { cause: reason });
        landing.drop(repository, named);
        drop(index, named);
        if (!landing.enough) {
          stopped = landing.failure();
          sink.destroy(stopped);
        }
        throw named;
      }),
  );
  const piping = pipeline([...stages, storedHash, sink], ...(signal ? [{ signal }] : []));
  const [piped] = await Promise.allSettled([piping, ...uploads]);
  if (stopped) throw stopped;
  // The source's own failure (or the step's cancellation) fails every copy alike.
  if (piped.status === 'rejected') throw piped.reason;
  return { sizeBytes: storedHash.bytes, sha256: storedHash.sha256 };
}
