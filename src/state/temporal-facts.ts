import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { searchAttributes } from '../client.js';
import { followedRunbooks, type FollowedRunbook, type RunFacts, type RunResult, type ScheduleFacts, type WorkerFacts } from './model.js';

/**
 * What the Temporal server knows about the targets: the newest finished run of each runbook (from
 * visibility, by the LifeboatTarget search attribute the runbooks are started with), the
 * schedules named lifeboat/<target>/<key>, and the pollers of the task queue.
 */

export type LastRuns = Partial<Record<FollowedRunbook, RunFacts>>;

/** Visibility's status names as the results metrics and status report. */
export function runResultOf(status: WorkflowExecutionInfo['status']['name']): RunResult | undefined {
  switch (status) {
    case 'COMPLETED':
      return 'completed';
    case 'FAILED':
      return 'failed';
    case 'CANCELLED':
      return 'cancelled';
    case 'TERMINATED':
      return 'terminated';
    case 'TIMED_OUT':
      return 'timed_out';
    case 'CONTINUED_AS_NEW':
      return 'continued_as_new';
    default:
      return undefined;
  }
}

/** A visibility query string literal (target names are restricted by the config schema; quotes are escaped anyway). */
export function queryLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function runFacts(info: WorkflowExecutionInfo): RunFacts | undefined {
  const result = runResultOf(info.status.name);
  if (result === undefined || info.closeTime === undefined) return undefined;
  return { workflowId: info.workflowId, result, closedAt: info.closeTime.toISOString() };
}

/**
 * The newest finished run of each followed runbook of one target: one visibility query per
 * runbook, reading one result (visibility lists closed runs newest-closed first).
 */
export async function readLastRuns(client: Client, target: string): Promise<LastRuns> {
  const entries = await Promise.all(
    followedRunbooks.map(async (runbook) => {
      const query = `${searchAttributes.target.name} = ${queryLiteral(target)} AND WorkflowType = ${queryLiteral(runbook)} AND ExecutionStatus != 'Running'`;
      for await (const info of client.workflow.list({ query, pageSize: 1 })) {
        const facts = runFacts(info);
        if (facts) return [runbook, facts] as const;
      }
      return undefined;
    }),
  );
  return Object.fromEntries(entries.filter((entry) => entry !== undefined));
}

/** Schedules whose id is lifeboat/<target>/<key>, by target. */
export async function readSchedules(client: Client): Promise<Map<string, ScheduleFacts[]>> {
  const byTarget = new Map<string, ScheduleFacts[]>();
  for await (const schedule of client.schedule.list()) {
    const [prefix, target] = schedule.scheduleId.split('/');
    if (prefix !== 'lifeboat' || !target) continue;
    const facts = { id: schedule.scheduleId, paused: schedule.state.paused, note: schedule.state.note || null };
    byTarget.set(target, [...(byTarget.get(target) ?? []), facts]);
  }
  for (const list of byTarget.values()) list.sort((a, b) => a.id.localeCompare(b.id));
  return byTarget;
}

/** Workers the server has seen polling the task queue (it remembers pollers for a few minutes). */
export async function readWorkers(client: Client, taskQueue: string): Promise<WorkerFacts> {
  // temporal.api.enums.v1.TaskQueueType: 1 workflow, 2 activity (the proto package is not a direct dependency).
  const pollers = async (taskQueueType: 1 | 2): Promise<number> => {
    const response = await client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: taskQueue }, taskQueueType });
    return response.pollers?.length ?? 0;
  };
  const [workflowPollers, activityPollers] = await Promise.all([pollers(1), pollers(2)]);
  return { taskQueue, workflowPollers, activityPollers };
}

/** One finished run seen by RunWatcher. */
export interface ClosedRun {
  target: string;
  runbook: string;
  result: RunResult;
  workflowId: string;
  closedAt: string;
}

/**
 * Follows runs as they finish, for a long-running reader (lifeboat serve): one visibility query
 * per poll for the runs closed since the last one, whatever the number of targets. Each run is
 * reported once (onClosed), however often the overlapping windows return it: visibility may make
 * a run visible a little after it closed, so every poll looks back `overlapMs` before the newest
 * close time seen.
 */
export class RunWatcher {
  private since: number;
  private readonly seen = new Map<string, number>();
  private readonly lastRuns = new Map<string, LastRuns>();

  /** onClosed hears of the runs that close from startedAt on (a counter starts from zero with its process). */
  constructor(
    private readonly client: Client,
    private readonly onClosed: (run: ClosedRun) => void,
    private readonly startedAt: number = Date.now(),
    private readonly overlapMs = 120_000,
  ) {
    this.since = startedAt;
  }

  /** Whether seed() was called for the target. */
  knows(target: string): boolean {
    return this.lastRuns.has(target);
  }

  /** The newest finished run of each runbook of the target, as far as this watcher knows (seed it with seed()). */
  lastRunsOf(target: string): LastRuns {
    return this.lastRuns.get(target) ?? {};
  }

  seed(target: string, runs: LastRuns): void {
    const known = this.lastRuns.get(target) ?? {};
    for (const runbook of followedRunbooks) {
      const run = runs[runbook];
      if (run && (!known[runbook] || run.closedAt > known[runbook].closedAt)) known[runbook] = run;
    }
    this.lastRuns.set(target, known);
  }

  async poll(): Promise<void> {
    const from = new Date(this.since - this.overlapMs).toISOString();
    const query = `${searchAttributes.target.name} IS NOT NULL AND ExecutionStatus != 'Running' AND CloseTime > ${queryLiteral(from)}`;
    let newest = this.since;
    for await (const info of this.client.workflow.list({ query })) {
      const target = info.typedSearchAttributes.get(searchAttributes.target);
      const facts = runFacts(info);
      if (!target || !facts) continue;
      const closedAt = Date.parse(facts.closedAt);
      newest = Math.max(newest, closedAt);
      if (this.seen.has(info.runId)) continue;
      this.seen.set(info.runId, closedAt);
      if (closedAt >= this.startedAt) this.onClosed({ target, runbook: info.type, ...facts });
      if ((followedRunbooks as readonly string[]).includes(info.type)) this.seed(target, { [info.type]: facts });
    }
    this.since = newest;
    for (const [runId, closedAt] of this.seen) if (closedAt < this.since - 2 * this.overlapMs) this.seen.delete(runId);
  }
}
