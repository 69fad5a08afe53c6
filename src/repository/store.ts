import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors.js';
import { fanOut } from '../pipeline/fan-out.js';
import { HashingPassThrough } from '../pipeline/hash.js';
import { isAbortError } from './backend.js';
import type { Repository } from './repository.js';

export interface StoreOptions {
  /** The object's key in a repository. */
  keyOf(repository: Repository): string;
  /** What storing into one repository is, for an error message: `archiving X into repository "r" (location)`. */
  action(repository: Repository): string;
  signal?: AbortSignal;
  /** An upper bound of the stored size, when known (S3 grows its parts to fit). */
  maxSizeBytes?: number;
}

/**
 * Streams one object through `stages` (the first is the source) into every repository at once,
 * at the pace of the slowest, hashing what is stored: one pass however many repositories there
 * are. Everything has settled when it returns or throws, so no upload still runs afterwards. A
 * failure names the repository: an upload's own error, rather than the stream's echo of it.
 */
export async function storeInEvery(repositories: Repository[], stages: Array<Readable | Duplex>, options: StoreOptions): Promise<{ sizeBytes: number; sha256: string }> {
  const { signal } = options;
  const storedHash = new HashingPassThrough();
  const { sink, branches } = fanOut(repositories.length);
  const uploads = repositories.map((repository, index) =>
    repository.backend.put(options.keyOf(repository), branches[index]!, {
      ...(signal ? { signal } : {}),
      ...(options.maxSizeBytes !== undefined ? { maxSizeBytes: options.maxSizeBytes } : {}),
    }),
  );
  uploads.forEach((upload) => upload.catch((error: Error) => sink.destroy(error)));
  const piping = pipeline([...stages, storedHash, sink], ...(signal ? [{ signal }] : []));
  const outcomes = await Promise.allSettled([piping, ...uploads]);
  const failures = outcomes.flatMap((outcome, index) => (outcome.status === 'rejected' ? [{ index, reason: outcome.reason as unknown }] : []));
  if (failures.length > 0) {
    const first = failures.find(({ index, reason }) => index > 0 && !isAbortError(reason)) ?? failures[0]!;
    const repository = repositories[first.index - 1];
    const reason = first.reason instanceof Error ? first.reason : new Error(String(first.reason));
    if (repository && !(reason instanceof LifeboatError)) throw new Error(`${options.action(repository)} failed: ${reason.message}`, { cause: reason });
    throw reason;
  }
  return { sizeBytes: storedHash.bytes, sha256: storedHash.sha256 };
}
