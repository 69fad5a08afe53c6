/**
 * The fan-out suite: many small SQLite targets whose schedules fire in the same minute, one worker.
 *
 *   every scheduled backup completes
 *   the worker's peak RSS (VmHWM over its whole life, start-up included)          <= 400 MB
 *   activities the worker ran at once         <= worker.maxConcurrentActivityTaskExecutions
 *   workflow tasks it processed at once       <= worker.maxConcurrentWorkflowTaskExecutions
 *
 * The schedules are the real thing: `targets.<t>.schedules.nightly` with a cron for one minute
 * (UTC, no jitter), applied as `lifeboat schedules apply` does, so all of them fire at once. The
 * worker is a child process `lifeboat worker` started as deployed, with the config's worker limits.
 * Concurrency is read afterwards from every run's history: each activity task from its Started to
 * its Completed/Failed/TimedOut event, each workflow task likewise; the most intervals open at one
 * instant is what the server saw running on the one worker (the worker frees a slot only after the
 * server acknowledged the task's completion, so this view cannot undercount).
 */
import { Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { connectClient, type TemporalSettings } from '../src/client.js';
import { loadConfig } from '../src/config/load.js';
import { declaredSchedules } from '../src/schedules/declared.js';
import { syncSchedules } from '../src/schedules/sync.js';
import { cpuSeconds, statusKb, TreeRssSampler } from './procfs.js';
import { startWorkerProcess, type BenchStack } from './stack.js';

export const FANOUT_MEMORY_LIMIT_BYTES = 400e6;

export interface FanoutOptions {
  stack: BenchStack;
  workDir: string;
  targets: number;
  say: (line: string) => void;
}

export interface FanoutResult {
  targets: number;
  completed: number;
  failed: number;
  limits: { activities: number; workflowTasks: number; cachedWorkflows: number };
  maxActivitiesAtOnce: number;
  maxWorkflowTasksAtOnce: number;
  /** VmHWM of the worker over its whole life, kB. */
  workerPeakKb: number;
  workerAnonPeakKb: number;
  workerTreePeakKb: number;
  /** Due time of the schedules to the end of the last run. */
  wallMs: number;
  /** Latest start of a run after its due time (the scheduler's own delay). */
  maxStartDelayMs: number;
  workerCpuSeconds: number;
  databaseBytes: number;
}

function createTinyDatabase(path: string, seed: number): number {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL)');
    const insert = db.prepare('INSERT INTO items (name, price_cents) VALUES (?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 500; i++) insert.run(`item ${seed}-${i} ${randomBytes(8).toString('hex')}`, (i * 7919 + seed) % 100_000);
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
    return (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
  } finally {
    db.close();
  }
}

/** The next whole minute at least `marginMs` away, as a 5-field cron (UTC) and a Date. */
function minuteAhead(marginMs: number): { cron: string; at: Date } {
  const at = new Date(Math.ceil((Date.now() + marginMs) / 60_000) * 60_000);
  return { cron: `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`, at };
}

/** The most intervals open at one instant; an interval ending exactly when another starts does not overlap it. */
export function maxOverlap(intervals: Array<[number, number]>): number {
  const edges = intervals.flatMap(([start, end]) => [
    [start, 1],
    [end, -1],
  ]) as Array<[number, number]>;
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, change] of edges) most = Math.max(most, (open += change));
  return most;
}

/** Activity and workflow task intervals (ms since the epoch) of one run, from its history. */
async function taskIntervals(client: Client, workflowId: string): Promise<{ activities: Array<[number, number]>; workflowTasks: Array<[number, number]> }> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const time = (event: (typeof events)[number]) => tsToMs(event.eventTime!);
  const activityStart = new Map<string, number>();
  const activities: Array<[number, number]> = [];
  let workflowTaskStart: number | undefined;
  const workflowTasks: Array<[number, number]> = [];
  for (const event of events) {
    if (event.activityTaskStartedEventAttributes) activityStart.set(String(event.activityTaskStartedEventAttributes.scheduledEventId), time(event));
    const ended = event.activityTaskCompletedEventAttributes ?? event.activityTaskFailedEventAttributes ?? event.activityTaskTimedOutEventAttributes ?? event.activityTaskCanceledEventAttributes;
    if (ended) {
      const start = activityStart.get(String(ended.scheduledEventId));
      if (start !== undefined) activities.push([start, time(event)]);
    }
    if (event.workflowTaskStartedEventAttributes) workflowTaskStart = time(event);
    if ((event.workflowTaskCompletedEventAttributes ?? event.workflowTaskFailedEventAttributes ?? event.workflowTaskTimedOutEventAttributes) && workflowTaskStart !== undefined) {
      workflowTasks.push([workflowTaskStart, time(event)]);
      workflowTaskStart = undefined;
    }
  }
  return { activities, workflowTasks };
}

