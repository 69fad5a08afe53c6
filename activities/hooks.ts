import { log } from '@temporalio/activity';
import { execa } from 'execa';
import { LifeboatError } from '../src/errors.js';

export interface HookInput {
  name: 'stop' | 'start';
  command: string;
  timeoutSeconds: number;
}

/** Runs an operator's hook command through the shell; a non-zero exit fails the step with its output. */
export async function runHook(input: HookInput): Promise<{ exitCode: number; durationMs: number }> {
  const started = Date.now();
  const result = await execa(input.command, { shell: true, reject: false, timeout: input.timeoutSeconds * 1000, all: true });
  const output = (result.all ?? '').toString().trim().split('\n').slice(-10).join('\n');
  if (result.failed) {
    const why = result.timedOut ? `timed out after ${input.timeoutSeconds}s` : `exited with ${result.exitCode ?? result.signal}`;
    throw new LifeboatError('HookFailed', `${input.name} hook \`${input.command}\` ${why}${output ? `:\n${output}` : ''}`, `Fix the ${input.name} hook in the target's config`);
  }
  log.info('hook ran', { hook: input.name, durationMs: Date.now() - started });
  return { exitCode: 0, durationMs: Date.now() - started };
}

/** Polls the health URL until it answers 2xx or the time runs out. */
export async function checkHealth(input: { url: string; timeoutSeconds: number }): Promise<{ status: number; waitedMs: number }> {
  const started = Date.now();
  const deadline = started + input.timeoutSeconds * 1000;
  let last = 'no answer';
  for (;;) {
    try {
      const response = await fetch(input.url, { signal: AbortSignal.timeout(5000) });
      if (response.ok) return { status: response.status, waitedMs: Date.now() - started };
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) {
      throw new LifeboatError('HealthCheckFailed', `${input.url} did not answer 2xx within ${input.timeoutSeconds}s (last: ${last})`, 'The restore is rolled back to the safety copy');
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
