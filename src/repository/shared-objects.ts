import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isBackupId } from '../backup-id.js';
import { LifeboatError } from '../errors.js';
import { mapInParallel } from '../in-parallel.js';
import { assertValidKey, readTextIfAny } from './backend.js';
import { sha256, type SharedObjects } from './manifest-envelope.js';
import type { Repository } from './repository.js';

/**
 * Objects shared between backups (the blobs kind's `<target>/blobs/<sha256>`), in one place for
 * every generic runbook: which ones a backup references (its listing), and which ones no backup
 * references any more (the sweep).
 *
 *   <target>/blobs/<sha256>                                   the shared objects (blobs: packs)
 *   <target>/backups/<id>/attempt-<n>/shared-objects.jsonl   the listing: one {key, sizeBytes, sha256, addedBy} per line
 *   <target>/backups/<id>/attempt-<n>/in-progress            written before a backup stores its first shared object
 *
 * The listing is plain JSON (object names are sha256 of stored bytes: they say nothing of the
 * content, encrypted or not) so that verify, copy and retention need neither the key nor zstd.
 */

export const sharedListingName = 'shared-objects.jsonl';
export const inProgressMarkerName = 'in-progress';

export const sharedObjectRecordSchema = z.object({
  /** Relative to the target's folder, e.g. "blobs/<sha256>". */
  key: z.string().min(1),
  sizeBytes: z.number().int().nonnegative(),
  sha256,
  /** The backup that stored it (the others it lists were already in the repository). */
  addedBy: z.string(),
});

export type SharedObjectRecord = z.infer<typeof sharedObjectRecordSchema>;

/** A shared object as generic code uses it: its full key in the repository. */
export interface SharedObject extends SharedObjectRecord {
  /** `<target>/<key>`. */
  fullKey: string;
}

/** The lines of a listing (what a backup writes as its listing object). */
export function sharedListingLines(records: Iterable<SharedObjectRecord>): Readable {
  return Readable.from(
    (function* () {
      for (const record of records) yield Buffer.from(`${JSON.stringify(record)}\n`);
    })(),
  );
}

/** What the manifest says of a listing: counts and sizes (the listing itself is one of the backup's objects). */
export function summariseShared(records: SharedObjectRecord[], backupId: string): Omit<SharedObjects, 'listing'> {
  let sizeBytes = 0;
  let added = 0;
  let addedBytes = 0;
  for (const record of records) {
    sizeBytes += record.sizeBytes;
    if (record.addedBy === backupId) {
      added++;
      addedBytes += record.sizeBytes;
    }
  }
  return { count: records.length, sizeBytes, added, addedBytes };
}

function parseListing(raw: string, where: string, target: string): SharedObject[] {
  const objects: SharedObject[] = [];
  for (const [index, line] of raw.split('\n').entries()) {
    if (line === '') continue;
    let record: SharedObjectRecord;
    try {
      record = sharedObjectRecordSchema.parse(JSON.parse(line));
      if (record.key.startsWith('backups/')) throw new Error('a shared object cannot live inside a backup folder');
      assertValidKey(`${target}/${record.key}`);
    } catch (error) {
      throw new LifeboatError('BackupCorrupt', `line ${index + 1} of ${where} is not a shared-object record: ${(error as Error).message}`, 'Restore another backup');
    }
    objects.push({ ...record, fullKey: `${target}/${record.key}` });
  }
  return objects;
}

/**
 * The shared objects a backup references, from its listing, whose size and sha256 are checked
 * against the manifest first. [] for a backup without shared objects.
 */
export async function readSharedObjects(repository: Repository, manifest: { id: string; target: string; objects: Array<{ name: string; sizeBytes: number; sha256: string }>; shared?: SharedObjects | undefined }): Promise<SharedObject[]> {
  if (!manifest.shared) return [];
  const listing = manifest.objects.find((object) => object.name === manifest.shared!.listing);
  const key = repository.objectKey(manifest.target, manifest.id, manifest.shared.listing);
  if (!listing) throw new LifeboatError('BackupCorrupt', `manifest of backup ${manifest.id} names ${manifest.shared.listing} as its listing of shared objects but does not list it among its objects`, 'Restore another backup');
  const bytes = Buffer.from(await text(await repository.backend.get(key)), 'utf8');
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== listing.sizeBytes || digest !== listing.sha256) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `${key} in repository "${repository.name}" has sha256 ${digest} (${bytes.length} bytes), expected ${listing.sha256} (${listing.sizeBytes} bytes)`,
      'The listing of shared objects is damaged: restore from another repository or another backup',
    );
  }
  const objects = parseListing(bytes.toString('utf8'), key, manifest.target);
  if (objects.length !== manifest.shared.count) {
    throw new LifeboatError('BackupCorrupt', `${key} lists ${objects.length} shared objects, the manifest says ${manifest.shared.count}`, 'Restore another backup');
  }
  return objects;
}

/** Where shared objects live, relative to the target's folder (listing keys begin with it). */
export const sharedObjectsFolder = 'blobs/';

/**
 * Who references what in one repository, read in an order that is safe against a backup running
 * at the same time: the shared folder is listed first (an object a backup stores after this
 * listing is not a candidate for removal), then the backup folders; every listing in any backup
 * folder counts, with or without a manifest and in any attempt's sub-folder (a backup whose
 * manifest retention took while a lease held its objects still references its objects).
 */
