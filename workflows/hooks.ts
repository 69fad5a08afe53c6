/**
 * The steps around a restore that replaces something live, for every kind of target that has
 * hooks (config: src/config/common.ts hooksSchema): the operator's stop and start commands, and
 * the health URL that must answer 2xx after the start.
 */
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
