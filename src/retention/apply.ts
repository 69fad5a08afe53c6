import { Readable } from 'node:stream';
import { isBackupId } from '../backup-id.js';
import { mapInParallel } from '../in-parallel.js';
import { listWal, readHistories, type WalListing } from '../postgres/wal-listing.js';
import { walObjectKey, walRecordKey } from '../postgres/wal-archive.js';
import { analyseWal, walRemoval, type BaseBackupWal, type TimelineHistory, type WalAnalysis, type WalRemoval } from '../postgres/wal-window.js';
import { readTextIfAny } from '../repository/backend.js';
import type { Manifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { readVerifyState, verifiedBackups } from '../verify/state.js';
import { readCatalog, type RepositoryCatalog } from './catalog.js';
import { censusOfLeases, holdersOf, type LeaseCensus, type RunOracle } from './leases.js';
import { describePolicy, planRetention, type PlannedBackup, type RetentionPolicy } from './plan.js';

/**
 * Retention in one repository: what is there (backups, leases, verification state, WAL), the plan
 * for it, and carrying a plan out safely:
 *
 * - a backup goes manifest first (from then on it is not listed, so it is never listed and
 *   broken), and its objects only after no live lease holds it; a deletion intent
 *   (<target>/retention/deleting/<id>.json) written before the manifest goes lets the next run
 *   finish what a killed worker left;
 * - a folder without a manifest whose backup id is older than the grace period is a dead upload;
 * - archived WAL before the start of the oldest base backup that stays (or stays in use) goes,
 *   record first, like a manifest.
 */

export const defaultDeadUploadAfterHours = 48;

export interface DeadUploadDecision {
  id: string;
  action: 'remove' | 'keep';
  reason: string;
}

export interface WalPlan {
  /** Archived files (with a record) now. */
  archived: number;
  remove: number;
  cutoff: WalRemoval['cutoff'];
  /** The recoverable window now, and once the plan is carried out. */
  before: WalAnalysis['window'];
  after: WalAnalysis['window'];
}

export interface RepositoryRetentionPlan {
  repository: string;
  policy: RetentionPolicy;
  /** The policy in words. */
  description: string;
  /** Every complete backup, newest first, with keep or remove and every reason. */
  backups: PlannedBackup[];
  /** Backups whose manifest cannot be read: left as they are (verify names them). */
  unreadable: Array<{ id: string; problem: string }>;
  /** Folders without a manifest. */
  deadUploads: DeadUploadDecision[];
  /** Backups an earlier run had begun to remove (manifest gone): finished now. */
  pendingDeletions: string[];
  /** PostgreSQL targets with archived WAL or base backups. */
  wal: WalPlan | null;
  leases: { live: Record<string, string[]>; dead: number };
}

/** Everything a plan is made from, read from one repository. */
export interface RetentionState {
  catalog: RepositoryCatalog;
  census: LeaseCensus;
  verified: Set<string>;
  pendingDeletions: DeletionIntent[];
  wal: { listing: WalListing; histories: TimelineHistory[] } | null;
}

export function deletionIntentKey(target: string, backupId: string): string {
  return `${target}/retention/deleting/${backupId}.json`;
}

/** What a deletion intent records: the backup, and for a base backup where its WAL starts (its manifest is gone once the intent matters). */
interface DeletionIntent {
  backupId: string;
  since: string;
  base?: BaseBackupWal;
}

async function listPendingDeletions(repository: Repository, target: string): Promise<DeletionIntent[]> {
  const { objects } = await repository.backend.listFolder(`${target}/retention/deleting/`);
  return mapInParallel(objects, 16, async ({ key }) => {
    const backupId = key.split('/').at(-1)!.replace(/\.json$/, '');
    const raw = await readTextIfAny(repository.backend, key);
    try {
      const parsed = JSON.parse(raw ?? '{}') as Partial<DeletionIntent>;
      return { backupId, since: parsed.since ?? '', ...(parsed.base ? { base: parsed.base } : {}) };
    } catch {
      return { backupId, since: '' };
    }
  });
}

export async function readRetentionState(repository: Repository, target: string, isOpen: RunOracle, now: Date): Promise<RetentionState> {
  const [catalog, census, verifyState, pendingDeletions, listing] = await Promise.all([
    readCatalog(repository, target),
    censusOfLeases(repository, target, isOpen, now),
    readVerifyState(repository, target),
    listPendingDeletions(repository, target),
    listWal(repository, target),
  ]);
  const hasWal = listing.archived.length > 0 || catalog.backups.some((m) => m.kind === 'postgres-base');
  return {
    catalog,
    census,
    verified: verifiedBackups(verifyState, catalog.backups),
    pendingDeletions,
    wal: hasWal ? { listing, histories: (await readHistories(repository, target, listing.archived)).histories } : null,
  };
}

/** The start of a backup as its id says (ids begin with the UTC second it started). */
function startOfBackupId(id: string): Date | undefined {
  if (!isBackupId(id)) return undefined;
  const t = id.slice(0, 16);
  return new Date(`${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(9, 11)}:${t.slice(11, 13)}:${t.slice(13, 15)}Z`);
}

function baseWalOf(manifest: Manifest): BaseBackupWal | undefined {
  return manifest.kind === 'postgres-base'
    ? { id: manifest.id, timeline: manifest.base.timeline, startLsn: manifest.base.startLsn, stopLsn: manifest.base.stopLsn, stopTime: manifest.base.stopTime }
    : undefined;
}

function segmentSizeOf(manifests: Manifest[]): number {
  for (const manifest of manifests) if (manifest.kind === 'postgres-base') return manifest.source.walSegmentSizeBytes;
  return 16 * 1024 * 1024;
}

/** The plan for one repository (pure, given its state). */
export function planRepository(repository: string, state: RetentionState, policy: RetentionPolicy, options: { now: Date; deadUploadAfterHours: number }): RepositoryRetentionPlan {
  const { catalog, census } = state;
  const inUse = new Map(catalog.backups.map((m) => [m.id, holdersOf(census, m.id)] as const).filter(([, holders]) => holders.length > 0));
  const backups = planRetention(
    catalog.backups.map((m) => ({ id: m.id, group: m.kind, time: m.snapshotAt })),
    policy,
    { now: options.now, verified: state.verified, inUse },
  );
  const pending = new Set(state.pendingDeletions.map((intent) => intent.backupId));
  const graceMs = options.deadUploadAfterHours * 3_600_000;
  const deadUploads = catalog.incomplete
    .filter((id) => !pending.has(id))
    .map((id): DeadUploadDecision => {
      const started = startOfBackupId(id);
      const holders = holdersOf(census, id);
      if (!started) return { id, action: 'keep', reason: 'not a backup id: not Lifeboat\'s, left alone' };
      if (holders.length) return { id, action: 'keep', reason: `no manifest, but in use by ${holders.join(', ')}` };
      const age = options.now.getTime() - started.getTime();
      return age > graceMs
        ? { id, action: 'remove', reason: `no manifest, started ${started.toISOString()}: a dead upload (older than ${options.deadUploadAfterHours} h)` }
        : { id, action: 'keep', reason: `no manifest yet, started ${started.toISOString()}: may still be running (younger than ${options.deadUploadAfterHours} h)` };
    });

  let wal: WalPlan | null = null;
  if (state.wal) {
    const segmentSizeBytes = segmentSizeOf(catalog.backups);
    const allBases = catalog.backups.flatMap((m) => baseWalOf(m) ?? []);
    const keptIds = new Set(backups.filter((b) => b.action === 'keep').map((b) => b.id));
    const keptBases = allBases.filter((b) => keptIds.has(b.id));
    const removal = walRemoval(state.wal.listing.archived, keptBases, segmentSizeBytes);
    const removed = new Set(removal.remove);
    const analyse = (names: string[], bases: BaseBackupWal[]) => analyseWal({ names, histories: state.wal!.histories, bases, segmentSizeBytes }).window;
    wal = {
      archived: state.wal.listing.archived.length,
      remove: removal.remove.length,
      cutoff: removal.cutoff,
      before: analyse(state.wal.listing.archived, allBases),
      after: analyse(state.wal.listing.archived.filter((name) => !removed.has(name)), keptBases),
    };
  }
  return {
    repository,
    policy,
    description: describePolicy(policy),
    backups,
    unreadable: catalog.unreadable,
    deadUploads,
    pendingDeletions: state.pendingDeletions.map((intent) => intent.backupId),
    wal,
    leases: { live: Object.fromEntries(census.live), dead: census.dead.length },
  };
}

export interface RepositoryRetentionOutcome {
  repository: string;
  /** Backups removed by this run (manifest and objects). */
  removed: string[];
  /** Backups whose manifest was removed but whose objects wait for the runs using them (finished by a later run). */
  deferred: Array<{ id: string; holders: string[] }>;
  /** Backups the approved plan would remove but the state at removal time keeps, and why. */
  keptAfterAll: Array<{ id: string; reasons: string[] }>;
  /** Removals an earlier, interrupted run had begun, finished now. */
  finishedEarlier: string[];
  deadUploadsRemoved: string[];
  wal: { removed: number; cutoff: WalRemoval['cutoff'] } | null;
  deadLeasesRemoved: number;
}

export interface ApplyOptions {
  now: Date;
  deadUploadAfterHours: number;
  isOpen: RunOracle;
  onProgress?: (progress: { phase: string; done: number; total: number }) => void;
}

/**
 * Carries out the approved removals in one repository, re-checked against the state right now: a
 * backup is removed only if both the approved plan and a plan made now remove it (a backup that
 * became the newest verified one, or was taken into use meanwhile, stays). Idempotent: run again
 * after a killed worker, it finishes what was begun (deletion intents) and does nothing twice.
 */
export async function applyRetention(
  repository: Repository,
  target: string,
  policy: RetentionPolicy,
  approved: { remove: readonly string[]; deadUploads: readonly string[] },
  options: ApplyOptions,
): Promise<RepositoryRetentionOutcome> {
  const progress = (phase: string, done: number, total: number) => options.onProgress?.({ phase, done, total });
  progress('plan', 0, 0);
  const state = await readRetentionState(repository, target, options.isOpen, options.now);
  const fresh = planRepository(repository.name, state, policy, options);
  const freshById = new Map(fresh.backups.map((b) => [b.id, b]));
  const removeNow = approved.remove.filter((id) => freshById.get(id)?.action === 'remove');
  const keptAfterAll = approved.remove.flatMap((id) => {
    const now = freshById.get(id);
    return now && now.action === 'keep' ? [{ id, reasons: now.reasons }] : [];
  });

  // Manifests first, each behind a deletion intent; an earlier run's intents whose manifest is
  // still there are dropped (the plan decides again), the others are finished below.
  const manifests = new Map(state.catalog.backups.map((m) => [m.id, m]));
  const earlier = state.pendingDeletions.filter((intent) => !manifests.has(intent.backupId));
  for (const intent of state.pendingDeletions.filter((i) => manifests.has(i.backupId) && !removeNow.includes(i.backupId))) {
    await repository.backend.delete(deletionIntentKey(target, intent.backupId));
  }
  let done = 0;
  await mapInParallel(removeNow, 16, async (id) => {
    const base = baseWalOf(manifests.get(id)!);
    const intent: DeletionIntent = { backupId: id, since: options.now.toISOString(), ...(base ? { base } : {}) };
    await repository.backend.put(deletionIntentKey(target, id), Readable.from([Buffer.from(`${JSON.stringify({ target, ...intent })}\n`)]));
    await repository.backend.delete(repository.manifestKey(target, id));
    progress('withdraw manifests', ++done, removeNow.length);
  });

  // Only now look for leases: a reader leases before it reads a manifest, so any reader of these
  // backups either holds a lease seen here or found the manifest gone.
  const census = await censusOfLeases(repository, target, options.isOpen, options.now);
  const toDelete = [...new Set([...removeNow, ...earlier.map((intent) => intent.backupId)])];
  const deferred: RepositoryRetentionOutcome['deferred'] = [];
  const removed: string[] = [];
  done = 0;
  await mapInParallel(toDelete, 4, async (id) => {
    const holders = holdersOf(census, id);
    if (holders.length) {
      deferred.push({ id, holders });
    } else {
      await repository.discardUnfinishedBackup(target, id);
      await repository.backend.delete(deletionIntentKey(target, id));
      removed.push(id);
    }
    progress('delete objects', ++done, toDelete.length);
  });

  // Dead uploads: approved, still dead now, not in use.
  const deadNow = new Set(fresh.deadUploads.filter((d) => d.action === 'remove').map((d) => d.id));
  const deadUploadsRemoved: string[] = [];
  for (const id of approved.deadUploads.filter((id) => deadNow.has(id) && holdersOf(census, id).length === 0)) {
    try {
      await repository.discardUnfinishedBackup(target, id);
      deadUploadsRemoved.push(id);
    } catch (error) {
      // It got its manifest meanwhile: a backup after all.
      if (!(error instanceof Error && /already has a manifest/.test(error.message))) throw error;
    }
  }

  // WAL before the oldest base backup that stays: kept, or removed but still in use (its start is
  // in its deletion intent once the manifest is gone).
  let wal: RepositoryRetentionOutcome['wal'] = null;
  if (state.wal) {
    const deferredIds = new Set(deferred.map((d) => d.id));
    const removedIds = new Set(removeNow.filter((id) => !deferredIds.has(id)));
    const staying = [
      ...state.catalog.backups.filter((m) => !removedIds.has(m.id)).flatMap((m) => baseWalOf(m) ?? []),
      ...earlier.filter((intent) => deferredIds.has(intent.backupId)).flatMap((intent) => intent.base ?? []),
    ];
    const listing = await listWal(repository, target);
    const removal = walRemoval([...listing.archived, ...listing.unrecorded], staying, segmentSizeOf(state.catalog.backups));
    done = 0;
    await mapInParallel(removal.remove, 16, async (name) => {
      await repository.backend.delete(walRecordKey(target, name));
      await repository.backend.delete(walObjectKey(target, name));
      progress('delete WAL', ++done, removal.remove.length);
    });
    wal = { removed: removal.remove.length, cutoff: removal.cutoff };
  }

  await mapInParallel(census.dead, 16, ({ key }) => repository.backend.delete(key));
  return {
    repository: repository.name,
    removed: removed.sort().reverse(),
    deferred,
    keptAfterAll,
    finishedEarlier: earlier.map((intent) => intent.backupId).filter((id) => removed.includes(id)),
    deadUploadsRemoved,
    wal,
    deadLeasesRemoved: census.dead.length,
  };
}
