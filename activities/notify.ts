import { Context, log } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { loadConfig } from '../src/config/load.js';
import { LifeboatError } from '../src/errors.js';
import { deliver, type Delivered } from '../src/notify/deliver.js';
import type { NotificationEvent } from '../src/notify/events.js';
import { summarize } from '../src/notify/messages.js';

/**
 * The message id of one event of one run: the same in every retry of the step (and for every
 * channel), so a receiver that got it already can drop the resend (Standard Webhooks' webhook-id).
 */
export function webhookIdOf(workflowId: string, runId: string, eventType: string): string {
  return `msg_${createHash('sha256').update(`${workflowId}\n${runId}\n${eventType}`).digest('base64url').slice(0, 32)}`;
}

/**
 * The notify step: sends one event to one channel of the worker's config. The channel's URL and
 * secret are read from the environment here, never carried in the step's input or result.
 */
export async function notify(input: { event: NotificationEvent; channel: string }, deps: { configPath: string; env: NodeJS.ProcessEnv }): Promise<Delivered> {
  const config = loadConfig(deps.configPath);
  const channel = config.notifications?.channels[input.channel];
  if (!channel) {
    throw new LifeboatError('InvalidConfig', `notification channel "${input.channel}" is not in the worker's config (${deps.configPath})`, 'Define it under notifications.channels, or restart the worker with the config that has it');
  }
  const { namespace } = Context.current().info;
  // The run the event is about (it is the one that scheduled this step).
  const webhookId = webhookIdOf(input.event.run.workflowId, input.event.run.runId, input.event.type);
  const ui = config.notifications?.temporalUiUrl ? { url: config.notifications.temporalUiUrl, namespace } : undefined;
  const delivered = await deliver(input.event, input.channel, channel, { env: deps.env, webhookId, ...(ui ? { ui } : {}) });
  log.info('notification delivered', { channel: input.channel, event: input.event.type, webhookId, summary: summarize(input.event) });
  return delivered;
}
