import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Slack's request signing, version v0 ("Verifying requests from Slack"): every request carries
 * `X-Slack-Request-Timestamp` (Unix seconds) and `X-Slack-Signature: v0=<hex of
 * HMAC-SHA256(signing secret, "v0:<timestamp>:<raw body>")>`. The body is the bytes as they came,
 * before any form or JSON parsing.
 */
export const slackHeaders = { timestamp: 'x-slack-request-timestamp', signature: 'x-slack-signature', retryNum: 'x-slack-retry-num' } as const;

/** How far a request's timestamp may be from now, either way (Slack's recommendation: 5 minutes). */
export const signatureToleranceSeconds = 300;

export function signSlackRequest(input: { secret: string; timestamp: number | string; body: string | Buffer }): string {
  const mac = createHmac('sha256', input.secret);
  mac.update(`v0:${String(input.timestamp)}:`);
  mac.update(input.body);
  return `v0=${mac.digest('hex')}`;
}

/** Why a request is not taken as Slack's: each is refused, with this as the recorded reason. */
export type SignatureProblem = 'unsigned' | 'malformed' | 'stale' | 'future' | 'bad-signature';

export const signatureProblemText: Record<SignatureProblem, string> = {
  unsigned: 'no X-Slack-Signature or X-Slack-Request-Timestamp header',
  malformed: 'the timestamp or signature header is not in Slack\'s form',
  stale: `the request timestamp is more than ${signatureToleranceSeconds} s in the past`,
  future: `the request timestamp is more than ${signatureToleranceSeconds} s in the future`,
  'bad-signature': 'the signature does not match the body (wrong signing secret, or the request was changed)',
};

/**
 * Checks a request: both headers present and well formed, the timestamp within
 * signatureToleranceSeconds of now in either direction, and the signature equal to the one
 * computed here (compared in constant time). Returns the problem, or undefined when it verifies.
 */
export function verifySlackRequest(input: {
  secret: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer | string;
  nowSeconds: number;
}): SignatureProblem | undefined {
  const header = (name: string): string | undefined => {
    const value = input.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const timestamp = header(slackHeaders.timestamp);
  const signature = header(slackHeaders.signature);
  if (!timestamp || !signature) return 'unsigned';
  if (!/^\d{1,12}$/.test(timestamp) || !/^v0=[0-9a-f]{64}$/.test(signature)) return 'malformed';
  const skew = Number(timestamp) - input.nowSeconds;
  if (skew < -signatureToleranceSeconds) return 'stale';
  if (skew > signatureToleranceSeconds) return 'future';
  const expected = Buffer.from(signSlackRequest({ secret: input.secret, timestamp, body: input.body }));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected) ? undefined : 'bad-signature';
}