export async function measureFanout(options: FanoutOptions): Promise<FanoutResult> {
  const { stack, say } = options;
  const dir = join(options.workDir, 'fanout');
  await mkdir(join(dir, 'databases'), { recursive: true });
  let databaseBytes = 0;
  const names = Array.from({ length: options.targets }, (_, i) => `fan-${String(i).padStart(3, '0')}`);
  for (const [i, name] of names.entries()) databaseBytes += createTinyDatabase(join(dir, 'databases', `${name}.sqlite`), i);

  const taskQueue = `bench-fanout-${randomBytes(3).toString('hex')}`;
  const settings: TemporalSettings = { address: stack.temporal.address, namespace: 'default', taskQueue };
  // Time enough to apply every schedule and start the worker before they fire.
  const due = minuteAhead(45_000 + options.targets * 250);
  const configPath = join(dir, 'lifeboat.config.yaml');
  await writeFile(
    configPath,
    stringify({
      repositories: { local: { type: 'fs', path: join(dir, 'repository') } },
      targets: Object.fromEntries(
        names.map((name) => [name, { type: 'sqlite', path: join(dir, 'databases', `${name}.sqlite`), repositories: ['local'], schedules: { nightly: { runbook: 'backup', cron: due.cron } } }]),
      ),
      temporal: { address: stack.temporal.address, namespace: 'default', taskQueue },
    }),
  );
  const config = loadConfig(configPath);
  const limits = {
    activities: config.worker.maxConcurrentActivityTaskExecutions,
    workflowTasks: config.worker.maxConcurrentWorkflowTaskExecutions,
    cachedWorkflows: config.worker.maxCachedWorkflows,
  };
  say(`fan-out: ${options.targets} SQLite targets (${(databaseBytes / options.targets / 1024).toFixed(0)} KiB each), schedules due at ${due.at.toISOString()} (cron "${due.cron}" UTC), worker limits ${JSON.stringify(limits)}`);

  const client = await connectClient(settings);
  const declared = declaredSchedules(config, settings);
  try {
    await syncSchedules(client, settings, declared);
    const worker = await startWorkerProcess({ configPath, taskQueue, temporalAddress: stack.temporal.address, bundlePath: stack.bundlePath, s3: stack.s3, logFile: join(dir, 'worker.log') });
    const sampler = new TreeRssSampler(worker.pid, 100);
    sampler.start();
    const cpuBefore = cpuSeconds(worker.pid);
    try {
      if (Date.now() >= due.at.getTime()) throw new Error(`the schedules were due at ${due.at.toISOString()}, before the worker was ready; raise the margin`);
      say(`fan-out: ${declared.length} schedules applied, worker ${worker.pid} polling; waiting for ${due.at.toISOString()}`);

      // Every schedule's run, once it has been started.
      const runs = new Map<string, { workflowId: string; delayMs: number }>();
      for (const deadline = due.at.getTime() + 5 * 60_000; runs.size < declared.length; await new Promise((resolve) => setTimeout(resolve, 2000))) {
        if (Date.now() > deadline) throw new Error(`only ${runs.size} of ${declared.length} schedules started a run within 5 minutes of their time`);
        if (Date.now() < due.at.getTime()) continue;
        for (const schedule of declared) {
          if (runs.has(schedule.id)) continue;
          const action = (await client.schedule.getHandle(schedule.id).describe()).info.recentActions[0];
          if (action) runs.set(schedule.id, { workflowId: action.action.workflow.workflowId, delayMs: action.takenAt.getTime() - action.scheduledAt.getTime() });
        }
      }
      say(`fan-out: all ${runs.size} runs started; waiting for them to end`);
      const outcomes = await Promise.allSettled([...runs.values()].map(({ workflowId }) => client.workflow.getHandle(workflowId).result()));
      const ended = Date.now();
      const { treeKb, rootAnonKb } = await sampler.stop();
      const workerPeakKb = (await statusKb(worker.pid, 'VmHWM')) ?? 0;
      const workerCpuSeconds = cpuSeconds(worker.pid) - cpuBefore;

      const activities: Array<[number, number]> = [];
      const workflowTasks: Array<[number, number]> = [];
      for (const { workflowId } of runs.values()) {
        const intervals = await taskIntervals(client, workflowId);
        activities.push(...intervals.activities);
        workflowTasks.push(...intervals.workflowTasks);
      }
      const failures = outcomes.filter((outcome) => outcome.status === 'rejected');
      for (const failure of failures.slice(0, 3)) say(`fan-out: a run failed: ${String((failure as PromiseRejectedResult).reason)}`);
      return {
        targets: options.targets,
        completed: outcomes.length - failures.length,
        failed: failures.length,
        limits,
        maxActivitiesAtOnce: maxOverlap(activities),
        maxWorkflowTasksAtOnce: maxOverlap(workflowTasks),
        workerPeakKb,
        workerAnonPeakKb: rootAnonKb,
        workerTreePeakKb: treeKb,
        wallMs: ended - due.at.getTime(),
        maxStartDelayMs: Math.max(...[...runs.values()].map((run) => run.delayMs)),
        workerCpuSeconds,
        databaseBytes,
      };
    } finally {
      await sampler.stop();
      await worker.stop();
    }
  } finally {
    // Nothing keeps firing after the suite (the schedules are due again in a day).
    await syncSchedules(client, settings, []).catch(() => undefined);
    await client.connection.close();
  }
}

