import { log } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { renderReportHtml, type RenderableReport } from '../src/report/html.js';
import { LifeboatError } from '../src/errors.js';
import { sha256OfStream } from '../src/pipeline/hash.js';
import type { Manifest } from '../src/repository/manifest.js';
import { reportText, type Repository } from '../src/repository/repository.js';
import { Landing, type MissingCopy } from '../src/repository/store.js';
import { leaseForThisRun, releaseLease } from './leases.js';
import { startProgress } from './progress.js';
import { openRepositories } from './repositories.js';
import type { ResolvedTargetBase as ResolvedTarget } from '../src/kinds/contract.js';
import { manifestKindOf } from '../src/kinds/index.js';
import { readSharedObjects } from '../src/repository/shared-objects.js';

/**
 * Clears every repository of what an interrupted attempt left under backupId
 * (Repository.discardUnfinishedBackup): everything, or with beforeAttempt only what earlier attempts left.
 * Given a Landing (a backup starting), a repository that cannot be cleared (unreachable) is dropped
 * from it, and the backup goes on without it while enough remain.
 */
export async function clearUnfinishedBackup(repositories: Repository[] | Landing, target: string, backupId: string, beforeAttempt?: number): Promise<number> {
  let removed = 0;
  const clear = async (repository: Repository) => {
    removed += await repository.discardUnfinishedBackup(target, backupId, beforeAttempt === undefined ? {} : { beforeAttempt });
  };
  if (repositories instanceof Landing) {
    await repositories.each((repository) => `clearing what an earlier attempt of backup ${backupId} left in repository "${repository.name}" (${repository.location})`, clear);
  } else {
    for (const repository of repositories) await clear(repository);
  }
  return removed;
}

/**
 * A backup that failed before its manifest: what it stored is garbage (any kind of target). Each
 * repository on its own: one that cannot be reached now keeps its leftovers for retention (a
 * folder without a manifest), the others are cleared.
 */
