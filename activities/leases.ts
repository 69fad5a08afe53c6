import { Context, log } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/common';
import { leaseFallbackTtlMs, leaseFormat, removeLease, writeLease, type Lease, type RunOracle } from '../src/retention/leases.js';
import type { Repository } from '../src/repository/repository.js';

/**
 * The lease this step's run takes on backupId ("_all": every backup) in every repository of the
 * target, written before the step reads the manifest (see src/retention/leases.ts). Best effort
 * per repository: a repository that cannot be written now is one the run will hardly read from;
 * it is logged. Returns the lease, or undefined outside a workflow run (nothing to hold it).
 */
export async function leaseForThisRun(repositories: Repository[], target: string, backupId: string): Promise<Lease | undefined> {
  const info = activityInfo();
  if (!info?.workflowExecution) return undefined;
  const now = new Date();
  const lease: Lease = {
    format: leaseFormat,
    target,
    backupId,
    holder: info.workflowExecution.workflowId,
    runId: info.workflowExecution.runId,
    runbook: info.workflowType ?? 'unknown',
    namespace: info.namespace,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + leaseFallbackTtlMs).toISOString(),
  };
  await Promise.all(
    repositories.map((repository) =>
      writeLease(repository, lease).catch((error: unknown) => {
        log.warn('lease not written', { repository: repository.name, backupId, error: error instanceof Error ? error.message : String(error) });
      }),
    ),
  );
  return lease;
}

/** Takes back a lease this run wrote on a backup it then did not use. */
export async function releaseLease(repositories: Repository[], lease: Lease | undefined): Promise<void> {
  if (!lease) return;
  await Promise.all(repositories.map((repository) => removeLease(repository, lease).catch(() => undefined)));
}

/**
 * Asks the Temporal server this worker talks to whether a lease's run is still open. Another
 * namespace, or no answer, is "cannot tell" (the lease's expiry decides).
 */
export function temporalRunOracle(): RunOracle {
  const context = Context.current();
  return async (lease) => {
    if (lease.namespace !== undefined && lease.namespace !== context.info.namespace) return undefined;
    try {
      const description = await context.client.workflow.getHandle(lease.holder, lease.runId).describe();
      return description.status.name === 'RUNNING';
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      log.warn('could not ask Temporal whether a lease holder runs', { holder: lease.holder, error: error instanceof Error ? error.message : String(error) });
      return undefined;
    }
  };
}

function activityInfo(): Context['info'] | undefined {
  try {
    return Context.current().info;
  } catch {
    return undefined;
  }
}
