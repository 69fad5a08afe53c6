/**
 * `lifeboat schedules apply`: makes the server's Lifeboat schedules match the config, idempotently.
 *
 * - A declared schedule the server lacks is created; one that differs in anything Lifeboat sets is
 *   updated in place (its history of runs stays); one that matches is not touched at all.
 * - A schedule Lifeboat created (owner memo, id lifeboat/...) for this task queue that the config no
 *   longer declares is deleted. Nobody else's schedule is ever changed or deleted: an id the config
 *   wants that is held by a schedule Lifeboat did not create, or by the Lifeboat of another task
 *   queue, is a conflict, and apply then changes nothing.
 * - An operator's pause and its note survive an update (Temporal replaces a schedule's state with
 *   the update's, so apply hands the current one back).
 */
import { ScheduleNotFoundError, type Client, type ScheduleDescription } from '@temporalio/client';
import { innermostMessage, searchAttributes, type TemporalSettings } from '../client.js';
import { LifeboatError } from '../errors.js';
import { declarationOf, ownerOf, scheduleIdPrefix, viewOfDescription, type DeclaredSchedule, type ScheduleView } from './declared.js';

interface ServerState {
  paused: boolean;
  note?: string;
}

export type PlannedChange =
  | { action: 'create'; id: string; declared: DeclaredSchedule }
  | ({ action: 'update'; id: string; declared: DeclaredSchedule; differences: string[] } & ServerState)
  | ({ action: 'unchanged'; id: string; declared: DeclaredSchedule } & ServerState)
  | ({ action: 'delete'; id: string; runbook: string } & ServerState)
  | { action: 'conflict'; id: string; declared: DeclaredSchedule; reason: string };

export async function describeIfAny(client: Client, id: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return undefined;
    throw error;
  }
}

function stateOf(description: ScheduleDescription): ServerState {
  return { paused: description.state.paused, ...(description.state.note ? { note: description.state.note } : {}) };
}

const fieldNames: Record<keyof ScheduleView, string> = {
  workflowType: 'runbook',
  workflowId: 'workflow id',
  taskQueue: 'task queue',
  input: 'input',
  summary: 'summary',
  details: 'details',
  searchAttributes: 'search attributes',
  requestedBy: 'declaration',
  overlap: 'overlap',
  catchupWindow: 'catch-up window',
  pauseOnFailure: 'pause on failure',
  timezone: 'time zone',
  jitter: 'jitter',
};

function differencesOf(declared: DeclaredSchedule, description: ScheduleDescription): string[] {
  const actual = viewOfDescription(description);
  const differences: string[] = [];
  for (const field of Object.keys(fieldNames) as Array<keyof ScheduleView>) {
    if (actual[field] === declared.view[field]) continue;
    if (field === 'requestedBy') {
      // The declaration hash covers what a description cannot show as written (the cron string).
      differences.push(`declaration ${declarationOf(description) ?? '(none)'} -> ${declared.declaration} (${declared.when})`);
    } else {
      differences.push(`${fieldNames[field]} ${String(actual[field]) || '(none)'} -> ${String(declared.view[field])}`);
    }
  }
  return differences;
}

/**
 * The Lifeboat schedules of this task queue on the server, by id. The listing is eventually
 * consistent (a schedule created a moment ago may be missing): only deletions rely on it, and a
 * schedule it misses is deleted by the next apply.
 */
export async function lifeboatSchedulesOnServer(client: Client, settings: TemporalSettings): Promise<Map<string, ScheduleDescription>> {
  const found = new Map<string, ScheduleDescription>();
  for await (const summary of client.schedule.list()) {
    if (!summary.scheduleId.startsWith(scheduleIdPrefix) || !ownerOf(summary.memo)) continue;
    const description = await describeIfAny(client, summary.scheduleId);
    if (description && ownerOf(description.memo) && description.action.taskQueue === settings.taskQueue) found.set(summary.scheduleId, description);
  }
  return found;
}

