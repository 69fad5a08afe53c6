import { Transform } from 'node:stream';
import { LifeboatError } from '../errors.js';
import { mapInParallel } from '../in-parallel.js';
import { sha256OfStream } from '../pipeline/hash.js';
import { walRecordSchema, type WalRecord } from '../postgres/wal-archive.js';
import { listWal, readHistories } from '../postgres/wal-listing.js';
import { analyseWal, type TimelineHistory, type WalAnalysis } from '../postgres/wal-window.js';
import { readTextIfAny } from '../repository/backend.js';
import type { Manifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { readCatalog } from '../retention/catalog.js';
import { describeReadData, sliceOf, slicesFrom, type ReadData } from './subset.js';
import { lastReadInFullAt, readVerifyState, writeVerifyState, type VerifyState } from './state.js';

/**
 * The verification of what one repository stores for a target, without changing any of it:
 * - every manifest parses, and every object it lists exists with its size (one folder listing per
 *   backup, never a request per object);
 * - with read-data (all, or a rotating subset), every selected object is read back, streamed, and
 *   its sha256 recomputed;
 * - PostgreSQL: every archived WAL file has its record and payload of the recorded size (read back
 *   too when selected), the continuity of every timeline, each base backup's WAL from start to
 *   stop (consistent), the chain from each to the newest segment, and the recoverable window.
 * Only the verification state (<target>/verify/state.json: cursors, when objects were last read)
 * is written, at the end.
 */

export interface BackupVerification {
  backupId: string;
  kind: Manifest['kind'] | null;
  snapshotAt: string | null;
  valid: boolean;
  /** Each damaged or missing object, named by its key, and what is wrong with it. */
  problems: string[];
  /** When every object of it had last been read back right (over one or several runs), or null. */
  lastReadInFullAt: string | null;
  /** How much of it this run read back. */
  readThisRun: 'none' | 'partial' | 'full';
}

export interface WalVerification extends Omit<WalAnalysis, 'segmentSizeBytes'> {
  valid: boolean;
  /** Archived files (with a record). */
  files: number;
  /** Damaged or missing WAL objects, gaps in the chain of a base backup, base backups without their WAL. */
  problems: string[];
  /** Every gap of every timeline (also listed per timeline), for a count at a glance. */
  gaps: Array<{ timeline: number; from: string; to: string; segments: number }>;
}

export interface RepositoryVerification {
  repository: string;
  location: string;
  valid: boolean;
  readData: string;
  /** The slices of a subset run (out of t), from the repository's cursor. */
  subset: { n: number; t: number; slices: number[] } | null;
  /** Newest first. */
  backups: BackupVerification[];
  /** Backup folders without a manifest (a backup running now, or one that died before it): not backups. */
  incomplete: string[];
  wal: WalVerification | null;
  objectsRead: number;
  bytesRead: number;
  /** Set when this run went on from where an interrupted attempt stopped (a worker was lost): the key it went on after. */
  resumedAfter: string | null;
}

/** Where a verification that was interrupted goes on from (kept in the step's heartbeat). */
export interface VerifyCheckpoint {
  /** The last key read, in key order. */
  lastKey: string;
  /** When this run's reading began: the time recorded for every object it read back right. */
  readAt: string;
  bytesDone: number;
  objectsRead: number;
  /** Key -> problem, for the objects read so far that were damaged. */
  damaged: Record<string, string>;
}

export interface VerifyRepositoryOptions {
  repository: Repository;
  target: string;
  readData: ReadData;
  /** The verifying run (its workflow id): the state remembers which run moved a cursor. */
  runId: string;
  resume?: VerifyCheckpoint | undefined;
  onCheckpoint?: (checkpoint: VerifyCheckpoint) => void;
  onProgress?: (progress: { phase: string; bytesDone: number; bytesTotal: number }) => void;
  signal?: AbortSignal;
  now?: () => Date;
  /** Read no faster than this (MiB/s): spares a shared disk or a metered link; default unlimited. */
  readLimitMiBPerSecond?: number | undefined;
}

const defaultSegmentSizeBytes = 16 * 1024 * 1024;

interface ToRead {
  key: string;
  sizeBytes: number;
  sha256: string;
  /** A backup's object (its id and name), or a WAL file (its name). */
  owner: { backupId: string; object: string } | { wal: string };
}

export async function verifyRepository(options: VerifyRepositoryOptions): Promise<RepositoryVerification> {
  const { repository, target, readData } = options;
  const now = options.now ?? (() => new Date());
  const state = await readVerifyState(repository, target);
  const cursorStart =
    readData.mode === 'subset'
      ? state.lastRun?.workflowId === options.runId && state.lastRun.t === readData.t
        ? state.lastRun.start
        : (state.cursors[String(readData.t)] ?? 0) % readData.t
      : 0;
  const subset = readData.mode === 'subset' ? slicesFrom(cursorStart, readData) : undefined;
  const selected = (key: string): boolean => readData.mode === 'full' || (subset !== undefined && subset.slices.has(sliceOf(key, readData.mode === 'subset' ? readData.t : 1)));

  options.onProgress?.({ phase: 'list', bytesDone: 0, bytesTotal: 0 });
  const catalog = await readCatalog(repository, target);
  const problems = new Map<string, string[]>(); // backup id -> problems
  const problem = (backupId: string, text: string) => problems.set(backupId, [...(problems.get(backupId) ?? []), text]);
  for (const { id, problem: text } of catalog.unreadable) problem(id, `${repository.manifestKey(target, id)}: ${text}`);

  // Existence and size: one listing per backup (of everything under its folder: a backup's objects
  // may sit in sub-folders, e.g. attempt-<n>/).
  const toRead: ToRead[] = [];
  await mapInParallel(catalog.backups, 16, async (manifest) => {
    const objects = await repository.backend.list(`${repository.backupDir(target, manifest.id)}/`);
    const sizes = new Map(objects.map((object) => [object.key, object.sizeBytes]));
    for (const object of manifest.objects) {
      const key = repository.objectKey(target, manifest.id, object.name);
      const size = sizes.get(key);
      if (size === undefined) problem(manifest.id, `${key}: missing`);
      else if (size !== object.sizeBytes) problem(manifest.id, `${key}: ${size} bytes stored, the manifest says ${object.sizeBytes}`);
      else if (selected(key)) toRead.push({ key, sizeBytes: size, sha256: object.sha256, owner: { backupId: manifest.id, object: object.name } });
    }
  });

  // The WAL archive (PostgreSQL targets; nothing for others).
  const wal = await inspectWal(repository, target, selected);
  toRead.push(...wal.toRead);

  // Read back, in key order, from where an interrupted attempt stopped.
  toRead.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const resume = options.resume;
  const readAt = resume?.readAt ?? now().toISOString();
  const checkpoint: VerifyCheckpoint = { lastKey: resume?.lastKey ?? '', readAt, bytesDone: resume?.bytesDone ?? 0, objectsRead: resume?.objectsRead ?? 0, damaged: { ...(resume?.damaged ?? {}) } };
  const bytesTotal = toRead.reduce((sum, object) => sum + object.sizeBytes, 0);
  for (const object of toRead) {
    if (resume && object.key <= resume.lastKey) continue;
    if (options.signal?.aborted) throw abortError(options.signal);
    const before = checkpoint.bytesDone;
    options.onProgress?.({ phase: 'read', bytesDone: before, bytesTotal });
    let read: { sha256: string; bytes: number } | undefined;
    try {
      const stored = await repository.backend.get(object.key);
      read = await sha256OfStream(options.readLimitMiBPerSecond ? stored.pipe(throttle(options.readLimitMiBPerSecond)) : stored, {
        onProgress: (bytes) => options.onProgress?.({ phase: 'read', bytesDone: before + bytes, bytesTotal }),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (!(error instanceof LifeboatError && error.type === 'ObjectNotFound')) throw error;
      checkpoint.damaged[object.key] = `${object.key}: missing`;
    }
    if (read && (read.sha256 !== object.sha256 || read.bytes !== object.sizeBytes)) {
      checkpoint.damaged[object.key] = `${object.key}: read back as sha256 ${read.sha256} (${read.bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`;
    }
    checkpoint.lastKey = object.key;
    checkpoint.bytesDone = before + object.sizeBytes;
    checkpoint.objectsRead++;
    options.onCheckpoint?.({ ...checkpoint, damaged: { ...checkpoint.damaged } });
  }
  options.onProgress?.({ phase: 'analyse', bytesDone: checkpoint.bytesDone, bytesTotal });
  for (const object of toRead) {
    const damage = checkpoint.damaged[object.key];
    if (!damage) continue;
    if ('backupId' in object.owner) problem(object.owner.backupId, damage);
    else wal.problems.push(damage);
  }

  // A backup that lost objects may simply have been removed (by retention) while it was verified.
  let backups = catalog.backups;
  const lost = backups.filter((manifest) => (problems.get(manifest.id) ?? []).some((text) => text.endsWith(': missing')));
  for (const manifest of lost) {
    if ((await repository.readManifestIfAny(target, manifest.id).catch(() => manifest)) === undefined) {
      problems.delete(manifest.id);
      backups = backups.filter((b) => b.id !== manifest.id);
    }
  }

  // PostgreSQL: continuity and the recoverable window.
  const bases = backups.flatMap((m) => (m.kind === 'postgres-base' ? [m] : []));
  let walResult: WalVerification | null = null;
  if (wal.files > 0 || bases.length > 0) {
    const segmentSizeBytes = bases[0]?.source.walSegmentSizeBytes ?? defaultSegmentSizeBytes;
    const { segmentSizeBytes: _size, ...analysis } = analyseWal({
      names: wal.recorded,
      histories: wal.histories,
      bases: bases.map((m) => ({ id: m.id, timeline: m.base.timeline, startLsn: m.base.startLsn, stopLsn: m.base.stopLsn, stopTime: m.base.stopTime })),
      segmentSizeBytes,
    });
    for (const base of analysis.bases) {
      if (!base.consistent) wal.problems.push(`base backup ${base.id}: WAL segment ${base.missing} between its start and stop is missing: the backup cannot be made consistent`);
      else if (base.breaksAt) wal.problems.push(`base backup ${base.id}: WAL segment ${base.breaksAt} is missing: recovery from it stops at ${base.reaches?.lsn}, before the newest archived WAL`);
    }
    const gaps = analysis.timelines.flatMap((t) => t.gaps.map((gap) => ({ timeline: t.timeline, ...gap })));
    walResult = { valid: wal.problems.length === 0, files: wal.recorded.length, problems: wal.problems, gaps, ...analysis };
  }

  // Remember what was read, then report.
  const checkedAt = now().toISOString();
  const updated = updateState(state, {
    backups,
    unreadable: catalog.unreadable.map((u) => u.id),
    problems,
    read: toRead.filter((object) => !checkpoint.damaged[object.key]),
    damaged: toRead.filter((object) => checkpoint.damaged[object.key]),
    walNames: wal.recorded,
    readAt,
    checkedAt,
  });
  if (readData.mode === 'subset' && subset) {
    updated.cursors[String(readData.t)] = subset.next;
    updated.lastRun = { workflowId: options.runId, t: readData.t, start: cursorStart };
  }
  await writeVerifyState(repository, updated);

  const readKeys = new Set(toRead.map((object) => object.key));
  const results: BackupVerification[] = [
    ...backups.map((manifest): BackupVerification => {
      const found = problems.get(manifest.id) ?? [];
      const readCount = manifest.objects.filter((object) => readKeys.has(repository.objectKey(target, manifest.id, object.name))).length;
      return {
        backupId: manifest.id,
        kind: manifest.kind,
        snapshotAt: manifest.snapshotAt,
        valid: found.length === 0,
        problems: found,
        lastReadInFullAt: lastReadInFullAt(updated, manifest),
        readThisRun: readCount === 0 ? 'none' : readCount === manifest.objects.length ? 'full' : 'partial',
      };
    }),
    ...catalog.unreadable.map(({ id }): BackupVerification => ({ backupId: id, kind: null, snapshotAt: null, valid: false, problems: problems.get(id) ?? [], lastReadInFullAt: null, readThisRun: 'none' })),
  ].sort((a, b) => (a.backupId < b.backupId ? 1 : -1));
  return {
    repository: repository.name,
    location: repository.location,
    valid: results.every((b) => b.valid) && (walResult?.valid ?? true),
    readData: describeReadData(readData),
    subset: readData.mode === 'subset' && subset ? { n: readData.n, t: readData.t, slices: [...subset.slices] } : null,
    backups: results,
    incomplete: catalog.incomplete,
    wal: walResult,
    objectsRead: checkpoint.objectsRead,
    bytesRead: checkpoint.bytesDone,
    resumedAfter: resume?.lastKey || null,
  };
}

function updateState(
  state: VerifyState,
  run: {
    backups: Manifest[];
    unreadable: string[];
    problems: Map<string, string[]>;
    read: ToRead[];
    damaged: ToRead[];
    walNames: string[];
    readAt: string;
    checkedAt: string;
  },
): VerifyState {
  const backups: VerifyState['backups'] = {};
  for (const manifest of run.backups) {
    const previous = state.backups[manifest.id]?.objectsReadAt ?? {};
    // Only objects the manifest still lists count.
    const objectsReadAt = Object.fromEntries(manifest.objects.flatMap((object) => (previous[object.name] ? [[object.name, previous[object.name]!]] : [])));
    backups[manifest.id] = { checkedAt: run.checkedAt, valid: (run.problems.get(manifest.id) ?? []).length === 0, objectsReadAt };
  }
  for (const id of run.unreadable) backups[id] = { checkedAt: run.checkedAt, valid: false, objectsReadAt: {} };
  const wal: VerifyState['wal'] = Object.fromEntries(run.walNames.flatMap((name) => (state.wal[name] ? [[name, state.wal[name]!]] : [])));
  for (const object of run.read) {
    if ('backupId' in object.owner) {
      const entry = backups[object.owner.backupId];
      if (entry) entry.objectsReadAt[object.owner.object] = run.readAt;
    } else if (object.owner.wal in wal || run.walNames.includes(object.owner.wal)) {
      wal[object.owner.wal] = run.readAt;
    }
  }
  for (const object of run.damaged) {
    if ('backupId' in object.owner) delete backups[object.owner.backupId]?.objectsReadAt[object.owner.object];
    else delete wal[object.owner.wal];
  }
  // Every problem makes a backup's earlier reads stale: it is not verified until read right again.
  for (const [id, found] of run.problems) if (found.length && backups[id]) backups[id]!.valid = false;
  return { ...state, updatedAt: run.checkedAt, backups, wal };
}

interface WalInspection {
  /** Names with a record (archived). */
  recorded: string[];
  histories: TimelineHistory[];
  toRead: ToRead[];
  problems: string[];
  files: number;
}

/**
 * Every archived WAL file: its record parses and names it, its payload exists with the recorded
 * size. A payload without a record is an interrupted push (it does not count, and is not a problem).
 */
async function inspectWal(repository: Repository, target: string, selected: (key: string) => boolean): Promise<WalInspection> {
  const prefix = `${target}/wal/`;
  const listing = await listWal(repository, target);
  const inspection: WalInspection = { recorded: [], histories: [], toRead: [], problems: [], files: listing.archived.length };
  const read = await mapInParallel(listing.archived, 16, async (name): Promise<{ name: string; record?: WalRecord; problem?: string }> => {
    const key = `${prefix}${name}.json`;
    const raw = await readTextIfAny(repository.backend, key);
    if (raw === undefined) return { name }; // removed meanwhile
    try {
      const parsed = walRecordSchema.safeParse(JSON.parse(raw));
      if (parsed.success && parsed.data.name === name && parsed.data.target === target) return { name, record: parsed.data };
    } catch {
      // not JSON
    }
    return { name, problem: `${key}: not a Lifeboat WAL record of ${name}` };
  });
  for (const { name, record, problem } of read) {
    if (problem) inspection.problems.push(problem);
    if (!record) continue;
    inspection.recorded.push(name);
    const key = `${prefix}${name}.zst`;
    const size = listing.payloadSizes.get(name);
    if (size === undefined) inspection.problems.push(`${key}: missing (its record is there)`);
    else if (size !== record.stored.sizeBytes) inspection.problems.push(`${key}: ${size} bytes stored, its record says ${record.stored.sizeBytes}`);
    else if (selected(key)) inspection.toRead.push({ key, sizeBytes: size, sha256: record.stored.sha256, owner: { wal: name } });
  }
  const intact = inspection.recorded.filter((name) => listing.payloadSizes.has(name));
  const { histories, problems } = await readHistories(repository, target, intact);
  inspection.histories = histories;
  inspection.problems.push(...problems);
  return inspection;
}

/** Passes bytes on no faster than mibPerSecond, averaged from its first byte. */
function throttle(mibPerSecond: number): Transform {
  const bytesPerMs = (mibPerSecond * 1024 * 1024) / 1000;
  let started: number | undefined;
  let passed = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      started ??= Date.now();
      passed += chunk.length;
      const wait = passed / bytesPerMs - (Date.now() - started);
      if (wait > 0) setTimeout(() => done(null, chunk), wait);
      else done(null, chunk);
    },
  });
}

function abortError(signal: AbortSignal): Error {
  const error = new Error('the verification was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  return error;
}