export interface SharedObjectsCensus {
  /** Full key -> size of every object under the shared folder. */
  stored: Map<string, number>;
  /** Full key -> the backups whose listing names it. */
  referencedBy: Map<string, Set<string>>;
  /** Backup folders without a manifest (running now, dead, or being removed). */
  unfinished: string[];
}

/** A census of the shared objects of a target in one repository: one listing of the shared folder, one of the backup folders, one read per listing. An unreadable listing throws (an object it may reference must not go). */
export async function censusOfSharedObjects(repository: Repository, target: string): Promise<SharedObjectsCensus> {
  const stored = new Map((await repository.backend.list(`${target}/${sharedObjectsFolder}`)).map((object) => [object.key, object.sizeBytes] as const));
  const backupsPrefix = `${target}/backups/`;
  const folders = new Map<string, { manifest: boolean; listings: string[] }>();
  for (const { key } of await repository.backend.list(backupsPrefix)) {
    const [id, ...rest] = key.slice(backupsPrefix.length).split('/');
    if (!id || rest.length === 0) continue;
    const entry = folders.get(id) ?? { manifest: false, listings: [] };
    if (rest.length === 1 && rest[0] === 'manifest.json') entry.manifest = true;
    if (rest.at(-1) === sharedListingName) entry.listings.push(key);
    folders.set(id, entry);
  }
  const referencedBy = new Map<string, Set<string>>();
  await mapInParallel([...folders].flatMap(([id, entry]) => entry.listings.map((key) => ({ id, key }))), 8, async ({ id, key }) => {
    const raw = await readTextIfAny(repository.backend, key);
    if (raw === undefined) return; // removed meanwhile, with its backup
    for (const object of parseListing(raw, key, target)) {
      const holders = referencedBy.get(object.fullKey) ?? new Set<string>();
      holders.add(id);
      referencedBy.set(object.fullKey, holders);
    }
  });
  return { stored, referencedBy, unfinished: [...folders].filter(([, entry]) => !entry.manifest).map(([id]) => id) };
}

/** What a census says of the shared objects: those no listing references now, and those that only the given backups reference (freed once they go). */
export function unreferencedShared(census: SharedObjectsCensus, removing: ReadonlySet<string> = new Set()): { now: { count: number; bytes: number }; afterRemoval: { count: number; bytes: number } } {
  const now = { count: 0, bytes: 0 };
  const afterRemoval = { count: 0, bytes: 0 };
  for (const [key, size] of census.stored) {
    const holders = census.referencedBy.get(key);
    if (!holders || holders.size === 0) {
      now.count++;
      now.bytes += size;
    } else if ([...holders].every((id) => removing.has(id))) {
      afterRemoval.count++;
      afterRemoval.bytes += size;
    }
  }
  return { now, afterRemoval: { count: now.count + afterRemoval.count, bytes: now.bytes + afterRemoval.bytes } };
}

export interface SweepResult {
  /** Shared objects no backup folder references any more, removed. */
  removed: string[];
  removedBytes: number;
  /** Objects under the shared folder, referenced ones included. */
  examined: number;
  referenced: number;
  /** Set when nothing was removed because a backup may be storing shared objects right now. */
  deferred: string | null;
}

/**
 * Removes the shared objects under `<target>/blobs/` that no backup folder's listing references,
 * safe against a backup running at the same time (mark and sweep, with a grace period):
 *
 * 1. the census lists the shared folder first: an object a backup stores after it is not a candidate;
 * 2. a backup stores its `in-progress` marker before its first shared object, so a backup that
 *    stored a candidate is a folder without a manifest in the census; while any such folder is
 *    younger than `graceHours` (by its id's time; retention's deadUploadAfterHours), nothing is
 *    removed (deferred): it may be storing objects now, and its listing comes last. Folders
 *    being removed by retention (`removing`: their manifest is gone on purpose) do not defer;
 * 3. every listing found in a backup folder counts (see censusOfSharedObjects);
 * 4. a backup that reuses objects of an older backup writes a lease on it before it reads its
 *    manifest (retention's lease protocol), so that backup's folder and listing stay while it runs.
 */
export async function sweepSharedObjects(
  repository: Repository,
  target: string,
  options: { graceHours?: number; now?: Date; removing?: ReadonlySet<string> } = {},
): Promise<SweepResult> {
  const now = options.now ?? new Date();
  const graceMs = (options.graceHours ?? 48) * 3_600_000;
  const census = await censusOfSharedObjects(repository, target);
  const result: SweepResult = { removed: [], removedBytes: 0, examined: census.stored.size, referenced: census.referencedBy.size, deferred: null };
  if (census.stored.size === 0) return result;
  for (const id of census.unfinished) {
    if (options.removing?.has(id)) continue;
    const started = startOfBackupId(id);
    if (started === undefined || now.getTime() - started.getTime() < graceMs) {
      return { ...result, deferred: `backup ${id} has no manifest yet (it may be storing shared objects now)` };
    }
  }
  const candidates = [...census.stored].filter(([key]) => !census.referencedBy.has(key));
  await mapInParallel(candidates, 16, async ([key, size]) => {
    await repository.backend.delete(key);
    result.removed.push(key);
    result.removedBytes += size;
  });
  result.removed.sort();
  return result;
}

/** The start of a backup as its id says (ids begin with the UTC second it started). */
function startOfBackupId(id: string): Date | undefined {
  if (!isBackupId(id)) return undefined;
  const t = id.slice(0, 16);
  const date = new Date(`${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(9, 11)}:${t.slice(11, 13)}:${t.slice(13, 15)}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
