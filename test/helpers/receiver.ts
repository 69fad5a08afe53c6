import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, type VerificationProblem } from '../../src/notify/standard-webhooks.js';

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Standard Webhooks check of this request against the receiver's secret (undefined: it verifies). */
  verification: VerificationProblem | undefined | 'not checked';
  status: number;
}

/**
 * A notification receiver on loopback, as a real one behaves: it checks every Standard Webhooks
 * signature with its copy of the secret (401 when it does not verify; Slack paths /services/... are
 * not signed), keeps the first delivery of
 * each webhook-id (a resend is acknowledged and dropped), and can be made to fail.
 */
export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Deliveries accepted once per webhook-id (or every accepted request without one). */
  accepted: ReceivedRequest[];
  /** The next `count` requests get `status` (a receiver that is down: 503). */
  failNext(count: number, status: number): void;
  /** Waits until `accepted` has at least n entries. */
  waitForAccepted(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startReceiver(options: { secret?: string } = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const accepted: ReceivedRequest[] = [];
  const seenIds = new Set<string>();
  const failures: number[] = [];
  const waiters: Array<() => void> = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      // Slack's incoming webhooks (paths /services/...) are not signed: their URL is the credential.
      const signed = options.secret !== undefined && !(request.url ?? '').startsWith('/services/');
      const verification = signed && options.secret
        ? verifyWebhook({ secret: options.secret, headers: request.headers, body, nowSeconds: Math.floor(Date.now() / 1000) })
        : 'not checked';
      const forced = failures.shift();
      const status = forced ?? (verification === undefined || verification === 'not checked' ? 200 : 401);
      const received: ReceivedRequest = { path: request.url ?? '/', headers: request.headers, body, verification, status };
      requests.push(received);
      const id = request.headers['webhook-id'];
      if (status === 200 && !(typeof id === 'string' && seenIds.has(id))) {
        if (typeof id === 'string') seenIds.add(id);
        accepted.push(received);
        for (const wake of waiters.splice(0)) wake();
      }
      response.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : status === 401 ? 'signature does not verify' : 'unavailable');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    accepted,
    failNext(count, status) {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    async waitForAccepted(n, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (accepted.length < n) {
        if (Date.now() > deadline) throw new Error(`the receiver accepted ${accepted.length} deliveries, expected ${n} (requests: ${requests.map((r) => r.status).join(', ')})`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 250).unref();
        });
      }
      return accepted;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => undefined);
    },
  };
}
