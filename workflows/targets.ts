import { ApplicationFailure } from '@temporalio/workflow';
import type { ResolvedPostgresTarget, ResolvedTarget } from '../activities/index.js';
import type { Manifest, SqliteManifest } from '../src/repository/manifest.js';
import { formatBytes, quickSteps, type Timeline } from './runbook.js';

/** The resolve-target step's detail: what the run works on (and, with repositories, where it stores). */
export function describeTarget(target: ResolvedTarget, options: { repositories?: boolean } = {}): string {
  const what =
    target.type === 'sqlite'
      ? `${target.type} ${target.path}`
      : `${target.type} ${target.connection.user}@${target.connection.host}:${target.connection.port}/${target.connection.database} (method ${target.method})`;
  if (!options.repositories) return what;
  return `${what} -> ${target.repositories.map((r) => r.name).join(', ')}${target.encryption ? ` (encrypted, key ${target.encryption.keyId})` : ''}`;
}

/** Bytes of the source as backed up: the file, the dump, or the base backup's tar stream. */
export function sourceBytesOf(manifest: Manifest): number {
  return manifest.kind === 'postgres-base' ? manifest.base.tar.sizeBytes : manifest.source.sizeBytes;
}

/** What a SQLite restore must decode: the database file as it was snapshotted. */
export function fetchedDatabase(manifest: SqliteManifest): { sha256: string; sizeBytes: number } {
  return { sha256: manifest.source.sha256, sizeBytes: manifest.source.sizeBytes };
}

/** The two kinds of PostgreSQL backups a restore can take, and how each one is restored. */
const postgresRestores = {
  'postgres-dump': { name: 'a pg_dump backup', how: 'restore it into a database with method "dump" (--method dump)' },
  'postgres-base': { name: 'a base backup', how: 'restore it as a data directory with method "base" (--method base)' },
} as const;

type PostgresBackupKind = keyof typeof postgresRestores;

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
  const located = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : { kind }) }), (m) =>
    `backup ${m.id}, snapshot ${m.snapshotAt}, ${formatBytes(sourceBytesOf(m))}`,
  );
  if (located.kind === kind) return located as Extract<Manifest, { kind: K }>;
  const other = located.kind in postgresRestores ? postgresRestores[located.kind as PostgresBackupKind] : undefined;
  throw ApplicationFailure.nonRetryable(
    `backup ${located.id} of target "${target.name}" is a ${located.kind} backup, not ${postgresRestores[kind].name}${other ? `; ${other.how}` : ''}`,
    'InvalidInput',
  );
}
