import { randomBytes } from 'node:crypto';
import { signSlackRequest } from '../../src/chatops/signature.js';

/** Requests as Slack sends them to `lifeboat serve`, signed with the app's signing secret. */

export function slackHeaders(secret: string, body: string, options: { timestamp?: number; retry?: number } = {}): Record<string, string> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': signSlackRequest({ secret, timestamp, body }),
    ...(options.retry !== undefined ? { 'x-slack-retry-num': String(options.retry), 'x-slack-retry-reason': 'http_timeout' } : {}),
  };
}

export interface SlackWho {
  team: string;
  user: { id: string; name: string };
  channel: { id: string; name: string };
}

/** The form body of a press on an approval message's button (block_actions, the payload field). */
export function buttonPressBody(who: SlackWho, press: { action: 'lifeboat_approve' | 'lifeboat_reject'; workflowId: string; responseUrl: string }): string {
  const payload = {
    type: 'block_actions',
    team: { id: who.team, domain: 'acme' },
    user: { id: who.user.id, username: who.user.name, name: who.user.name, team_id: who.team },
    api_app_id: 'A0LIFEBOAT',
    container: { type: 'message', channel_id: who.channel.id, is_ephemeral: false },
    channel: who.channel,
    trigger_id: `${Date.now()}.${randomBytes(4).readUInt32BE()}.${randomBytes(8).toString('hex')}`,
    response_url: press.responseUrl,
    actions: [{ type: 'button', action_id: press.action, block_id: 'lifeboat_approval', value: press.workflowId, action_ts: String(Date.now() / 1000) }],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}
