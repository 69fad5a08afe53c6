import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { randomBytes } from 'node:crypto';
import type { BackupInput, BackupResult } from '../workflows/backup.js';
import type { DrillInput, DrillReport } from '../workflows/drill.js';
import type { PitrInput, PitrResult } from '../workflows/pitr.js';
import type { RestoreInput, RestoreResult } from '../workflows/restore.js';
import type { RetentionInput, RetentionResult } from '../workflows/retention.js';
import type { VerifyInput, VerifyReport } from '../workflows/verify.js';
import type { CopyInput, CopyResult } from '../workflows/copy.js';
import { compactTimestamp } from './backup-id.js';
import { LifeboatError } from './errors.js';
import { cliRequester, describeRequester, requestedByKeyword, type RequestedBy } from './requested-by.js';

export type RunbookKind = 'backup' | 'restore' | 'drill' | 'pitr' | 'verify' | 'retention' | 'copy';

export interface RunbookTypes {
  backup: { input: BackupInput; result: BackupResult };
  restore: { input: RestoreInput; result: RestoreResult };
  drill: { input: DrillInput; result: DrillReport };
  pitr: { input: PitrInput; result: PitrResult };
  verify: { input: VerifyInput; result: VerifyReport };
  retention: { input: RetentionInput; result: RetentionResult };
  copy: { input: CopyInput; result: CopyResult };
}

/** Typed search attributes registered on the server (the dev server registers them at start). */
export const searchAttributes = {
  target: defineSearchAttributeKey('LifeboatTarget', SearchAttributeType.KEYWORD),
  kind: defineSearchAttributeKey('LifeboatKind', SearchAttributeType.KEYWORD),
  /** Who started the run: `cli:<user>@<host>`, `schedule:<schedule id>` (src/requested-by.ts). */
  requestedBy: defineSearchAttributeKey('LifeboatRequestedBy', SearchAttributeType.KEYWORD),
};

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
}

export async function connectClient(settings: TemporalSettings): Promise<Client> {
  const connection = await Connection.connect({ address: settings.address }).catch((error: unknown) => {
    throw new LifeboatError(
      'TemporalUnavailable',
      `cannot reach the Temporal server at ${settings.address} (namespace ${settings.namespace}): ${innermostMessage(error)}`,
      'Is it running? Set TEMPORAL_ADDRESS (or temporal.address in the config) to where it listens; nothing was started',
      { cause: error },
    );
  });
  return new Client({ connection, namespace: settings.namespace });
}