/** What apply would do, schedule by schedule (nothing is changed). */
export async function planSchedules(client: Client, settings: TemporalSettings, declared: DeclaredSchedule[]): Promise<PlannedChange[]> {
  const plan: PlannedChange[] = [];
  for (const schedule of declared) {
    const description = await describeIfAny(client, schedule.id);
    if (!description) {
      plan.push({ action: 'create', id: schedule.id, declared: schedule });
    } else if (!ownerOf(description.memo)) {
      plan.push({
        action: 'conflict',
        id: schedule.id,
        declared: schedule,
        reason: `a schedule with this id exists on the server and was not created by Lifeboat (it starts ${description.action.workflowType} on task queue "${description.action.taskQueue}"); Lifeboat does not take it over. Delete it (temporal schedule delete --schedule-id '${schedule.id}') or rename ${schedule.configPath}`,
      });
    } else if (description.action.taskQueue !== settings.taskQueue) {
      plan.push({
        action: 'conflict',
        id: schedule.id,
        declared: schedule,
        reason: `this schedule belongs to the Lifeboat installation on task queue "${description.action.taskQueue}", not "${settings.taskQueue}"; apply that installation's config, or delete the schedule (lifeboat schedules apply with LIFEBOAT_TASK_QUEUE=${description.action.taskQueue} and without it in the config)`,
      });
    } else {
      const differences = differencesOf(schedule, description);
      plan.push(differences.length ? { action: 'update', id: schedule.id, declared: schedule, differences, ...stateOf(description) } : { action: 'unchanged', id: schedule.id, declared: schedule, ...stateOf(description) });
    }
  }
  const wanted = new Set(declared.map((schedule) => schedule.id));
  for (const [id, description] of await lifeboatSchedulesOnServer(client, settings)) {
    if (!wanted.has(id)) plan.push({ action: 'delete', id, runbook: description.action.workflowType, ...stateOf(description) });
  }
  return plan;
}

/** Carries a plan out. Refuses (ScheduleConflict) before changing anything when the plan has a conflict. */
export async function applyPlan(client: Client, plan: PlannedChange[]): Promise<void> {
  const conflicts = plan.filter((change) => change.action === 'conflict');
  if (conflicts.length) {
    throw new LifeboatError(
      'ScheduleConflict',
      `no schedule was changed: ${conflicts.map((change) => `${change.id}: ${change.reason}`).join('; ')}`,
    );
  }
  let applied = 0;
  for (const change of plan) {
    try {
      await applyChange(client, change);
    } catch (error) {
      const reason = innermostMessage(error);
      const missingAttribute = /search attribute/i.test(reason);
      throw new LifeboatError(
        'ScheduleRejected',
        `the Temporal server refused to ${change.action} schedule ${change.id} (${applied} change${applied === 1 ? '' : 's'} before it were made): ${reason}`,
        missingAttribute
          ? `Register Lifeboat's search attributes in the namespace (${Object.values(searchAttributes).map((key) => `temporal operator search-attribute create --name ${key.name} --type Keyword`).join('; ')}), then apply again`
          : 'Fix what the server names (`lifeboat check` checks the server), then apply again',
        { cause: error },
      );
    }
    if (change.action !== 'unchanged') applied++;
  }
}

async function applyChange(client: Client, change: PlannedChange): Promise<void> {
  switch (change.action) {
    case 'create':
      await client.schedule.create(change.declared.options);
      break;
    case 'update': {
      const { spec, action, policies } = change.declared.options;
      // The state the schedule has now (an operator's pause and note), read just before the update.
      await client.schedule.getHandle(change.id).update((previous) => ({
        spec,
        action,
        policies,
        state: {
          paused: previous.state.paused,
          ...(previous.state.note ? { note: previous.state.note } : {}),
          ...(previous.state.remainingActions !== undefined ? { remainingActions: previous.state.remainingActions } : {}),
        },
      }));
      break;
    }
    case 'delete':
      await client.schedule.getHandle(change.id).delete();
      break;
    case 'unchanged':
    case 'conflict':
      break;
  }
}

/** One line per change, as `apply --dry-run` prints them. */
export function describeChange(change: PlannedChange): string {
  const paused = 'paused' in change && change.paused ? ` [paused${change.note ? `: ${change.note}` : ''}]` : '';
  switch (change.action) {
    case 'create':
      return `create     ${change.id}  ${change.declared.runbook}, ${change.declared.when}`;
    case 'update':
      return `update     ${change.id}  ${change.differences.join('; ')}${paused}${change.paused ? ' (stays paused)' : ''}`;
    case 'unchanged':
      return `unchanged  ${change.id}${paused}`;
    case 'delete':
      return `delete     ${change.id}  ${change.runbook}, no longer in the config${paused}`;
    case 'conflict':
      return `CONFLICT   ${change.id}  ${change.reason}`;
  }
}

/** Plans and (unless dryRun) applies the given schedules; returns the plan. */
export async function syncSchedules(client: Client, settings: TemporalSettings, declared: DeclaredSchedule[], options: { dryRun?: boolean } = {}): Promise<PlannedChange[]> {
  const plan = await planSchedules(client, settings, declared);
  if (!options.dryRun) await applyPlan(client, plan);
  return plan;
}

/** A change as `apply --json` prints it. */
export function changeJson(change: PlannedChange): Record<string, unknown> {
  const { declared: _declared, ...rest } = change as PlannedChange & { declared?: DeclaredSchedule };
  return { ...rest, ...(_declared ? { runbook: _declared.runbook, when: _declared.when, declaration: _declared.declaration } : {}) };
}
