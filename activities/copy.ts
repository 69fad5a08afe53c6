import { Context, log } from '@temporalio/activity';
import { LifeboatError } from '../src/errors.js';
import { listWal } from '../src/postgres/wal-listing.js';
import { copyBackupFromFirst, copyWal, type BackupCopied, type SourcePassedOver, type WalCopied } from '../src/repository/copy.js';
import type { Repository } from '../src/repository/repository.js';
import { readCatalog } from '../src/retention/catalog.js';
import { leaseForThisRun, releaseLease } from './leases.js';
import { startProgress } from './progress.js';
import { openRepositories } from './repositories.js';
import type { ResolvedTarget } from './target.js';

export type { BackupCopied, WalCopied };

export interface CopyRequest {
  target: ResolvedTarget;
  /** The repository brought up to date. */
  to: string;
  /** The only repository copied from; default: every other repository of the target, in its order. */
  from?: string;
}

export interface CopyPlan {
  to: string;
  /** Where backups are copied from, in the order they are tried. */
  sources: string[];
  /** Sources that did not answer when the plan was made (their backups are copied from the others). */
  unreachable: Array<{ repository: string; problem: string }>;
  /** Complete backups missing at the destination, newest first, with the sources that hold each. */
  backups: Array<{ id: string; kind: string; snapshotAt: string; sizeBytes: number; holders: string[] }>;
  /** Complete backups the destination holds already. */
  alreadyThere: number;
  /** Archived WAL files (PostgreSQL) the sources hold and the destination does not. */
  walMissing: number;
}

function repositoryNamed(target: ResolvedTarget, repositories: Repository[], name: string, role: string): Repository {
  const repository = repositories.find((r) => r.name === name);
  if (!repository) {
    throw new LifeboatError('InvalidInput', `${role} "${name}" is not a repository of target "${target.name}"`, `Its repositories: ${target.repositories.map((r) => r.name).join(', ')}`);
  }
  return repository;
}

/** The destination and the sources of a copy, checked: both repositories of the target, not the same one. */
export function copyEnds(request: CopyRequest, env: NodeJS.ProcessEnv): { destination: Repository; sources: Repository[] } {
  const repositories = openRepositories(request.target, env);
  const destination = repositoryNamed(request.target, repositories, request.to, '--to');
  if (request.from !== undefined) {
    const source = repositoryNamed(request.target, repositories, request.from, '--from');
    if (source === destination) throw new LifeboatError('InvalidInput', `--from and --to both name repository "${request.to}": a repository is copied from another one`, 'Name two different repositories of the target');
    return { destination, sources: [source] };
  }
  const sources = repositories.filter((r) => r !== destination);
  if (sources.length === 0) throw new LifeboatError('InvalidInput', `target "${request.target.name}" has one repository ("${request.to}"): there is nothing to copy it from`, 'Add the repository to copy to (and keep the one that holds the backups) in lifeboat.config.yaml');
  return { destination, sources };
}

/**
 * What a copy has to do: the complete backups the sources hold that the destination does not, and
 * the WAL it lacks. BackupNotFound when no source holds a complete backup at all.
 */
