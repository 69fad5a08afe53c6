import { LifeboatError } from '../errors.js';
import type { Manifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { readTextIfAny } from '../repository/backend.js';
import { sourceBytesOf, targetKindOf, verifiedWhenTaken } from '../kinds/index.js';
import type { BackupFacts, DrillFacts, RepositoryState, VerifiedBackup, VerifyFacts, WalHead } from './model.js';
import { drillFacts, verifyFacts, type ParsedReport, type VerifyReportFacts } from './reports.js';
import type { RetentionConfig } from '../config/schema.js';
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
  /** The target's kind (its `type`): what else is read of it (src/kinds/<kind>: state). */
  type: string;
  /** The server's last archived WAL file (pg_stat_archiver), when the server could be asked. */
  serverArchivedWal?: string | null;
  memory?: RepositoryFactsMemory;
  /** The target's retention policy (none: no preview). */
  retention?: RetentionConfig | undefined;
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
    readKindWal(input, attempt),
  ]);
  const newestBackup = newest ? backupFacts(newest) : null;
  const retention = await attempt('retention preview', () => retentionPreview({ repository, target, retention: input.retention, forMetrics: input.forMetrics === true }));
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
    sourceBytes: sourceBytesOf(manifest),
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
  const provenWhenTaken = newest ? verifiedWhenTaken(newest) : null;
  if (newest && provenWhenTaken) candidates.push({ id: newest.id, verifiedAt: provenWhenTaken, by: 'backup' });
  candidates.sort((a, b) => (a.id === b.id ? Date.parse(a.verifiedAt) - Date.parse(b.verifiedAt) : a.id < b.id ? -1 : 1));
  return candidates.at(-1) ?? null;
}

function withoutIds(facts: VerifyReportFacts): VerifyFacts {
  const { validBackupIds: _ids, ...rest } = facts;
  return rest;
}

/** The kind's continuous archive in this repository (PostgreSQL: WAL), null for kinds without one. */
async function readKindWal(input: RepositoryFactsInput, attempt: <T>(what: string, read: () => Promise<T>) => Promise<T | null>): Promise<RepositoryState['wal']> {
  const read = targetKindOf(input.type)?.state?.wal;
  if (!read) return null;
  return read({
    repository: input.repository,
    target: input.target,
    ...(input.serverArchivedWal !== undefined ? { serverArchivedWal: input.serverArchivedWal } : {}),
    ...(input.memory ? { memory: input.memory } : {}),
    attempt,
  });
}

function messageOf(error: unknown): string {
  return error instanceof LifeboatError ? `${error.type}: ${error.message}` : error instanceof Error ? error.message : String(error);
}