/** gRPC and the SDK wrap the cause ("Failed to start Workflow" around "14 UNAVAILABLE: ..."). */
export function innermostMessage(error: unknown): string {
  let current = error;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

/** The run's one-line summary in the Temporal UI (the same whoever started it). */
export function summaryOf(kind: string, input: { target: string }): string {
  const restore = input as RestoreInput;
  switch (kind) {
    case 'backup':
      return `Backup of target "${input.target}"`;
    case 'restore':
      return `Restore of target "${input.target}" from ${restore.backupId ?? 'the newest backup'}${restore.method ? ` (method ${restore.method})` : ''}${restore.into ? ` into ${restore.into}` : ''}`;
    case 'drill':
      return `Restore drill of target "${input.target}"`;
    case 'pitr': {
      const pitr = input as PitrInput;
      const to = pitr.recoveryTarget ?? { kind: 'latest' };
      const where = to.kind === 'time' ? to.time : to.kind === 'lsn' ? to.lsn : to.kind === 'xid' ? String(to.xid) : to.kind === 'name' ? `"${to.name}"` : '';
      return `Point-in-time recovery of target "${input.target}" to ${to.kind}${where ? ` ${where}` : ''}${pitr.backupId ? ` from ${pitr.backupId}` : ''}`;
    }
    case 'verify': {
      const verify = input as VerifyInput;
      return `Verification of target "${input.target}" (read data: ${verify.readData ?? 'none'})${verify.withdrawDamaged ? ', withdrawing damaged copies' : ''}`;
    }
    case 'retention': {
      const retention = input as RetentionInput;
      return `Retention of target "${input.target}"${retention.dryRun ? ' (dry run: plan only)' : retention.approval ? ' (removes after an approval)' : ''}`;
    }
    case 'copy': {
      const copy = input as CopyInput;
      return `Copy of target "${input.target}" into repository ${copy.to}${copy.from ? ` from ${copy.from}` : ' from the others'}`;
    }
    default:
      return `${kind.charAt(0).toUpperCase()}${kind.slice(1)} of target "${input.target}"`;
  }
}

/** Runs end within a day whatever goes wrong (a stuck step, an approval nobody gives). */
export const runbookExecutionTimeout = '24 hours';

/**
 * What every run carries, however it was started (CLI, schedule): its input, summary, details,
 * who asked (memo and search attribute) and the search attributes the UI filters on.
 */
export function runbookStartOptions(kind: string, input: { target: string }, requestedBy: RequestedBy) {
  return {
    args: [input],
    staticSummary: summaryOf(kind, input),
    staticDetails: describeRequester(requestedBy),
    memo: { requestedBy },
    typedSearchAttributes: [
      { key: searchAttributes.target, value: input.target },
      { key: searchAttributes.kind, value: kind },
      { key: searchAttributes.requestedBy, value: requestedByKeyword(requestedBy) },
    ],
    workflowExecutionTimeout: runbookExecutionTimeout,
  };
}

/**
 * The workflow id of a run started by hand: what ran, on which target, when (to the second), and
 * four random hex digits ("backup-orders-20261121T020000Z-3f9a"). Two runs started in the same
 * second get two ids, so what is stored under a run's id (its report, its audit record) is never
 * overwritten by the next one's. Scheduled runs keep the ids Temporal gives them.
 */
export function manualWorkflowId(kind: string, target: string, now: Date = new Date(), suffix: string = randomBytes(2).toString('hex')): string {
  return `${kind}-${target}-${compactTimestamp(now)}-${suffix}`;
}

/**
 * Starts a runbook under a new id (manualWorkflowId), with a summary for the UI and the search
 * attributes the UI filters on. An id is never used twice: one that ran before (REJECT_DUPLICATE)
 * or runs now is drawn again.
 */
export async function startRunbook<K extends RunbookKind>(
  client: Client,
  settings: TemporalSettings,
  kind: K,
  input: RunbookTypes[K]['input'],
  now: Date = new Date(),
  requestedBy: RequestedBy = cliRequester(),
): Promise<WorkflowHandleWithFirstExecutionRunId> {
  const start = (workflowId: string) =>
    client.workflow.start(kind, { taskQueue: settings.taskQueue, workflowId, workflowIdReusePolicy: 'REJECT_DUPLICATE', ...runbookStartOptions(kind, input, requestedBy) });
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(manualWorkflowId(kind, input.target, now));
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError) || attempt >= 5) throw error;
    }
  }
}

/**
 * Starts a runbook under a workflow id the caller derived from its request (chatops: from Slack's
 * trigger id), at most once: the same id again, while the run goes on or after it ended, starts
 * nothing and returns the run that has it (`alreadyStarted`). So a retried request gets the same
 * answer and never a second run.
 */
export async function startRunbookOnce<K extends RunbookKind>(
  client: Client,
  settings: TemporalSettings,
  kind: K,
  input: RunbookTypes[K]['input'],
  requestedBy: RequestedBy,
  workflowId: string,
): Promise<{ workflowId: string; runId: string; alreadyStarted: boolean }> {
  try {
    const handle = await client.workflow.start(kind, {
      taskQueue: settings.taskQueue,
      workflowId,
      // A closed run keeps its id: a retry after the run ended must not start it again.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      ...runbookStartOptions(kind, input, requestedBy),
    });
    return { workflowId, runId: handle.firstExecutionRunId, alreadyStarted: false };
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    const description = await client.workflow.getHandle(workflowId).describe();
    return { workflowId, runId: description.runId, alreadyStarted: true };
  }
}

/** The typed failure behind a failed run: its type name (TargetNotFound, ...) and message. */
export function runbookFailure(error: unknown): { type: string | undefined; message: string } {
  let current: unknown = error instanceof WorkflowFailedError ? error.cause : error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  if (current instanceof ApplicationFailure) return { type: current.type ?? undefined, message: current.message };
  return { type: undefined, message: current instanceof Error ? current.message : String(current) };
}
