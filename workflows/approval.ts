import { ApplicationFailure, condition, defineUpdate, setHandler, workflowInfo } from '@temporalio/workflow';
import { approvalAnswer } from '../src/notify/events.js';
import { currentRun, type Timeline } from './runbook.js';
import { notifyChannels, runReference, tellsPeople } from './telling.js';

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

/** An approval the run accepts answers for (see acceptApproval). */
export interface PendingApproval {
  /**
   * The await-approval step: waits up to timeoutSeconds for the answer. Returns when approved;
   * otherwise the step is marked failed and the run fails with NotApproved, `refused` saying what
   * was rejected or timed out and what was left as it was.
   */
  awaitAnswer(timeline: Timeline, timeoutSeconds: number, refused: (decision: ApprovalInput | undefined) => string, action?: string): Promise<void>;
}

/**
 * Registers the approve Update's handler now, so that an operator can answer while the steps
 * before the approval still run; the first answer counts, a second one is rejected.
 */
export function acceptApproval(): PendingApproval {
  let decision: ApprovalInput | undefined;
  setHandler(
    approveUpdate,
    (answer) => {
      decision = { approve: answer.approve, ...(answer.by ? { by: String(answer.by) } : {}) };
      // Who gave it, for the run's audit record and report.
      currentRun()?.approvals.push({ decision: answer.approve ? 'approved' : 'rejected', by: decision.by ?? null, at: new Date().toISOString() });
      return { decision: answer.approve ? 'approved' : 'rejected' };
    },
    {
      validator: (answer) => {
        if (typeof answer?.approve !== 'boolean') throw new Error('the approval needs {"approve": true} or {"approve": false}');
        if (decision !== undefined) throw new Error(`this run was already ${decision.approve ? 'approved' : 'rejected'}`);
      },
    },
  );
  return {
    async awaitAnswer(timeline, timeoutSeconds, refused, action = 'go on') {
      const context = currentRun();
      if (context?.target && tellsPeople() && decision === undefined) {
        const { workflowId } = workflowInfo();
        const deadline = new Date(Date.now() + timeoutSeconds * 1000).toISOString();
        const answer = approvalAnswer(workflowId);
        context.waitingFor =
          `**Waiting for an approval** to ${action}, until ${deadline}; without one it ends and changes nothing. ` +
          `Approve: \`${answer.approve}\`; reject: \`${answer.reject}\`; or send the Update \`approve\` with \`{"approve": true}\`.`;
        // Sent while the run waits (the run awaits delivery before it ends, not before it goes on).
        context.pending.push(...notifyChannels(timeline, context.target, { type: 'approval.waiting', at: new Date().toISOString(), run: runReference(context, context.target), action, deadline, answer }));
      }
      const answer = await timeline.run(
        'await-approval',
        async () => {
          const answered = await condition(() => decision !== undefined, timeoutSeconds * 1000);
          return { value: answered ? decision : undefined, attempt: 1 };
        },
        (d) => (d ? `${d.approve ? 'approved' : 'rejected'}${d.by ? ` by ${d.by}` : ''}` : `no answer within ${timeoutSeconds} s`),
      );
      if (context) context.waitingFor = undefined;
      timeline.showDetails();
      if (answer?.approve) return;
      const step = timeline.steps.at(-1);
      if (step) step.status = 'failed';
      throw ApplicationFailure.nonRetryable(refused(answer), 'NotApproved');
    },
  };
}
