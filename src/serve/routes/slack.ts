import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DecisionLog } from '../../chatops/decisions.js';
import type { SlackReply } from '../../chatops/replies.js';
import { buttonPressOf, slashCommandOf, type ChatOps } from '../../chatops/service.js';
import { signatureProblemText, signatureToleranceSeconds, slackHeaders, verifySlackRequest } from '../../chatops/signature.js';
import { sendJson, sendText, type Route } from '../router.js';

/**
 * POST /slack/commands (slash commands) and POST /slack/interactions (button presses): every
 * request is verified as Slack signs it before anything else is read from it (src/chatops/
 * signature.ts); what is not Slack's is answered 401 and recorded with the reason. A signed
 * request seen before is a replay (refused) unless Slack says it is a retry (X-Slack-Retry-Num),
 * which gets the first answer again; either way nothing runs twice. The rest is src/chatops/service.ts.
 */
export interface SlackRoutesOptions {
  chatops: ChatOps;
  secret: string;
  decisions: DecisionLog;
  /** Unix seconds now (tests of the clock window use the real clock and signed timestamps instead). */
  nowSeconds?: () => number;
}

/** Slash command bodies are a few hundred bytes; an interaction carries the message it came from. */
const maxBodyBytes = 1024 * 1024;

class BodyTooLarge extends Error {}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Signed requests already handled, kept as long as their timestamp is accepted, with their answers. */
class SeenRequests {
  private readonly seen = new Map<string, { until: number; answer: Promise<SlackReply | undefined> }>();

  get(signature: string): Promise<SlackReply | undefined> | undefined {
    const entry = this.seen.get(signature);
    return entry && entry.until > Date.now() ? entry.answer : undefined;
  }

  add(signature: string, answer: Promise<SlackReply | undefined>): void {
    const now = Date.now();
    // Anything older than twice the window could not verify any more: its signature cannot come back.
    for (const [key, entry] of this.seen) if (entry.until <= now) this.seen.delete(key);
    this.seen.set(signature, { until: now + 2 * signatureToleranceSeconds * 1000, answer });
  }
}

export function slackRoutes(options: SlackRoutesOptions): Route[] {
  const seen = new SeenRequests();
  const nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));

  /** Reads and verifies; answers and records a refusal itself and returns undefined when the request is not taken. */
  async function verified(route: 'commands' | 'interactions', request: IncomingMessage, response: ServerResponse): Promise<{ body: Buffer; signature: string; retry: number | undefined } | 'replayed-retry' | undefined> {
    const remoteAddress = request.socket.remoteAddress;
    let body: Buffer;
    try {
      body = await readBody(request);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) throw error;
      options.decisions.record({ route, decision: 'rejected', reason: `body larger than ${maxBodyBytes} bytes`, ...(remoteAddress ? { remoteAddress } : {}) });
      sendText(response, 413, 'request body too large\n');
      return undefined;
    }
    const problem = verifySlackRequest({ secret: options.secret, headers: request.headers, body, nowSeconds: nowSeconds() });
    if (problem !== undefined) {
      options.decisions.record({ route, decision: 'rejected', reason: signatureProblemText[problem], ...(remoteAddress ? { remoteAddress } : {}) });
      sendText(response, 401, `not a verified Slack request: ${signatureProblemText[problem]}\n`);
      return undefined;
    }
    const signature = String(request.headers[slackHeaders.signature]);
    const retryHeader = request.headers[slackHeaders.retryNum];
    const retry = typeof retryHeader === 'string' && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
    const earlier = seen.get(signature);
    if (earlier !== undefined) {
      if (retry !== undefined) {
        // Slack's retry of a request still being answered, or answered: the same answer, nothing new.
        const answer = await earlier;
        options.decisions.record({ route, decision: 'answered', reason: 'a retry of a request already answered: the same answer again', retry });
        if (answer) sendJson(response, 200, answer);
        else sendText(response, 200, '');
        return 'replayed-retry';
      }
      options.decisions.record({ route, decision: 'rejected', reason: 'replayed: this signed request was already handled', ...(remoteAddress ? { remoteAddress } : {}) });
      sendText(response, 401, 'not a verified Slack request: replayed (this signed request was already handled)\n');
      return undefined;
    }
    return { body, signature, retry };
  }

  return [
    {
      method: 'POST',
      path: '/slack/commands',
      handler: async (request, response) => {
        const receivedAt = Date.now();
        const taken = await verified('commands', request, response);
        if (taken === undefined || taken === 'replayed-retry') return;
        const form = new URLSearchParams(taken.body.toString('utf8'));
        // Slack checks the certificate of the URL now and then with a signed ssl_check request.
        if (form.get('ssl_check') === '1') return sendText(response, 200, '');
        const command = slashCommandOf(form);
        if (command === undefined) {
          options.decisions.record({ route: 'commands', decision: 'refused', reason: 'a signed request without user_id or channel_id' });
          return sendText(response, 400, 'not a slash command: user_id and channel_id are required\n');
        }
        const answer = options.chatops.command(command, { retry: taken.retry, receivedAt });
        seen.add(taken.signature, answer);
        sendJson(response, 200, await answer);
      },
    },
    {
      method: 'POST',
      path: '/slack/interactions',
      handler: async (request, response) => {
        const taken = await verified('interactions', request, response);
        if (taken === undefined || taken === 'replayed-retry') return;
        seen.add(taken.signature, Promise.resolve(undefined));
        let payload: unknown;
        try {
          payload = JSON.parse(new URLSearchParams(taken.body.toString('utf8')).get('payload') ?? '');
        } catch {
          options.decisions.record({ route: 'interactions', decision: 'refused', reason: 'a signed request without a JSON payload' });
          return sendText(response, 400, 'an interaction needs a payload field holding JSON\n');
        }
        const press = buttonPressOf(payload);
        if (typeof press === 'string') {
          options.decisions.record({ route: 'interactions', decision: 'refused', reason: press });
          return sendText(response, 200, '');
        }
        // Slack wants its 200 within 3 s and ignores the body: the answer goes to the response_url.
        sendText(response, 200, '');
        await options.chatops.press(press);
      },
    },
  ];
}
