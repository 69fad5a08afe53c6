import { defineUpdate } from '@temporalio/workflow';

/** An operator's answer to a runbook that waits before a destructive step (e.g. replacing a database). */
export interface ApprovalInput {
  approve: boolean;
  /** Who decided, for the timeline (free text). */
  by?: string;
}

export interface ApprovalResult {
  decision: 'approved' | 'rejected';
}

/**
 * The Update that answers a pending approval: `lifeboat approve <workflowId> [--reject]`, or the
 * Temporal UI (Update name "approve", argument {"approve": true}). Runs that wait for nothing
 * reject it.
 */
export const approveUpdate = defineUpdate<ApprovalResult, [ApprovalInput]>('approve');
