import { Readable } from 'node:stream';
import { z } from 'zod';
import { readTextIfAny } from '../repository/backend.js';
import type { Manifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';

/**
 * What verification remembers between runs, per repository (<target>/verify/state.json), read
 * and rewritten whole by each verify run (a few hundred bytes per backup):
 * - the cursors of rotating read-data subsets (one per t);
 * - per backup: when it was last checked and whether it was valid, and when each of its objects
 *   was last read back with the right sha256 (so "read in full" can be pieced together from
 *   subsets read over several runs);
 * - per archived WAL file: when it was last read back right.
 * It is bookkeeping, not evidence: reports (<target>/reports/) are the record of each run. Two
 * verify runs of one target at once both rewrite it; the later write wins (each run's report stays).
 */
export const verifyStateFormat = 'lifeboat.verify-state/v1';

export const verifyStateSchema = z.object({
  format: z.literal(verifyStateFormat),
  target: z.string(),
  updatedAt: z.string(),
  cursors: z.record(z.string(), z.number().int().nonnegative()),
  /** The run that last moved a cursor and where it started: a retried step reads the same slices again. */
  lastRun: z.object({ workflowId: z.string(), t: z.number().int().positive(), start: z.number().int().nonnegative() }).nullable(),
  backups: z.record(
    z.string(),
    z.object({
      checkedAt: z.string(),
      valid: z.boolean(),
      /** Object name -> when it was last read back matching its manifest. */
      objectsReadAt: z.record(z.string(), z.string()),
    }),
  ),
  /** Archived WAL file name -> when it was last read back matching its record. */
  wal: z.record(z.string(), z.string()),
});

export type VerifyState = z.output<typeof verifyStateSchema>;

export function verifyStateKey(target: string): string {
  return `${target}/verify/state.json`;
}

export function emptyVerifyState(target: string): VerifyState {
  return { format: verifyStateFormat, target, updatedAt: new Date(0).toISOString(), cursors: {}, lastRun: null, backups: {}, wal: {} };
}

/** The state, or an empty one when there is none yet or it is unreadable (it is only bookkeeping: the next run rebuilds it). */
export async function readVerifyState(repository: Repository, target: string): Promise<VerifyState> {
  const raw = await readTextIfAny(repository.backend, verifyStateKey(target));
  if (raw === undefined) return emptyVerifyState(target);
  try {
    const parsed = verifyStateSchema.safeParse(JSON.parse(raw));
    if (parsed.success && parsed.data.target === target) return parsed.data;
  } catch {
    // not JSON
  }
  return emptyVerifyState(target);
}

export async function writeVerifyState(repository: Repository, state: VerifyState): Promise<void> {
  await repository.backend.put(verifyStateKey(state.target), Readable.from([Buffer.from(`${JSON.stringify(state)}\n`)]));
}

/** When every object of the backup had last been read back right (the oldest of those times), or null. */
export function lastReadInFullAt(state: VerifyState, manifest: Pick<Manifest, 'id' | 'objects'>): string | null {
  const entry = state.backups[manifest.id];
  if (!entry) return null;
  let oldest: string | null = null;
  for (const object of manifest.objects) {
    const readAt = entry.objectsReadAt[object.name];
    if (readAt === undefined) return null;
    if (oldest === null || readAt < oldest) oldest = readAt;
  }
  return oldest;
}

/**
 * Backups that count as verified for retention: the last verification that checked them found
 * them valid, and every one of their objects has been read back with the right sha256 (in one run,
 * or over several subset runs) with no damage found since.
 */
export function verifiedBackups(state: VerifyState, manifests: ReadonlyArray<Pick<Manifest, 'id' | 'objects'>>): Set<string> {
  return new Set(manifests.filter((manifest) => state.backups[manifest.id]?.valid === true && lastReadInFullAt(state, manifest) !== null).map((m) => m.id));
}
