import type { CopyInput, CopyResult } from '../workflows/copy.js';
import type { Config } from './config/schema.js';
import { UsageError } from './errors.js';

/**
 * The `lifeboat copy` command's own part (src/cli.ts registers it): its description, the input it
 * sends, checked before anything starts, and how a finished copy is printed.
 */

export const copyDescription =
  'bring one repository of a target up to date from the others (3-2-1): every complete backup missing there (newest first) ' +
  'and, for PostgreSQL, the WAL missing there, copied object by object with each sha256 checked at the destination, the manifest last. ' +
  'Resumable (objects already there with the right sha256 are skipped); never deletes at the destination. Exit 1 when a file was damaged in every source';

/** The copy's input; UsageError when --to or --from is not a repository of the target, or both name the same one. */
export function copyInput(config: Config | undefined, target: string, options: { to: string; from?: string }): CopyInput {
  if (options.from !== undefined && options.from === options.to) {
    throw new UsageError(`--from and --to both name repository "${options.to}": a repository is copied from another one`);
  }
  const repositories = config?.targets[target]?.repositories;
  if (repositories) {
    for (const [flag, name] of [['--to', options.to], ['--from', options.from]] as const) {
      if (name !== undefined && !repositories.includes(name)) throw new UsageError(`${flag} ${name}: target "${target}" has no repository of that name (its repositories: ${repositories.join(', ')})`);
    }
    if (repositories.length < 2) throw new UsageError(`target "${target}" has one repository: there is nothing to copy it from`);
  }
  return { target, to: options.to, ...(options.from !== undefined ? { from: options.from } : {}) };
}

export function copyLines(r: CopyResult): { lines: string[]; failed: boolean } {
  const copied = r.backups.filter((b) => !b.alreadyThere);
  const bytes = copied.reduce((n, b) => n + b.bytesCopied, 0) + (r.wal?.bytesCopied ?? 0);
  return {
    failed: !r.complete,
    lines: [
      `copy of ${r.target} into ${r.to}: ${copied.length} backups copied, ${r.alreadyThere + r.backups.length - copied.length} there already` +
        `${r.wal ? `, ${r.wal.filesCopied} WAL files` : ''} (${formatBytes(bytes)}) from ${r.from ?? r.sources.join(', ')}`,
      ...r.unreachable.map((u) => `  source ${u.repository} did not answer: ${u.problem}`),
      ...r.backups.flatMap((b) => b.passedOver.map((p) => `  backup ${b.backupId}: passed over ${p.repository}: ${p.problem}`)),
      ...(r.wal?.notCopied ?? []).map((n) => `  WAL ${n.name} NOT COPIED (damaged in every source): ${n.problem}`),
    ],
  };
}

function formatBytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${bytes} bytes` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
