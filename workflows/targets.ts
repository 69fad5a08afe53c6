import { ApplicationFailure } from '@temporalio/workflow';
import type { ResolvedTargetBase } from '../activities/index.js';
import type { TargetRunbooks } from './kinds/contract.js';
import { targetRunbooks } from './kinds/index.js';

/**
 * The runbooks of a target's kind. Fails the run (InvalidConfig) for a type no kind registers
 * here: the worker's config knows a kind that its workflow code does not.
 */
export function runbooksFor(target: ResolvedTargetBase, registry: readonly TargetRunbooks[] = targetRunbooks): TargetRunbooks {
  const kind = registry.find((candidate) => candidate.type === target.type);
  if (!kind) {
    throw ApplicationFailure.nonRetryable(
      `target "${target.name}" is of type "${target.type}", and the runbooks know ${registry.map((k) => `"${k.type}"`).join(', ')} only`,
      'InvalidConfig',
    );
  }
  return kind;
}

/** The resolve-target step's detail: what the run works on (and, with repositories, where it stores). */
export function describeTarget(target: ResolvedTargetBase, options: { repositories?: boolean } = {}, registry: readonly TargetRunbooks[] = targetRunbooks): string {
  const what = runbooksFor(target, registry).describe(target);
  if (!options.repositories) return what;
  return `${what} -> ${target.repositories.map((r) => r.name).join(', ')}${target.encryption ? ` (encrypted, key ${target.encryption.keyId})` : ''}`;
}

/**
 * The run's backup method: the input's `method` if the kind has it. One the kind does not have, or
 * any method for a kind without methods, is bad input (InvalidInput).
 */
export function methodOf(
  input: { method?: unknown },
  target: ResolvedTargetBase,
  kind: TargetRunbooks,
  registry: readonly TargetRunbooks[] = targetRunbooks,
): string | undefined {
  const method = input.method;
  if (method === undefined) return undefined;
  if (typeof method === 'string' && kind.methods.includes(method)) return method;
  if (kind.methods.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `"method" is "${String(method)}"; a backup's method on a ${target.type} target is ${kind.methods.map((m) => `"${m}"`).join(' or ')}`,
      'InvalidInput',
    );
  }
  const withMethods = registry.filter((k) => k.methods.length > 0).map((k) => k.type);
  throw ApplicationFailure.nonRetryable(
    `target "${target.name}" is a ${target.type} target; "method" applies to ${withMethods.length ? withMethods.join(' and ') : 'no'} targets`,
    'InvalidInput',
  );
}
