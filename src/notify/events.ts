import type { NotificationEventType } from '../config/schema.js';
import type { RequestedBy } from '../requested-by.js';

/**
 * What a runbook tells people. Each event is plain data built by the workflow from what the run
 * recorded (never a secret), the `data` of a Standard Webhooks payload `{type, timestamp, data}`,
 * and the facts of a Slack message (src/notify/messages.ts).
 */
export interface RunReference {
  /** The workflow type: backup, restore, drill, pitr, verify, ... */
  runbook: string;
  target: string;
  workflowId: string;
  runId: string;
  /** Who asked for the run (the memo `requestedBy`), null when the run does not say. */
  requestedBy: RequestedBy | Record<string, unknown> | null;
}

interface EventBase {
  /** When it happened (the workflow's clock): the payload's `timestamp`, the same in every retry. */
  at: string;
}

export interface Objective {
  seconds: number;
  targetSeconds: number | null;
  met: boolean | null;
}

export interface RunbookFailedEvent extends EventBase {
  type: 'runbook.failed';
  run: RunReference;
  failure: { type: string | null; message: string };
  /** The last step that ran, when there was one. */
  step: string | null;
}

export interface DrillFinishedEvent extends EventBase {
  type: 'drill.finished';
  run: RunReference;
  passed: boolean;
  backupId: string | null;
  snapshotAt: string | null;
  rto: Objective | null;
  rpo: Objective | null;
  checks: { passed: number; total: number };
  failure: { type: string | null; message: string } | null;
  reportKeys: string[];
}

export interface ApprovalWaitingEvent extends EventBase {
  type: 'approval.waiting';
  run: RunReference;
  /** What the approval allows, in words ("replace the live cluster in /srv/pg/main"). */
  action: string;
  /** Until when the run waits; then it ends without doing it. */
  deadline: string;
  /** How to answer: the CLI commands, and the Update the Temporal UI (or any client) sends. */
  answer: { approve: string; reject: string; update: { name: 'approve'; approve: { approve: true }; reject: { approve: false } } };
}

export interface VerifyDamagedEvent extends EventBase {
  type: 'verify.damaged';
  run: RunReference;
  damaged: Array<{ repository: string; backupId: string; problem: string }>;
}

export type NotificationEvent = RunbookFailedEvent | DrillFinishedEvent | ApprovalWaitingEvent | VerifyDamagedEvent;

// Every event type the config can subscribe to has a payload above, and nothing else.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const eventTypesMatch: Same<NotificationEvent['type'], NotificationEventType> = true;
void eventTypesMatch;

/** How to answer an approval a run waits for. */
export function approvalAnswer(workflowId: string): ApprovalWaitingEvent['answer'] {
  return {
    approve: `lifeboat approve ${workflowId}`,
    reject: `lifeboat approve ${workflowId} --reject`,
    update: { name: 'approve', approve: { approve: true }, reject: { approve: false } },
  };
}
