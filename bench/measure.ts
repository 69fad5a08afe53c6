/**
 * One timed execution of a Lifeboat runbook (started from the client, timed to its result) or of
 * a baseline shell procedure, with what it cost: wall time, CPU seconds of the processes doing the
 * work, their peak memory, the CPU other processes on the machine used meanwhile (noise), and a
 * breakdown of where the time went.
 */
import type { Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common';
import { execa } from 'execa';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startRunbook, type RunbookKind, type RunbookTypes, type TemporalSettings } from '../src/client.js';
import { busySecondsBetween, commandName, cpuSeconds, cpuSplit, machineCpuTicks, resetPeakRss, statusKb, TreeRssSampler } from './procfs.js';

export interface Step {
  name: string;
  ms: number;
  /** Peak RSS of this step's command (GNU time %M), baselines only. */
  peakKb?: number;
}

export interface Execution {
  wallMs: number;
  /** user + system CPU of the processes that did the work (see {@link CpuAccounting}). */
  cpuSeconds: number;
  /** Busy CPU on the machine not accounted to those processes: other people's load during the run. */
  otherCpuSeconds: number;
  /** Lifeboat: the worker process's VmHWM over this execution (reset just before it). */
  workerPeakKb?: number;
  /** Lifeboat: highest sampled RSS sum of the worker and its descendants (the zstd subprocess). */
  workerTreePeakKb?: number;
  /** Lifeboat: highest sampled anonymous RSS of the worker alone (no file-backed pages such as mmap). */
  workerAnonPeakKb?: number;
  /** Baselines: the highest peak RSS of any one command. */
  toolPeakKb?: number;
  steps: Step[];
  /** Extra figures, e.g. how long the integrity check that ran inside the upload took. */
  notes: Record<string, number>;
}

/**
 * Whose CPU counts: the worker (with its reaped zstd children) or the baseline's commands, plus the
 * servers both sides talk to (Temporal for Lifeboat only, versitygw for both).
 */
export interface CpuAccounting {
  serverPids: number[];
}

