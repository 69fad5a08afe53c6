/**
 * Replacing what is live by a restored copy, for every kind of target that restores in place
 * (SQLite's file today; a directory tree, an RDB file... tomorrow): the operator's stop and start
 * hooks around the swap, the health URL that must answer 2xx after the start, a check of what is
 * then live, and the compensation that puts the safety copy back when any of that fails. The kind
 * supplies its own steps (stage, swap, verify, rollback, cleanup); the order and the promises are
 * here. Hooks config: src/config/common.ts (hooksSchema).
 */
import { CancellationScope } from '@temporalio/workflow';
import type { HooksConfig } from '../src/config/common.js';
import { stepsWithin, type Timeline } from './runbook.js';

/** The stop-hook or start-hook step, or a skipped step when none is configured. */
export async function runHook(timeline: Timeline, hooks: HooksConfig | undefined, name: 'stop' | 'start'): Promise<void> {
  const command = hooks?.[name];
  if (!command) {
    timeline.skip(`${name}-hook`, 'no hook configured');
    return;
  }
  const timeoutSeconds = hooks?.timeoutSeconds ?? 120;
  await timeline.run(`${name}-hook`, () => stepsWithin(timeoutSeconds).runHook({ name, command, timeoutSeconds }));
}

/** The health-check step, when a health URL is configured (nothing otherwise). */
export async function checkHealth(timeline: Timeline, hooks: HooksConfig | undefined): Promise<void> {
  if (!hooks?.healthUrl) return;
  const url = hooks.healthUrl;
  const timeoutSeconds = hooks.healthTimeoutSeconds ?? 60;
  await timeline.run('health-check', () => stepsWithin(timeoutSeconds).checkHealth({ url, timeoutSeconds }));
}

/** A kind's steps of an in-place restore; each one runs its own timeline step(s). */
export interface LiveReplacement {
  /** Fetch the backup beside what is live and verify it (checksums, the kind's checks): nothing live is touched. */
  stage(): Promise<void>;
  /** The swap: what is live kept whole as a safety copy, the staged copy put in its place atomically. Returns the safety copy; null when nothing was live. */
  swap(): Promise<string | null>;
  /** The check of what is live once the application runs again. */
  verifyLive(): Promise<void>;
  /** Compensation: the safety copy back in place (the failure that caused it, for the step's detail). */
  rollback(safetyCopy: string, error: unknown): Promise<void>;
  /** Compensation: remove whatever stage() left. */
  cleanup(): Promise<void>;
}

/**
 * stage, stop hook, swap, start hook, health check, verifyLive. When any of them fails (or the run
 * is cancelled): stop the application if it runs on the restored copy, roll back to the safety
 * copy, clean up the staging, start the application again; the hooks of the compensation are best
 * effort, and the run fails with the error that made it roll back. The compensation is not
 * cancellable. Returns the safety copy.
 */
export async function replaceLive(timeline: Timeline, hooks: HooksConfig | undefined, steps: LiveReplacement): Promise<{ safetyCopy: string | null }> {
  let stopped = false;
  let safetyCopy: string | null = null;
  try {
    await steps.stage();
    stopped = true;
    await runHook(timeline, hooks, 'stop');
    safetyCopy = await steps.swap();
    await runHook(timeline, hooks, 'start');
    stopped = false;
    await checkHealth(timeline, hooks);
    await steps.verifyLive();
  } catch (error) {
    await CancellationScope.nonCancellable(async () => {
      if (safetyCopy !== null) {
        const previous = safetyCopy;
        // The application may be running on the restored copy: stop it before swapping back.
        if (!stopped) await runHook(timeline, hooks, 'stop').catch(() => undefined);
        stopped = true;
        await steps.rollback(previous, error);
      }
      await steps.cleanup();
      if (stopped) await runHook(timeline, hooks, 'start').catch(() => undefined);
    });
    throw error;
  }
  return { safetyCopy };
}
