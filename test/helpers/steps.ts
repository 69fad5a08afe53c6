/**
 * The steps (activities) a runbook has under way, as the Temporal server describes them: what the
 * kill-the-worker tests wait for before they kill, and ask about afterwards.
 */
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';

/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED */
const pendingActivityStarted = 2;

export interface PendingStep {
  activityType: string;
  /** A worker has the task (not merely scheduled): killing that worker interrupts the step. */
  started: boolean;
  attempt: number;
  /** From the step's last heartbeat (activities/progress.ts). */
  phase?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

export async function pendingSteps(client: Client, workflowId: string): Promise<{ running: boolean; steps: PendingStep[]; status: string }> {
  const description = await client.workflow.getHandle(workflowId).describe();
  const steps = (description.raw.pendingActivities ?? []).map((activity): PendingStep => {
    const data = activity.heartbeatDetails?.payloads?.[0]?.data;
    const details = data ? (JSON.parse(Buffer.from(data).toString()) as Pick<PendingStep, 'phase' | 'bytesDone' | 'bytesTotal'>) : {};
    return { activityType: activity.activityType?.name ?? '?', started: activity.state === pendingActivityStarted, attempt: activity.attempt ?? 1, ...details };
  });
  return { running: description.status.name === 'RUNNING', steps, status: description.status.name };
}

/** Polls until a started step of the run satisfies the predicate; fails if the run ends first. */
export async function waitForStep(client: Client, workflowId: string, matches: (step: PendingStep) => boolean, timeoutMs = 60_000): Promise<PendingStep> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const { steps, running, status } = await pendingSteps(client, workflowId);
    const step = steps.find((s) => s.started && matches(s));
    if (step) return step;
    if (!running) throw new Error(`${workflowId} ended (${status}) before the awaited step`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for a step of ${workflowId}`);
}

/**
 * The step the SIGKILLed worker was running: the server lists it as started until its heartbeat
 * times out. Asked after the kill, so a step that finished between noticing it and the kill is not
 * mistaken for the interrupted one.
 */
export async function stepOfKilledWorker(client: Client, workflowId: string): Promise<string> {
  const running = (await pendingSteps(client, workflowId)).steps.filter((s) => s.started);
  assert.equal(running.length, 1, `one step was running when the worker was killed: ${running.map((s) => s.activityType).join(', ') || 'none'}`);
  return running[0]!.activityType;
}

/**
 * Asserts that a run's compensation (the first `compensation` step) was scheduled only after every
 * step scheduled before it had ended: cleanup never races a step still writing.
 */
export async function assertCompensationAfterSteps(client: Client, workflowId: string, compensation: string): Promise<void> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const open = new Map<string, string>();
  for (const event of events) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const type = scheduled.activityType?.name ?? '?';
      if (type === compensation) {
        assert.deepEqual([...open.values()], [], `${compensation} was scheduled while these steps were still running`);
        return;
      }
      open.set(String(event.eventId), type);
    }
    const closed =
      event.activityTaskCompletedEventAttributes ??
      event.activityTaskFailedEventAttributes ??
      event.activityTaskTimedOutEventAttributes ??
      event.activityTaskCanceledEventAttributes;
    if (closed) open.delete(String(closed.scheduledEventId));
  }
  assert.fail(`${workflowId} never scheduled ${compensation}`);
}