/** CPU this benchmark process itself used since `before` (the client, the samplers): not "other load". */
function harnessSeconds(before: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

function sumCpu(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

/** Runs one runbook through the client and waits for its result, measuring the worker process. */
export async function runLifeboat<K extends RunbookKind>(options: {
  client: Client;
  settings: TemporalSettings;
  kind: K;
  input: RunbookTypes[K]['input'];
  workerPid: number;
  accounting: CpuAccounting;
}): Promise<{ execution: Execution; result: RunbookTypes[K]['result'] }> {
  const { client, settings, kind, input, workerPid } = options;
  const pids = [workerPid, ...options.accounting.serverPids];
  if (!(await resetPeakRss(workerPid))) throw new Error(`cannot reset the peak RSS of the worker (pid ${workerPid}): /proc/${workerPid}/clear_refs refused`);
  const sampler = new TreeRssSampler(workerPid);
  const cpuBefore = sumCpu(pids);
  const workerBefore = cpuSplit(workerPid);
  const serversBefore = options.accounting.serverPids.map(cpuSeconds);
  const harnessBefore = process.cpuUsage();
  const machineBefore = machineCpuTicks();
  sampler.start();
  const started = performance.now();
  const handle = await startRunbook(client, settings, kind, input);
  const result = (await handle.result()) as RunbookTypes[K]['result'];
  const wallMs = performance.now() - started;
  const machineAfter = machineCpuTicks();
  const harness = harnessSeconds(harnessBefore);
  const { treeKb: workerTreePeakKb, rootAnonKb: workerAnonPeakKb } = await sampler.stop();
  // The zstd child is reaped shortly after its stream ends; its CPU lands in the worker's cutime then.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const cpu = sumCpu(pids) - cpuBefore;
  const workerAfter = cpuSplit(workerPid);
  const workerPeakKb = (await statusKb(workerPid, 'VmHWM')) ?? 0;
  const { steps, notes } = await activityBreakdown(client, handle.workflowId);
  // Where the CPU went: on two cores, every CPU second beside the compressor's is wall time.
  notes['CPU worker'] = (workerAfter.own - workerBefore.own) * 1000;
  notes['CPU worker subprocesses'] = (workerAfter.children - workerBefore.children) * 1000;
  options.accounting.serverPids.forEach((pid, index) => {
    notes[`CPU ${commandName(pid)}`] = (cpuSeconds(pid) - (serversBefore[index] ?? 0)) * 1000;
  });
  return {
    result,
    execution: {
      wallMs,
      cpuSeconds: cpu,
      otherCpuSeconds: Math.max(0, busySecondsBetween(machineBefore, machineAfter) - cpu - harness),
      workerPeakKb,
      workerTreePeakKb,
      workerAnonPeakKb,
      steps,
      notes,
    },
  };
}

interface ReportedPayload {
  value?: { integrity?: { durationMs?: number }; phasesMs?: Record<string, number> } & Record<string, unknown>;
}

/** The phases of a base restore (src/postgres/base-restore.ts RestorePhasesMs), in words. */
const restorePhaseNames: Record<string, string> = {
  holdsEveryPart: 'restore: HEAD every part',
  extract: 'restore: fetch + sha256 + zstd -d | tar -x',
  placeManifest: 'restore: backup_manifest',
  verify: 'restore: pg_verifybackup',
  rename: 'restore: rename',
};

/**
 * Where a run's time went, from its history: each activity from scheduled to completed (queueing on
 * the task queue included), and what is left of the wall time is workflow and client overhead.
 */
async function activityBreakdown(client: Client, workflowId: string): Promise<{ steps: Step[]; notes: Record<string, number> }> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, { name: string; at: number; attempt: number }>();
  const steps: Step[] = [];
  const notes: Record<string, number> = {};
  for (const event of history.events ?? []) {
    const at = tsToMs(event.eventTime);
    const attributes = event.activityTaskScheduledEventAttributes;
    if (attributes?.activityType?.name) scheduled.set(String(event.eventId), { name: attributes.activityType.name, at, attempt: 1 });
    // With a retry policy the server records only the last attempt's start, with its attempt number.
    const started = event.activityTaskStartedEventAttributes;
    const retried = started ? scheduled.get(String(started.scheduledEventId)) : undefined;
    if (retried && started?.attempt) retried.attempt = started.attempt;
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed) {
      const activity = scheduled.get(String(completed.scheduledEventId));
      if (!activity) continue;
      steps.push({ name: activity.attempt > 1 ? `${activity.name} (attempt ${activity.attempt})` : activity.name, ms: at - activity.at });
      const data = completed.result?.payloads?.[0]?.data;
      if ((activity.name === 'snapshotAndUpload' || activity.name === 'restoreBaseBackup') && data) {
        try {
          const reported = JSON.parse(Buffer.from(data).toString('utf8')) as ReportedPayload;
          const integrityMs = reported.value?.integrity?.durationMs;
          if (typeof integrityMs === 'number') notes.integrityCheckInSnapshotMs = integrityMs;
          for (const [phase, ms] of Object.entries(reported.value?.phasesMs ?? {})) {
            if (typeof ms === 'number') notes[restorePhaseNames[phase] ?? `restore: ${phase}`] = ms;
          }
        } catch {
          // Not JSON (a custom payload codec): the breakdown just goes without it.
        }
      }
    }
  }
  return { steps, notes };
}

export interface ShellStep {
  name: string;
  /** A bash script; runs with `set -euo pipefail`. */
  script: string;
}

/**
 * Runs shell steps one after the other, each under GNU time for its CPU and peak memory. The
 * wall time is the whole sequence's, as an operator running the commands back to back would see.
 */
export async function runShell(options: { steps: ShellStep[]; env: Record<string, string>; scratchDir: string; accounting: CpuAccounting }): Promise<Execution> {
  const timeFile = join(options.scratchDir, 'gnu-time.txt');
  const serverCpuBefore = sumCpu(options.accounting.serverPids);
  const harnessBefore = process.cpuUsage();
  const machineBefore = machineCpuTicks();
  let commandCpu = 0;
  let toolPeakKb = 0;
  const steps: Step[] = [];
  const started = performance.now();
  for (const step of options.steps) {
    const stepStarted = performance.now();
    const result = await execa('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, 'bash', '-c', `set -euo pipefail\n${step.script}`], {
      env: options.env,
      reject: false,
      stdin: 'ignore',
    });
    const ms = performance.now() - stepStarted;
    if (result.failed) throw new Error(`baseline step "${step.name}" failed (${result.shortMessage}):\n${String(result.stderr).slice(-2000)}`);
    const [user = 0, system = 0, maxKb = 0] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
    commandCpu += user + system;
    toolPeakKb = Math.max(toolPeakKb, maxKb);
    steps.push({ name: step.name, ms, peakKb: maxKb });
  }
  const wallMs = performance.now() - started;
  const machineAfter = machineCpuTicks();
  const harness = harnessSeconds(harnessBefore);
  await rm(timeFile, { force: true });
  const cpu = commandCpu + sumCpu(options.accounting.serverPids) - serverCpuBefore;
  return {
    wallMs,
    cpuSeconds: cpu,
    otherCpuSeconds: Math.max(0, busySecondsBetween(machineBefore, machineAfter) - cpu - harness),
    toolPeakKb,
    steps,
    notes: {},
  };
}