export async function discardBackup(input: { target: ResolvedTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<{ removed: number }> {
  let removed = 0;
  const failures: string[] = [];
  for (const repository of openRepositories(input.target, env)) {
    try {
      removed += await repository.discardUnfinishedBackup(input.target.name, input.backupId);
    } catch (error) {
      failures.push(`"${repository.name}": ${(error as Error).message}`);
    }
  }
  if (failures.length) log.warn('leftovers of a failed backup not removed', { backupId: input.backupId, failures });
  return { removed };
}

/**
 * Writes the manifest, the last write that makes the backup exist, into every repository the
 * backup was stored in (manifest.copies; every repository for manifests without it). A repository
 * where the write fails is missing the backup; the step fails only when fewer than minCopies have it.
 */
export async function writeManifest(input: { target: ResolvedTarget; manifest: Manifest }, env: NodeJS.ProcessEnv): Promise<{ repositories: string[]; missing?: MissingCopy[] }> {
  const { manifest } = input;
  const all = openRepositories(input.target, env);
  const landed = manifest.copies ? all.filter((repository) => manifest.copies!.includes(repository.name)) : all;
  const landing = new Landing(landed, manifest.copies ? input.target.minCopies : landed.length);
  await landing.each((repository) => `writing the manifest of backup ${manifest.id} into repository "${repository.name}" (${repository.location})`, (repository) => repository.writeManifest(manifest));
  const { repositories, missing } = landing.copies();
  return { repositories, ...(missing.length ? { missing } : {}) };
}

export interface VerifiedCopy {
  repository: string;
  object: string;
  sizeBytes: number;
  sha256: string;
  /**
   * Set when this object did not read back right (or could not be read): the copy in that
   * repository is not counted (a damaged one is withdrawn). Only when enough other copies read back right.
   */
  problem?: string;
}

/**
 * Reads every stored object back from every repository that holds the backup (`repositories`, the
 * ones write-manifest wrote; default all) and checks size and sha256 against the manifest. A copy
 * proven damaged is withdrawn. Fails (ChecksumMismatch for damage, a plain retryable error for a
 * repository that cannot be read) unless minCopies copies read back right.
 */
export async function verifyStoredBackup(input: { target: ResolvedTarget; manifest: Manifest; repositories?: string[] }, env: NodeJS.ProcessEnv): Promise<VerifiedCopy[]> {
  const { target, manifest } = input;
  const repositories = openRepositories(target, env).filter((repository) => input.repositories === undefined || input.repositories.includes(repository.name));
  // Every repository, unless the manifest says the backup may count with fewer (minCopies).
  const needed = manifest.copies ? Math.min(target.minCopies ?? repositories.length, repositories.length) : repositories.length;
  const total = (manifest.objects.reduce((sum, o) => sum + o.sizeBytes, 0) + (manifest.shared?.addedBytes ?? 0)) * repositories.length;
  const progress = startProgress('verify', total);
  let done = 0;
  const verified: VerifiedCopy[] = [];
  const damaged: Array<{ repository: Repository; object: string; problem: string }> = [];
  const unreadable: Array<{ repository: Repository; object: string; error: Error }> = [];
  try {
    for (const repository of repositories) {
      const good: VerifiedCopy[] = [];
      for (const object of manifest.objects) {
        let read: { sha256: string; bytes: number };
        try {
          read = await sha256OfStream(await repository.backend.get(repository.objectKey(target.name, manifest.id, object.name)));
        } catch (error) {
          if (error instanceof LifeboatError && error.type === 'ObjectNotFound') {
            damaged.push({ repository, object: object.name, problem: `${object.name} is missing from repository "${repository.name}"` });
          } else {
            unreadable.push({ repository, object: object.name, error: error as Error });
          }
          break;
        }
        done += read.bytes;
        progress.update(done);
        if (read.sha256 !== object.sha256 || read.bytes !== object.sizeBytes) {
          damaged.push({
            repository,
            object: object.name,
            problem: `${object.name} read back from repository "${repository.name}" has sha256 ${read.sha256} (${read.bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`,
          });
          break;
        }
        good.push({ repository: repository.name, object: object.name, sizeBytes: read.bytes, sha256: read.sha256 });
      }
      if (good.length < manifest.objects.length) continue;
      // The shared objects (blobs' packs) this backup added must read back right too.
      const problem = await checkSharedObjects(repository, manifest, (bytes) => progress.update((done += bytes)));
      if (problem) damaged.push({ repository, object: manifest.shared?.listing ?? 'shared objects', problem });
      else verified.push(...good);
    }
    // A copy proven damaged must not be listed or restored: it leaves the repositories that hold
    // it (the copies that read back right stay).
    for (const { repository } of damaged) await repository.withdrawBackup(target.name, manifest.id);
  } finally {
    progress.stop();
  }
  const goodCopies = new Set(verified.map((copy) => copy.repository)).size;
  if (goodCopies < needed && damaged.length) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `backup ${manifest.id}: ${damaged.map((d) => d.problem).join('; ')}`,
      `The repository did not store what was sent; the damaged copy was withdrawn from ${damaged.map((d) => `"${d.repository.name}"`).join(', ')}` +
        (goodCopies > 0 ? ' (the copies that read back right stay)' : '') +
        '. Check that storage and run the backup again',
    );
  }
  if (goodCopies < needed) {
    const first = unreadable[0]!;
    throw new Error(`reading back backup ${manifest.id} from repository "${first.repository.name}" (${first.repository.location}) failed: ${first.error.message}`, { cause: first.error });
  }
  const problems: VerifiedCopy[] = [
    ...damaged.map((d) => ({ repository: d.repository.name, object: d.object, sizeBytes: 0, sha256: '', problem: `${d.problem}; the copy was withdrawn` })),
    ...unreadable.map((u) => ({ repository: u.repository.name, object: u.object, sizeBytes: 0, sha256: '', problem: `could not be read back: ${u.error.message}` })),
  ];
  if (problems.length) log.warn('backup counts without some copies', { backupId: manifest.id, problems: problems.map((p) => p.problem) });
  log.info('stored backup verified', { backupId: manifest.id, copies: verified.length });
  return [...verified, ...problems];
}

/**
 * The shared objects a backup references (manifest.shared): those this backup stored are read
 * back and rehashed like its own objects; those it found in the repository are checked to be
 * there with their size (one listing of their folder, not a request each): re-reading every
 * unchanged blob after each incremental backup would make it as slow as a full one. `lifeboat
 * verify` reads them all. Returns what is wrong, or undefined.
 */
async function checkSharedObjects(repository: Repository, manifest: Manifest, onBytes: (bytes: number) => void): Promise<string | undefined> {
  const shared = await readSharedObjects(repository, manifest);
  if (shared.length === 0) return undefined;
  const listed = new Map<string, number>();
  const folders = new Set(shared.filter((object) => object.addedBy !== manifest.id).map((object) => object.fullKey.slice(0, object.fullKey.lastIndexOf('/') + 1)));
  for (const folder of folders) for (const info of await repository.backend.list(folder)) listed.set(info.key, info.sizeBytes);
  for (const object of shared) {
    if (object.addedBy !== manifest.id) {
      const size = listed.get(object.fullKey);
      if (size !== object.sizeBytes) {
        return `shared object ${object.key} in repository "${repository.name}" is ${size === undefined ? 'missing' : `${size} bytes, expected ${object.sizeBytes}`}`;
      }
      continue;
    }
    const { sha256, bytes } = await sha256OfStream(await repository.backend.get(object.fullKey));
    onBytes(bytes);
    if (sha256 !== object.sha256 || bytes !== object.sizeBytes) {
      return `shared object ${object.key} read back from repository "${repository.name}" has sha256 ${sha256} (${bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`;
    }
  }
  return undefined;
}

