import { LifeboatError } from '../errors.js';
import { walRecordKey, walRecordSchema, type WalRecord } from '../postgres/wal-archive.js';
import { readTextIfAny } from '../repository/backend.js';
import type { Manifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import type { BackupFacts, DrillFacts, RepositoryState, VerifiedBackup, VerifyFacts, WalHead } from './model.js';
import { drillFacts, verifyFacts, type ParsedReport, type VerifyReportFacts } from './reports.js';
import { retentionPreview } from './retention-preview.js';

/**
 * What one repository says about one target, read with a number of requests that does not grow
 * with the backups it holds (the figures are in docs/monitoring.md):
 *
 *   newest backup     the latest-backup/ marker (1 small listing), then the manifest it names (1 read)
 *   reports           reports/latest-{verify,drill}{,-passed}.json (4 reads; a drill report listing when none)
 *   WAL head          the record of the server's last archived WAL file (1 read), PostgreSQL
 *   PITR window start the oldest base backup: a listing once, then 1 existence check per read
 *                     while it is remembered (RepositoryFactsMemory), PostgreSQL
 *
 * Listing is the fallback wherever a marker or report copy is missing or names something that is gone.
 */

/** What a long-running reader (lifeboat serve) remembers between reads of one target's repository. */
export interface RepositoryFactsMemory {
  /** The oldest base backup (its id and end): checked to exist on every read, listed for again when it is gone. */
  oldestBase?: { id: string; stopTime: string };
  /** The newest WAL file seen, for finding the head without the server (only its timeline and log are listed). */
  walHead?: WalHead;
}

export interface RepositoryFactsInput {
  repository: Repository;
  target: string;
  type: string;
  /** The server's last archived WAL file (pg_stat_archiver), when the server could be asked. */
  serverArchivedWal?: string | null;
  memory?: RepositoryFactsMemory;
  /** Read for /metrics: skip what only status shows and what grows with the backups (the retention preview). */
  forMetrics?: boolean;
}

export async function readRepositoryState(input: RepositoryFactsInput): Promise<RepositoryState> {
  const { repository, target } = input;
  const errors: string[] = [];
  const attempt = async <T>(what: string, read: () => Promise<T>): Promise<T | null> => {
    try {
      return await read();
    } catch (error) {
      errors.push(`${what}: ${messageOf(error)}`);
      return null;
    }
  };
  const report = async <T>(runbook: string, passed: boolean, parse: (raw: unknown) => ParsedReport<T>): Promise<T | null> =>
    attempt(`${passed ? 'newest passing ' : 'newest '}${runbook} report`, async () => {
      const raw = await repository.readLatestReport(target, runbook, { passed });
      if (raw === undefined) return null;
      const parsed = parse(raw);
      if ('error' in parsed) throw new Error(`${repository.latestReportKey(target, runbook, { passed })} is ${parsed.error}`);
      return parsed.facts;
    });

  const [newest, lastVerify, lastPassedVerify, lastDrill, lastPassedDrill, wal] = await Promise.all([
    attempt('newest backup', () => newestManifest(repository, target)),
    report('verify', false, (raw) => verifyFacts(raw, repository.name)),
    report('verify', true, (raw) => verifyFacts(raw, repository.name)),
    report('drill', false, drillFacts).then(async (drill) => drill ?? (await attempt('newest drill report', () => drillReportByListing(repository, target)))),
    report('drill', true, drillFacts),
    input.type === 'postgres' ? readWal(input, attempt) : Promise.resolve(null),
  ]);
  const newestBackup = newest ? backupFacts(newest) : null;
  const retention = await attempt('retention preview', () => retentionPreview({ repository, target, forMetrics: input.forMetrics === true }));
  return {
    repository: repository.name,
    location: repository.location,
    error: errors.length ? errors.join('; ') : null,
    newestBackup,
    newestVerifiedBackup: newestVerified(newest, lastVerify, lastPassedVerify, lastPassedDrill ?? (lastDrill?.passed ? lastDrill : null)),
    lastVerify: lastVerify && withoutIds(lastVerify),
    lastPassedVerify: lastPassedVerify && withoutIds(lastPassedVerify),
    lastDrill,
    lastPassedDrill: lastPassedDrill ?? (lastDrill?.passed ? lastDrill : null),
    wal,
    retention,
  };
}

/** The newest complete backup: the one the latest-backup markers name, or (no marker, or its backup is gone) the newest listed one with a readable manifest. */
async function newestManifest(repository: Repository, target: string): Promise<Manifest | null> {
  for (const id of await repository.latestBackupIds(target)) {
    const manifest = await repository.readManifestIfAny(target, id);
    if (manifest) return manifest;
  }
  const unreadable: string[] = [];
  for (const id of await repository.listBackupIds(target)) {
    try {
      const manifest = await repository.readManifestIfAny(target, id);
      if (manifest) return manifest;
    } catch (error) {
      // One damaged manifest must not hide the backups before it; it is still reported.
      unreadable.push(`${id}: ${messageOf(error)}`);
    }
  }
  if (unreadable.length) throw new Error(`no readable manifest (${unreadable.join('; ')})`);
  return null;
}

/** Repositories written before reports/latest-drill.json existed: the drill report with the newest run id (drill-<target>-<time>). */
async function drillReportByListing(repository: Repository, target: string): Promise<DrillFacts | null> {
  const prefix = `${target}/reports/drill-${target}-`;
  const newest = (await repository.backend.list(prefix)).map((object) => object.key).filter((key) => key.endsWith('.json')).at(-1);
  if (newest === undefined) return null;
  const raw = await readTextIfAny(repository.backend, newest);
  if (raw === undefined) return null;
  const parsed = drillFacts(JSON.parse(raw));
  if ('error' in parsed) throw new Error(`${newest} is ${parsed.error}`);
  return parsed.facts;
}

function backupFacts(manifest: Manifest): BackupFacts {
  const steps = manifest.timeline;
  const started = steps.map((step) => Date.parse(step.startedAt)).filter(Number.isFinite);
  const ended = steps.map((step) => (step.endedAt ? Date.parse(step.endedAt) : NaN)).filter(Number.isFinite);
  const completedAt = Math.max(Date.parse(manifest.createdAt), ...ended);
  return {
    id: manifest.id,
    kind: manifest.kind,
    snapshotAt: manifest.snapshotAt,
    completedAt: new Date(completedAt).toISOString(),
    storedBytes: manifest.objects.reduce((sum, object) => sum + object.sizeBytes, 0),
    sourceBytes: manifest.kind === 'postgres-base' ? manifest.base.tar.sizeBytes : manifest.source.sizeBytes,
    durationSeconds: started.length ? Math.max(0, (completedAt - Math.min(...started)) / 1000) : null,
  };
}

/**
 * The newest backup proven good: read back whole by a verify run, restored and checked by a
 * drill, or (pg_dump with dump.verify) restored into a scratch database when it was taken.
 */
function newestVerified(newest: Manifest | null, lastVerify: VerifyReportFacts | null, lastPassedVerify: VerifyReportFacts | null, passedDrill: DrillFacts | null): VerifiedBackup | null {
  const candidates: VerifiedBackup[] = [];
  for (const verify of [lastVerify, lastPassedVerify]) {
    const id = verify ? [...verify.validBackupIds].sort().at(-1) : undefined;
    if (verify && id) candidates.push({ id, verifiedAt: verify.finishedAt, by: 'verify' });
  }
  if (passedDrill?.backupId) candidates.push({ id: passedDrill.backupId, verifiedAt: passedDrill.startedAt, by: 'drill' });
  if (newest?.kind === 'postgres-dump' && newest.dump.verification) candidates.push({ id: newest.id, verifiedAt: newest.dump.verification.verifiedAt, by: 'backup' });
  candidates.sort((a, b) => (a.id === b.id ? Date.parse(a.verifiedAt) - Date.parse(b.verifiedAt) : a.id < b.id ? -1 : 1));
  return candidates.at(-1) ?? null;
}

function withoutIds(facts: VerifyReportFacts): VerifyFacts {
  const { validBackupIds: _ids, ...rest } = facts;
  return rest;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: the WAL archive's head and the point-in-time recovery window

const segmentName = /^[0-9A-F]{24}(\.partial)?$/;

async function readWal(
  input: RepositoryFactsInput,
  attempt: <T>(what: string, read: () => Promise<T>) => Promise<T | null>,
): Promise<NonNullable<RepositoryState['wal']>> {
  const [head, oldestBase] = await Promise.all([attempt('WAL archive head', () => walHead(input)), attempt('oldest base backup', () => oldestBaseBackup(input))]);
  if (input.memory) {
    if (head) input.memory.walHead = head;
    if (oldestBase) input.memory.oldestBase = oldestBase;
    else delete input.memory.oldestBase;
  }
  return { head, pitrWindow: { start: oldestBase?.stopTime ?? null, end: oldestBase && head ? head.archivedAt : null } };
}

async function walHead(input: RepositoryFactsInput): Promise<WalHead | null> {
  const { repository, target } = input;
  // The server archives in order and wal-push succeeds only once every repository holds the
  // file: the server's last archived file is the head of every repository that has it.
  if (input.serverArchivedWal && segmentName.test(input.serverArchivedWal)) {
    const record = await readWalRecord(repository, target, input.serverArchivedWal);
    if (record) return { name: record.name, archivedAt: record.archivedAt };
  }
  const known = input.memory?.walHead;
  const names = known ? await listSegmentsFrom(repository, target, known.name) : await listSegments(repository, `${target}/wal/`);
  const newest = names.at(-1);
  if (newest === undefined) return known ?? null;
  if (known && newest === known.name) return known;
  const record = await readWalRecord(repository, target, newest);
  return record ? { name: record.name, archivedAt: record.archivedAt } : (known ?? null);
}

/** Names of archived segments (by their records) under prefix, sorted. */
async function listSegments(repository: Repository, prefix: string): Promise<string[]> {
  const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  return (await repository.backend.list(prefix))
    .map((object) => object.key.slice(base.length))
    .filter((name) => name.endsWith('.json'))
    .map((name) => name.slice(0, -'.json'.length))
    .filter((name) => segmentName.test(name))
    .sort();
}

/**
 * Segments from the known head's log on (its timeline and the same 4 GiB "log", and the next
 * one): a bounded listing instead of the whole archive. A switch to a new timeline is seen when
 * the server can be asked again, or on the next restart.
 */
async function listSegmentsFrom(repository: Repository, target: string, known: string): Promise<string[]> {
  const timeline = known.slice(0, 8);
  const log = Number.parseInt(known.slice(8, 16), 16);
  const next = (log + 1).toString(16).toUpperCase().padStart(8, '0');
  const [current, following] = await Promise.all([
    listSegments(repository, `${target}/wal/${timeline}${known.slice(8, 16)}`),
    listSegments(repository, `${target}/wal/${timeline}${next}`),
  ]);
  return [...current, ...following];
}

async function readWalRecord(repository: Repository, target: string, name: string): Promise<WalRecord | null> {
  const key = walRecordKey(target, name);
  const raw = await readTextIfAny(repository.backend, key);
  if (raw === undefined) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  const result = walRecordSchema.safeParse(parsed);
  if (!result.success) throw new LifeboatError('BackupCorrupt', `the WAL archive record ${key} in repository "${repository.name}" is damaged or not a Lifeboat record`);
  return result.data;
}

/** The oldest base backup: the remembered one while it exists, else the first one listed. */
async function oldestBaseBackup(input: RepositoryFactsInput): Promise<{ id: string; stopTime: string } | null> {
  const { repository, target } = input;
  const known = input.memory?.oldestBase;
  if (known && (await repository.backend.head(repository.manifestKey(target, known.id)))) return known;
  for (const id of (await repository.listBackupIds(target)).reverse()) {
    const manifest = await repository.readManifestIfAny(target, id, 'postgres-base').catch(() => undefined);
    if (manifest?.kind === 'postgres-base') return { id, stopTime: manifest.base.stopTime };
  }
  return null;
}

function messageOf(error: unknown): string {
  return error instanceof LifeboatError ? `${error.type}: ${error.message}` : error instanceof Error ? error.message : String(error);
}