const mb = (kb: number) => ((kb * 1024) / 1e6).toFixed(0);

/** The suite's verdicts, as rows of the targets table: [target, measured, limit, PASS/MISS]. */
export function fanoutVerdicts(result: FanoutResult): Array<[string, string, string, boolean]> {
  return [
    [`fan-out: ${result.targets} scheduled backups due in the same minute, all complete`, `${result.completed} completed, ${result.failed} failed`, `${result.targets}`, result.completed === result.targets],
    ['fan-out: worker peak RSS (VmHWM, whole life)', `${mb(result.workerPeakKb)} MB (anonymous ${mb(result.workerAnonPeakKb)} MB, worker+zstd ${mb(result.workerTreePeakKb)} MB)`, `≤ ${(FANOUT_MEMORY_LIMIT_BYTES / 1e6).toFixed(0)} MB`, result.workerPeakKb * 1024 <= FANOUT_MEMORY_LIMIT_BYTES],
    ['fan-out: activities at once (worker.maxConcurrentActivityTaskExecutions)', `${result.maxActivitiesAtOnce}`, `≤ ${result.limits.activities}`, result.maxActivitiesAtOnce <= result.limits.activities],
    ['fan-out: workflow tasks at once (worker.maxConcurrentWorkflowTaskExecutions)', `${result.maxWorkflowTasksAtOnce}`, `≤ ${result.limits.workflowTasks}`, result.maxWorkflowTasksAtOnce <= result.limits.workflowTasks],
  ];
}

/** The suite's section of RESULTS.md. */
export function fanoutLines(result: FanoutResult): string[] {
  return [
    '| target | measured | limit | result |',
    '|---|---|---|---|',
    ...fanoutVerdicts(result).map(([target, measured, limit, pass]) => `| ${target} | ${measured} | ${limit} | ${pass ? 'PASS' : 'MISS'} |`),
    '',
    `- ${result.targets} SQLite databases of ${(result.databaseBytes / result.targets / 1024).toFixed(0)} KiB, one fs repository, schedules with the same cron (UTC, no jitter, overlap skip), one worker with the config's limits (max cached workflows ${result.limits.cachedWorkflows})`,
    `- from the schedules' due time to the end of the last run: ${(result.wallMs / 1000).toFixed(1)} s (${((result.targets / result.wallMs) * 1000 * 60).toFixed(0)} backups per minute); the latest run started ${(result.maxStartDelayMs / 1000).toFixed(1)} s after its due time; worker CPU ${result.workerCpuSeconds.toFixed(1)} s`,
  ];
}
