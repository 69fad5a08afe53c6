import { ApplicationFailure } from '@temporalio/workflow';
import type { ResolvedTarget, ResolvedSqliteTarget } from '../activities/index.js';

/** The resolve-target step's detail: what the run works on (and, with repositories, where it stores). */
export function describeTarget(target: ResolvedTarget, options: { repositories?: boolean } = {}): string {
  const what =
    target.type === 'sqlite'
      ? `${target.type} ${target.path}`
      : `${target.type} ${target.connection.user}@${target.connection.host}:${target.connection.port}/${target.connection.database}`;
  if (!options.repositories) return what;
  return `${what} -> ${target.repositories.map((r) => r.name).join(', ')}${target.encryption ? ` (encrypted, key ${target.encryption.keyId})` : ''}`;
}

/** Narrows to a SQLite target, or fails the run (bad input) for runbooks that handle only SQLite so far. */
export function sqliteOnly(target: ResolvedTarget, runbook: string): ResolvedSqliteTarget {
  if (target.type === 'sqlite') return target;
  throw ApplicationFailure.nonRetryable(
    `target "${target.name}" is a ${target.type} target; the ${runbook} runbook handles sqlite targets so far (backup and restore handle both)`,
    'InvalidInput',
  );
}