export async function planCopy(request: CopyRequest, env: NodeJS.ProcessEnv): Promise<CopyPlan> {
  const { destination, sources } = copyEnds(request, env);
  const held = await readCatalog(destination, request.target.name);
  const there = new Set(held.backups.map((b) => b.id));
  const unreachable: CopyPlan['unreachable'] = [];
  const byId = new Map<string, CopyPlan['backups'][number]>();
  const walNames = new Set<string>();
  for (const source of sources) {
    try {
      const catalog = await readCatalog(source, request.target.name);
      for (const manifest of catalog.backups) {
        const entry = byId.get(manifest.id) ?? { id: manifest.id, kind: manifest.kind, snapshotAt: manifest.snapshotAt, sizeBytes: manifest.objects.reduce((n, o) => n + o.sizeBytes, 0), holders: [] };
        entry.holders.push(source.name);
        byId.set(manifest.id, entry);
      }
      for (const name of (await listWal(source, request.target.name)).archived) walNames.add(name);
    } catch (error) {
      if (error instanceof LifeboatError || sources.length === 1) throw error;
      unreachable.push({ repository: source.name, problem: error instanceof Error ? error.message : String(error) });
      log.warn('source repository not answering: its backups are copied from the others', { repository: source.name, error: unreachable.at(-1)!.problem });
    }
  }
  if (unreachable.length === sources.length) throw new Error(`no source repository of target "${request.target.name}" answered: ${unreachable.map((u) => `"${u.repository}": ${u.problem}`).join(' | ')}`);
  if (byId.size === 0) {
    throw new LifeboatError(
      'BackupNotFound',
      `${request.from ? `repository "${request.from}"` : `no repository of target "${request.target.name}" other than "${request.to}"`} holds a complete backup of target "${request.target.name}": there is nothing to copy`,
      `Run \`lifeboat backup ${request.target.name}\` first, or \`lifeboat backups ${request.target.name}\` to see what each repository holds`,
    );
  }
  const walThere = walNames.size ? new Set((await listWal(destination, request.target.name)).archived) : new Set<string>();
  return {
    to: destination.name,
    sources: sources.map((s) => s.name),
    unreachable,
    backups: [...byId.values()].filter((b) => !there.has(b.id)).sort((a, b) => (a.id < b.id ? 1 : -1)),
    alreadyThere: [...byId.keys()].filter((id) => there.has(id)).length,
    walMissing: [...walNames].filter((name) => !walThere.has(name)).length,
  };
}

/**
 * Copies one backup into the destination from the first source that serves it intact, holding a
 * lease on it in every source meanwhile (retention leaves it alone). Heartbeats its progress; a
 * retry after a killed worker skips the objects already copied (checked by their sha256).
 */
export async function copyBackupInto(
  input: CopyRequest & { backupId: string; holders?: string[] },
  env: NodeJS.ProcessEnv,
): Promise<BackupCopied & { passedOver: SourcePassedOver[] }> {
  const { destination, sources } = copyEnds(input, env);
  const ordered = input.holders ? [...sources.filter((s) => input.holders!.includes(s.name)), ...sources.filter((s) => !input.holders!.includes(s.name))] : sources;
  const context = Context.current();
  const progress = startProgress('copy', 0);
  try {
    const lease = await leaseForThisRun(ordered, input.target.name, input.backupId);
    const copied = await copyBackupFromFirst(ordered, destination, input.target.name, input.backupId, {
      signal: context.cancellationSignal,
      onProgress: (p) => progress.set({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
      onPassedOver: (passed) => log.warn('source passed over', { backupId: input.backupId, ...passed }),
    });
    await releaseLease(ordered, lease);
    return copied;
  } finally {
    progress.stop();
  }
}

/** Copies the WAL (PostgreSQL) the destination lacks from the sources, each file from the first that holds it intact. */
export async function copyWalInto(input: CopyRequest, env: NodeJS.ProcessEnv): Promise<WalCopied> {
  const { destination, sources } = copyEnds(input, env);
  const context = Context.current();
  const progress = startProgress('copy-wal', 0);
  try {
    const reachable: Repository[] = [];
    for (const source of sources) {
      // A source that does not answer is left out (the others may hold its WAL); none answering is retried.
      if (await source.backend.list(`${input.target.name}/wal/`).then(() => true, () => false)) reachable.push(source);
    }
    if (reachable.length === 0) throw new Error(`no source repository of target "${input.target.name}" answered`);
    return await copyWal(reachable, destination, input.target.name, {
      signal: context.cancellationSignal,
      onProgress: (p) => progress.set({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
    });
  } finally {
    progress.stop();
  }
}
