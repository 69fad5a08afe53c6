/**
 * What an operator does with a Lifeboat schedule between applies: list, pause (with a note saying
 * why), unpause, trigger a run now. Only Lifeboat's own schedules (owner memo) are touched.
 */
import type { Client, ScheduleDescription } from '@temporalio/client';
import type { TemporalSettings } from '../client.js';
import { LifeboatError } from '../errors.js';
import { configOverlap, ownerOf, scheduleIdPrefix } from './declared.js';
import { describeIfAny, lifeboatSchedulesOnServer } from './sync.js';

/** `lifeboat/orders/nightly`, or the short `orders/nightly`. */
export function fullScheduleId(id: string): string {
  return id.startsWith(scheduleIdPrefix) ? id : `${scheduleIdPrefix}${id}`;
}

/** A Lifeboat schedule by id, or ScheduleNotFound naming the ones there are. */
export async function lifeboatSchedule(client: Client, settings: TemporalSettings, id: string): Promise<{ id: string; description: ScheduleDescription }> {
  const full = fullScheduleId(id);
  const description = await describeIfAny(client, full);
  if (description && ownerOf(description.memo)) return { id: full, description };
  const known = [...(await lifeboatSchedulesOnServer(client, settings)).keys()];
  throw new LifeboatError(
    'ScheduleNotFound',
    description ? `schedule "${full}" was not created by Lifeboat; Lifeboat leaves it alone` : `no schedule "${full}" on the server`,
    known.length ? `Lifeboat's schedules on task queue "${settings.taskQueue}": ${known.join(', ')}` : 'Declare schedules under targets.<target>.schedules and run `lifeboat schedules apply`',
  );
}

export interface ScheduleListing {
  id: string;
  runbook: string;
  workflowId: string;
  overlap: string;
  paused: boolean;
  note?: string;
  nextRuns: string[];
  lastRun?: { workflowId: string; scheduledAt: string; status: string };
  running: string[];
  actionsTaken: number;
  skippedOverlap: number;
  missedCatchupWindow: number;
}

async function statusOf(client: Client, workflowId: string): Promise<string> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name;
  } catch {
    return 'UNKNOWN';
  }
}

export async function listSchedules(client: Client, settings: TemporalSettings): Promise<ScheduleListing[]> {
  const listings: ScheduleListing[] = [];
  for (const [id, description] of await lifeboatSchedulesOnServer(client, settings)) {
    const last = description.info.recentActions.at(-1);
    listings.push({
      id,
      runbook: description.action.workflowType,
      workflowId: description.action.workflowId ?? '',
      overlap: configOverlap(description.policies.overlap),
      paused: description.state.paused,
      ...(description.state.note ? { note: description.state.note } : {}),
      nextRuns: description.info.nextActionTimes.slice(0, 2).map((time) => time.toISOString()),
      ...(last
        ? { lastRun: { workflowId: last.action.workflow.workflowId, scheduledAt: last.scheduledAt.toISOString(), status: await statusOf(client, last.action.workflow.workflowId) } }
        : {}),
      running: description.info.runningActions.map((action) => action.workflow.workflowId),
      actionsTaken: description.info.numActionsTaken,
      skippedOverlap: description.info.numActionsSkippedOverlap,
      missedCatchupWindow: description.info.numActionsMissedCatchupWindow,
    });
  }
  return listings.sort((a, b) => (a.id < b.id ? -1 : 1));
}

export async function pauseSchedule(client: Client, settings: TemporalSettings, id: string, note: string): Promise<string> {
  const { id: full } = await lifeboatSchedule(client, settings, id);
  await client.schedule.getHandle(full).pause(note);
  return full;
}

export async function unpauseSchedule(client: Client, settings: TemporalSettings, id: string, note: string): Promise<string> {
  const { id: full } = await lifeboatSchedule(client, settings, id);
  await client.schedule.getHandle(full).unpause(note);
  return full;
}

/**
 * Starts a run now, under the schedule's own overlap policy (the SDK's default would allow one
 * more run beside a running one): with "skip", a trigger while a run goes on starts nothing.
 */
export async function triggerSchedule(client: Client, settings: TemporalSettings, id: string): Promise<{ id: string; overlap: string }> {
  const { id: full, description } = await lifeboatSchedule(client, settings, id);
  await client.schedule.getHandle(full).trigger(description.policies.overlap);
  return { id: full, overlap: configOverlap(description.policies.overlap) };
}
