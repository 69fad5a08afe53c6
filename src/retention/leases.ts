import { Readable } from 'node:stream';
import { z } from 'zod';
import { mapInParallel } from '../in-parallel.js';
import { readTextIfAny } from '../repository/backend.js';
import type { Repository } from '../repository/repository.js';

/**
 * Leases: how a run that reads a backup keeps retention from removing it under its feet.
 *
 *   <target>/leases/<backupId>/<holder>.json    one run uses one backup
 *   <target>/leases/_all/<holder>.json          one run uses every backup of the target (verify)
 *
 * A reader writes its lease BEFORE it reads (or reads again) the manifest; retention removes the
 * manifest first and only then looks for leases before it removes any object. So either the
 * reader finds the manifest gone (and picks another backup or fails cleanly), or retention finds
 * the lease (and leaves the objects for a later run): there is no order of events in which a
 * reader holds a manifest whose objects are being deleted.
 *
 * A lease needs no release step: it counts while the Temporal run that wrote it is open, asked at
 * the moment retention looks (a crashed or finished run never pins a backup), and, when Temporal
 * cannot be asked (another namespace, the server unreachable), until its expiresAt. Dead leases
 * are removed by retention.
 *
 * Why in the repository rather than a lock on Temporal: the repository is the one thing every
 * reader shares: runs in other namespaces or on other Temporal clusters (a DR site restoring from
 * the same bucket), several workers, and readers outside Temporal (a CLI or a script reading a
 * backup by hand can write one with an expiry). A Temporal-side lock would also need retention
 * and every reader to be serialised through one workflow per target, which a schedule's overlap
 * policy or a second cluster cannot guarantee; the repository needs nothing but its own ordering.
 */

/** The folder name of a lease on every backup of the target. */
export const allBackups = '_all';

export const leaseFormat = 'lifeboat.lease/v1';

export const leaseSchema = z.object({
  format: z.literal(leaseFormat),
  target: z.string(),
  /** A backup id, or "_all". */
  backupId: z.string(),
  /** Who holds it: a workflow id (or any name a reader outside Temporal chooses). */
  holder: z.string().min(1),
  runId: z.string().optional(),
  /** restore, drill, pitr, verify, copy ... */
  runbook: z.string(),
  namespace: z.string().optional(),
  createdAt: z.string(),
  /** The lease counts until then when Temporal cannot say whether the run is still open. */
  expiresAt: z.string(),
});

export type Lease = z.output<typeof leaseSchema>;

/** Leases without an answer from Temporal count this long (a runbook's longest run from the CLI). */
export const leaseFallbackTtlMs = 24 * 3_600_000;

export function leaseKey(target: string, backupId: string, holder: string): string {
  return `${target}/leases/${backupId}/${encodeURIComponent(holder)}.json`;
}

export async function writeLease(repository: Repository, lease: Lease): Promise<void> {
  const body = Buffer.from(`${JSON.stringify(lease, null, 2)}\n`);
  await repository.backend.put(leaseKey(lease.target, lease.backupId, lease.holder), Readable.from([body]));
}

export async function removeLease(repository: Repository, lease: Pick<Lease, 'target' | 'backupId' | 'holder'>): Promise<void> {
  await repository.backend.delete(leaseKey(lease.target, lease.backupId, lease.holder));
}

/** Every lease of the target in this repository (a damaged lease file counts as a lease that never expires, to be safe). */
export async function listLeases(repository: Repository, target: string): Promise<Array<{ key: string; lease: Lease | undefined }>> {
  const prefix = `${target}/leases/`;
  const objects = (await repository.backend.list(prefix)).filter((object) => object.key.endsWith('.json'));
  return mapInParallel(objects, 16, async ({ key }) => {
    const raw = await readTextIfAny(repository.backend, key);
    if (raw === undefined) return { key, lease: undefined }; // released meanwhile
    try {
      const parsed = leaseSchema.safeParse(JSON.parse(raw));
      if (parsed.success) return { key, lease: parsed.data };
    } catch {
      // not JSON: handled below
    }
    const [backupId = '?', file = '?'] = key.slice(prefix.length).split('/');
    const now = new Date().toISOString();
    return {
      key,
      lease: {
        format: leaseFormat,
        target,
        backupId,
        holder: decodeURIComponent(file.replace(/\.json$/, '')),
        runbook: 'unknown (unreadable lease)',
        createdAt: now,
        expiresAt: '9999-12-31T23:59:59.999Z',
      },
    };
  });
}

/** Whether the run holding a lease is still open: true, false, or undefined when that cannot be told. */
export type RunOracle = (lease: Lease) => Promise<boolean | undefined>;

export interface LeaseCensus {
  /** Backup id (or "_all") -> holders of live leases on it. */
  live: Map<string, string[]>;
  /** Leases whose run has ended (or whose expiry passed): safe to delete. */
  dead: Array<{ key: string; lease: Lease }>;
}

/** Sorts the target's leases into live and dead, asking `isOpen` once per holder. */
export async function censusOfLeases(repository: Repository, target: string, isOpen: RunOracle, now: Date): Promise<LeaseCensus> {
  const leases = await listLeases(repository, target);
  const answers = new Map<string, Promise<boolean | undefined>>();
  const census: LeaseCensus = { live: new Map(), dead: [] };
  for (const { key, lease } of leases) {
    if (!lease) continue;
    const cacheKey = `${lease.namespace ?? ''}\u0000${lease.holder}\u0000${lease.runId ?? ''}`;
    let answer = answers.get(cacheKey);
    if (!answer) {
      answer = isOpen(lease).catch(() => undefined);
      answers.set(cacheKey, answer);
    }
    const open = await answer;
    const alive = open ?? Date.parse(lease.expiresAt) > now.getTime();
    if (alive) census.live.set(lease.backupId, [...(census.live.get(lease.backupId) ?? []), lease.holder]);
    else census.dead.push({ key, lease });
  }
  return census;
}

/** The holders keeping backupId in use: leases on it and leases on every backup. */
export function holdersOf(census: Pick<LeaseCensus, 'live'>, backupId: string): string[] {
  return [...(census.live.get(backupId) ?? []), ...(census.live.get(allBackups) ?? [])];
}
