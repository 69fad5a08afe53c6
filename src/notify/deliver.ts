import type { NotificationChannelConfig } from '../config/schema.js';
import { LifeboatError } from '../errors.js';
import type { NotificationEvent } from './events.js';
import { slackMessage } from './messages.js';
import { signedHeaders, signingKey } from './standard-webhooks.js';

export interface DeliveryOptions {
  env: NodeJS.ProcessEnv;
  /** The message id: the same for every retry of one event, so a receiver can drop duplicates. */
  webhookId: string;
  /** Where the Temporal UI is, for links in messages. */
  ui?: { url: string; namespace: string };
  /** Unix seconds of this attempt (the webhook-timestamp). */
  nowSeconds?: number;
  /** One HTTP request's limit. */
  timeoutMs?: number;
}

export interface Delivered {
  channel: string;
  status: number;
  webhookId: string;
}

/** A receiver's answer that retrying cannot change: it refused the message. */
function refusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

function required(env: NodeJS.ProcessEnv, variable: string, what: string, channel: string): string {
  const value = env[variable];
  if (!value) {
    throw new LifeboatError(
      'CredentialsUnavailable',
      `notification channel "${channel}": the environment variable ${variable} (${what}) is not set in the worker's environment`,
      `Export ${variable} where the worker runs`,
    );
  }
  return value;
}

/** The request a channel gets for an event: a Slack message, or a signed Standard Webhooks POST. */
export function requestFor(
  event: NotificationEvent,
  channelName: string,
  channel: NotificationChannelConfig,
  options: Pick<DeliveryOptions, 'env' | 'webhookId' | 'ui' | 'nowSeconds'>,
): { url: string; headers: Record<string, string>; body: string; describe: string } {
  if (channel.type === 'slack') {
    const url = required(options.env, channel.urlEnv, 'the Slack incoming webhook URL', channelName);
    // The URL is a credential: messages name the variable, never the URL.
    return { url, headers: { 'content-type': 'application/json' }, body: JSON.stringify(slackMessage(event, options.ui)), describe: `the Slack webhook in ${channel.urlEnv}` };
  }
  const secret = required(options.env, channel.secretEnv, 'the signing secret', channelName);
  try {
    signingKey(secret);
  } catch (error) {
    throw new LifeboatError('InvalidConfig', `notification channel "${channelName}": the secret in ${channel.secretEnv} cannot sign: ${(error as Error).message}`, 'Set it to "whsec_" followed by 24-64 random bytes in base64');
  }
  const body = JSON.stringify({ type: event.type, timestamp: event.at, data: event });
  const timestamp = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  return {
    url: channel.url,
    headers: { 'content-type': 'application/json', 'user-agent': 'lifeboat', ...signedHeaders({ secret, id: options.webhookId, timestamp, body }) },
    body,
    describe: channel.url,
  };
}

/**
 * Sends one event to one channel, once. A 2xx answer delivers it. A refusal (4xx but 408 and 429)
 * is NotificationRejected, not worth retrying; anything else (no answer, 5xx, 408, 429) throws a
 * plain Error, which the notify step retries with backoff within its bound.
 */
export async function deliver(event: NotificationEvent, channelName: string, channel: NotificationChannelConfig, options: DeliveryOptions): Promise<Delivered> {
  const request = requestFor(event, channelName, channel, options);
  let response: Response;
  try {
    response = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body, signal: AbortSignal.timeout(options.timeoutMs ?? 10_000), redirect: 'error' });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    // fetch's message for a Slack URL could quote it: say what failed in our words.
    throw new Error(`notification channel "${channelName}": ${request.describe} did not answer (${error instanceof Error ? error.name : 'error'}${channel.type === 'slack' ? '' : cause})`);
  }
  const answer = (await response.text().catch(() => '')).slice(0, 200).replace(/\s+/g, ' ').trim();
  if (response.ok) return { channel: channelName, status: response.status, webhookId: options.webhookId };
  const what = `notification channel "${channelName}": ${request.describe} answered ${response.status}${answer ? ` "${answer}"` : ''}`;
  if (refusal(response.status)) {
    throw new LifeboatError('NotificationRejected', what, channel.type === 'slack' ? `Check the webhook URL in ${channel.urlEnv}` : `Check the URL and that the receiver has the secret in ${channel.secretEnv}`);
  }
  throw new Error(what);
}
