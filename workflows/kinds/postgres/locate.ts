import { ApplicationFailure } from '@temporalio/workflow';
import type { ResolvedPostgresTarget } from '../../../src/kinds/postgres/index.js';
import type { Manifest } from '../../../src/repository/manifest.js';
import { formatBytes, quickSteps, type Timeline } from '../../runbook.js';

/** The two kinds of PostgreSQL backups a restore can take, and how each one is restored. */
const postgresRestores = {
  'postgres-dump': { name: 'a pg_dump backup', how: 'restore it into a database with method "dump" (--method dump)' },
  'postgres-base': { name: 'a base backup', how: 'restore it as a data directory with method "base" (--method base)' },
} as const;

export type PostgresBackupKind = keyof typeof postgresRestores;

/** Bytes of the source a PostgreSQL backup holds: the dump, or the base backup's tar stream. */
export function postgresSourceBytes(manifest: Manifest): number | undefined {
  if (manifest.kind === 'postgres-base') return manifest.base.tar.sizeBytes;
  if (manifest.kind === 'postgres-dump') return manifest.source.sizeBytes;
  return undefined;
}

/**
 * The locate-backup step of a PostgreSQL restore: the given backup, or the newest one of `kind`.
 * A given backup of the other kind is bad input (InvalidInput), with the method that restores it.
 */
export async function locatePostgresBackup<K extends PostgresBackupKind>(
  timeline: Timeline,
  target: ResolvedPostgresTarget,
  kind: K,
  backupId: string | undefined,
): Promise<Extract<Manifest, { kind: K }>> {
  const located = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : { kind }) }), (m) => {
    const bytes = postgresSourceBytes(m);
    return `backup ${m.id}, snapshot ${m.snapshotAt}${bytes === undefined ? '' : `, ${formatBytes(bytes)}`}`;
  });
  if (located.kind === kind) return located as Extract<Manifest, { kind: K }>;
  const other = located.kind in postgresRestores ? postgresRestores[located.kind as PostgresBackupKind] : undefined;
  throw ApplicationFailure.nonRetryable(
    `backup ${located.id} of target "${target.name}" is a ${located.kind} backup, not ${postgresRestores[kind].name}${other ? `; ${other.how}` : ''}`,
    'InvalidInput',
  );
}
