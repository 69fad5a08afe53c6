import { Context, log } from '@temporalio/activity';
import { LifeboatError } from '../src/errors.js';
import { allBackups } from '../src/retention/leases.js';
import { verifyRepository, type RepositoryVerification, type VerifyCheckpoint } from '../src/verify/check.js';
import { parseReadData } from '../src/verify/subset.js';
import { leaseForThisRun, releaseLease } from './leases.js';
import { startProgress } from './progress.js';
import { openRepositories } from './repositories.js';
import type { ResolvedTarget } from './target.js';

export type { RepositoryVerification };

/** The target's repository of that name, opened; InvalidInput when the target has none of that name. */
function repositoryOf(target: ResolvedTarget, name: string, env: NodeJS.ProcessEnv) {
  const repository = openRepositories(target, env).find((r) => r.name === name);
  if (!repository) throw new LifeboatError('InvalidInput', `target "${target.name}" has no repository "${name}"`, `Its repositories: ${target.repositories.map((r) => r.name).join(', ')}`);
  return repository;
}

/**
 * Verifies what one repository stores for the target (src/verify/check.ts), holding a lease on
 * every backup of the target meanwhile (retention leaves them alone). Reading heartbeats its
 * progress and where it is; a retry after a killed worker goes on from there instead of reading
 * everything again. Changes nothing but the verification state.
 */
export async function verifyStoredRepository(
  input: { target: ResolvedTarget; repository: string; readData?: unknown; readLimitMiBPerSecond?: number },
  env: NodeJS.ProcessEnv,
): Promise<RepositoryVerification> {
  const readData = parseReadData(input.readData);
  const limit = input.readLimitMiBPerSecond;
  if (limit !== undefined && !(typeof limit === 'number' && limit > 0)) {
    throw new LifeboatError('InvalidInput', `readLimitMiBPerSecond is ${JSON.stringify(limit)}; it must be a number of MiB per second above 0`);
  }
  const repository = repositoryOf(input.target, input.repository, env);
  const context = Context.current();
  const resume = resumePoint(context.info.heartbeatDetails);
  const progress = startProgress('list', 0);
  try {
    const lease = await leaseForThisRun([repository], input.target.name, allBackups);
    const result = await verifyRepository({
      repository,
      target: input.target.name,
      readData,
      // The run, not only its workflow id: two verify runs started within one second share the id
      // (verify-<target>-<second>), and the second must move the cursor on, not read the same slices.
      runId: context.info.workflowExecution ? `${context.info.workflowExecution.workflowId}/${context.info.workflowExecution.runId}` : `activity-${context.info.activityId}`,
      resume,
      onCheckpoint: (checkpoint) => progress.attach({ checkpoint }),
      onProgress: (p) => progress.set(p),
      signal: context.cancellationSignal,
      readLimitMiBPerSecond: input.readLimitMiBPerSecond,
    });
    await releaseLease([repository], lease);
    if (resume) log.info('verification went on from where an earlier attempt stopped', { repository: repository.name, after: resume.lastKey, bytes: resume.bytesDone });
    return result;
  } finally {
    progress.stop();
  }
}

function resumePoint(details: unknown): VerifyCheckpoint | undefined {
  const checkpoint = (details as { checkpoint?: VerifyCheckpoint } | undefined)?.checkpoint;
  return checkpoint && typeof checkpoint.lastKey === 'string' && typeof checkpoint.readAt === 'string' ? checkpoint : undefined;
}

/**
 * Takes the manifest of each given damaged copy out of its repository (the copy is then no longer
 * listed or restored; its objects stay until `lifeboat copy` repairs it from a good copy or
 * retention removes them as a dead upload). Idempotent.
 */
export async function withdrawDamagedCopies(input: { target: ResolvedTarget; copies: Array<{ repository: string; backupId: string }> }, env: NodeJS.ProcessEnv): Promise<{ withdrawn: number }> {
  for (const copy of input.copies) {
    const repository = repositoryOf(input.target, copy.repository, env);
    await repository.backend.delete(repository.manifestKey(input.target.name, copy.backupId));
    log.warn('damaged copy withdrawn', { repository: copy.repository, backupId: copy.backupId });
  }
  return { withdrawn: input.copies.length };
}
