import { Context } from '@temporalio/activity';
import { readFileSync } from 'node:fs';
import { Transform } from 'node:stream';

export interface Progress {
  phase: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface ProgressReporter {
  /** Records the running byte count; the next heartbeat carries it. */
  update(bytesDone: number): void;
  /** Asks `sample` for the byte count at every heartbeat (when bytes move outside this process). */
  sampleWith(sample: () => number | undefined): void;
  /** Replaces any of phase, bytesDone and bytesTotal at once (e.g. from a module's progress callback). */
  set(progress: Partial<Progress>): void;
  /** Names what the step is doing now (the bytes stay as they are). */
  setPhase(phase: string): void;
  /**
   * Sends `details` with every heartbeat from now on (beside the progress), e.g. where a step can
   * go on from: a retry finds the last one in Context.current().info.heartbeatDetails.
   */
  attach(details: Record<string, unknown>): void;
  /** Stops the heartbeats (call in finally). */
  stop(): void;
}

/**
 * Heartbeats {phase, bytesDone, bytesTotal} every intervalMs until stopped, whether or not bytes
 * moved: a compressor can hold a long tail after the last input byte, and silence would look like a
 * dead worker. Heartbeats are also how cancellation reaches the activity.
 */
export function startProgress(initialPhase: string, initialBytesTotal: number, intervalMs = 1000): ProgressReporter {
  const context = Context.current();
  let phase = initialPhase;
  let bytesDone = 0;
  let bytesTotal = initialBytesTotal;
  let sampler: (() => number | undefined) | undefined;
  let attached: Record<string, unknown> = {};
  let told: { phase: string; tenth: number } | undefined;
  const beat = () => {
    bytesDone = sampler?.() ?? bytesDone;
    context.heartbeat({ ...attached, phase, bytesDone, bytesTotal } satisfies Progress);
    // The run's current details (the Temporal UI's header) show the progress too: its workflow
    // hears of it at each new phase and each tenth of the way, a dozen signals per step at most.
    const tenth = bytesTotal > 0 ? Math.min(10, Math.floor((10 * bytesDone) / bytesTotal)) : 0;
    if (told?.phase !== phase || told.tenth !== tenth) {
      told = { phase, tenth };
      tellRun(context, { phase, bytesDone, bytesTotal });
    }
  };
  beat();
  const timer = setInterval(beat, intervalMs);
  return {
    update(bytes: number) {
      bytesDone = bytes;
    },
    set(progress: Partial<Progress>) {
      phase = progress.phase ?? phase;
      bytesDone = progress.bytesDone ?? bytesDone;
      bytesTotal = progress.bytesTotal ?? bytesTotal;
    },
    sampleWith(sample: () => number | undefined) {
      sampler = sample;
    },
    setPhase(next: string) {
      phase = next;
    },
    attach(details: Record<string, unknown>) {
      attached = details;
    },
    stop() {
      clearInterval(timer);
      beat();
    },
  };
}

/** Best effort: a run that cannot be told (no client, a test's mock context) still has its heartbeats. */
function tellRun(context: Context, progress: Progress): void {
  try {
    const { workflowExecution, activityType } = context.info;
    if (!workflowExecution) return;
    context.client.workflow
      .getHandle(workflowExecution.workflowId, workflowExecution.runId)
      .signal('progress', { activityType, ...progress })
      .catch(() => undefined);
  } catch {
    // No client in this context.
  }
}

/** A pass-through that records the running byte count in a progress reporter. */
export function countBytes(progress: ProgressReporter): Transform {
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      progress.update(bytes);
      callback(null, chunk);
    },
  });
}

/**
 * How far a child process has read through one of its file descriptors (Linux: the `pos:` line of
 * /proc/<pid>/fdinfo/<fd>); undefined where that is not available, or once the process is gone.
 */
export function readOffsetOf(pid: number | undefined, fd = 0): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^pos:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How many bytes a child process has written so far (Linux: `wchar` of /proc/<pid>/io: every
 * write, to any descriptor); undefined where that is not available, or once the process is gone.
 */
export function bytesWrittenBy(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^wchar:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
