import { log } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { renderReportHtml, type RenderableReport } from '../src/report/html.js';
import { LifeboatError } from '../src/errors.js';
import { sha256OfStream } from '../src/pipeline/hash.js';
import type { Manifest } from '../src/repository/manifest.js';
import { reportText, type Repository } from '../src/repository/repository.js';
import { leaseForThisRun, releaseLease } from './leases.js';
import { startProgress } from './progress.js';
import { openRepositories } from './repositories.js';
import type { ResolvedTargetBase as ResolvedTarget } from '../src/kinds/contract.js';
import { manifestKindOf } from '../src/kinds/index.js';

/**
 * Clears every repository of what an interrupted attempt left under backupId
 * (Repository.discardUnfinishedBackup): everything, or with beforeAttempt only what earlier attempts left.
 */
export async function clearUnfinishedBackup(repositories: Repository[], target: string, backupId: string, beforeAttempt?: number): Promise<number> {
  let removed = 0;
  for (const repository of repositories) removed += await repository.discardUnfinishedBackup(target, backupId, beforeAttempt === undefined ? {} : { beforeAttempt });
  return removed;
}

/** A backup that failed before its manifest: what it stored is garbage (any kind of target). */
export async function discardBackup(input: { target: ResolvedTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<{ removed: number }> {
  return { removed: await clearUnfinishedBackup(openRepositories(input.target, env), input.target.name, input.backupId) };
}

/** Writes the manifest to every repository: the last write, which makes the backup exist. */
export async function writeManifest(input: { target: ResolvedTarget; manifest: Manifest }, env: NodeJS.ProcessEnv): Promise<{ repositories: string[] }> {
  const repositories = openRepositories(input.target, env);
  await Promise.all(repositories.map((repository) => repository.writeManifest(input.manifest)));
  return { repositories: repositories.map((r) => r.name) };
}

export interface VerifiedCopy {
  repository: string;
  object: string;
  sizeBytes: number;
  sha256: string;
}

/** Reads every stored object back from every repository and checks size and sha256 against the manifest. */
export async function verifyStoredBackup(input: { target: ResolvedTarget; manifest: Manifest }, env: NodeJS.ProcessEnv): Promise<VerifiedCopy[]> {
  const { target, manifest } = input;
  const repositories = openRepositories(target, env);
  const total = manifest.objects.reduce((sum, o) => sum + o.sizeBytes, 0) * repositories.length;
  const progress = startProgress('verify', total);
  let done = 0;
  const verified: VerifiedCopy[] = [];
  const damaged: Array<{ repository: Repository; problem: string }> = [];
  try {
    for (const repository of repositories) {
      for (const object of manifest.objects) {
        const { sha256, bytes } = await sha256OfStream(await repository.backend.get(repository.objectKey(target.name, manifest.id, object.name)));
        done += bytes;
        progress.update(done);
        if (sha256 !== object.sha256 || bytes !== object.sizeBytes) {
          damaged.push({
            repository,
            problem: `${object.name} read back from repository "${repository.name}" has sha256 ${sha256} (${bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`,
          });
          break;
        }
        verified.push({ repository: repository.name, object: object.name, sizeBytes: bytes, sha256 });
      }
    }
    // A copy proven damaged must not be listed or restored: it leaves the repositories that hold
    // it (the copies that read back right stay).
    for (const { repository } of damaged) await repository.withdrawBackup(target.name, manifest.id);
  } finally {
    progress.stop();
  }
  if (damaged.length) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `backup ${manifest.id}: ${damaged.map((d) => d.problem).join('; ')}`,
      `The repository did not store what was sent; the damaged copy was withdrawn from ${damaged.map((d) => `"${d.repository.name}"`).join(', ')}` +
        (damaged.length < repositories.length ? ' (the copies that read back right stay)' : '') +
        '. Check that storage and run the backup again',
    );
  }
  log.info('stored backup verified', { backupId: manifest.id, copies: verified.length });
  return verified;
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