/** The manifest of the given backup, or of the newest complete backup in any of the target's repositories. */
export async function locateBackup(input: { target: ResolvedTarget; backupId?: string; kind?: Manifest['kind'] }, env: NodeJS.ProcessEnv): Promise<Manifest> {
  const { target, backupId, kind } = input;
  const repositories = openRepositories(target, env);
  const failures: string[] = [];
  if (backupId) {
    // The lease comes before the manifest is read: retention either sees it or removed the manifest first.
    await leaseForThisRun(repositories, target.name, backupId);
    for (const repository of repositories) {
      try {
        return await repository.readManifest(target.name, backupId);
      } catch (error) {
        failures.push(`${repository.name}: ${(error as Error).message}`);
        if (!(error instanceof LifeboatError) || error.type !== 'BackupNotFound') log.warn('repository unreadable', { repository: repository.name, error: (error as Error).message });
      }
    }
    throw new LifeboatError('BackupNotFound', `backup ${backupId} of target "${target.name}" is in none of its repositories`, `Run \`lifeboat backups ${target.name}\` to list them`);
  }
  let newest: Manifest | undefined;
  for (const repository of repositories) {
    try {
      // Newest first; with a kind (a target may hold dumps and base backups), the newest of that kind.
      for (const id of await repository.listBackupIds(target.name)) {
        if (newest && id <= newest.id) break;
        const manifest = await repository.readManifest(target.name, id).catch((error: Error) => {
          // One unreadable manifest is no reason to ignore the older backups beside it.
          failures.push(`${repository.name}: backup ${id} skipped: ${error.message}`);
          log.warn('unreadable manifest skipped', { repository: repository.name, backupId: id, error: error.message });
          return undefined;
        });
        if (manifest && (kind === undefined || manifest.kind === kind)) {
          newest = manifest;
          break;
        }
      }
    } catch (error) {
      failures.push(`${repository.name}: ${(error as Error).message}`);
    }
  }
  if (!newest) {
    throw new LifeboatError(
      'BackupNotFound',
      `target "${target.name}" has no complete ${kind === undefined ? '' : `${kind} `}backup in ${target.repositories.map((r) => r.name).join(', ')}${failures.length ? ` (${failures.join('; ')})` : ''}`,
      kind === undefined ? `Run \`lifeboat backup ${target.name}\` first` : (manifestKindOf(kind)?.missingHint(target.name) ?? `Run \`lifeboat backup ${target.name}\` first`),
    );
  }
  // Leased, then read again: retention may have removed it since it was listed (the step then
  // fails retryably and its next attempt chooses again).
  const chosen = newest;
  const lease = await leaseForThisRun(repositories, target.name, chosen.id);
  const still = await Promise.all(repositories.map((repository) => repository.readManifestIfAny(target.name, chosen.id).catch(() => undefined)));
  if (still.some((manifest) => manifest !== undefined)) return chosen;
  await releaseLease(repositories, lease);
  throw new Error(`backup ${chosen.id} of target "${target.name}" was removed by retention while it was being chosen`);
}

/**
 * Stores a drill, PITR or verification report in every repository of the target; a report with
 * RTO and RPO (drills, PITR) also gets its HTML page beside it, rendered from the same bytes.
 */
export async function writeReport(input: { target: ResolvedTarget; runId: string; report: unknown }, env: NodeJS.ProcessEnv): Promise<{ keys: string[]; pages: string[] }> {
  const repositories = openRepositories(input.target, env);
  const keys = await Promise.all(repositories.map((r) => r.writeReport(input.target.name, input.runId, input.report).then((key) => `${r.name}:${key}`)));
  if (!isPersonReadable(input.report)) return { keys, pages: [] };
  const text = reportText(input.report);
  const html = renderReportHtml(input.report, { sha256: createHash('sha256').update(text).digest('hex'), from: `${input.target.name}/reports/${input.runId}.json` });
  const pages = await Promise.all(repositories.map((r) => r.writeReportPage(input.target.name, input.runId, html).then((key) => `${r.name}:${key}`)));
  return { keys, pages };
}

/** Reports a person reads as a page: those of drills and PITR runs (they measure RTO and RPO). */
export function isPersonReadable(report: unknown): report is RenderableReport {
  const candidate = report as Partial<RenderableReport> | null;
  return typeof candidate === 'object' && candidate !== null && 'rto' in candidate && Array.isArray(candidate.timeline) && typeof candidate.workflowId === 'string';
}
