import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signing per the Standard Webhooks specification (standardwebhooks.com): the signed content is
 * `<webhook-id>.<webhook-timestamp>.<body>`, the signature base64(HMAC-SHA256(key, content)), sent as
 * `webhook-signature: v1,<signature>` beside `webhook-id` and `webhook-timestamp` (Unix seconds). The
 * key is given as `whsec_<base64>` (the bytes after the prefix are the HMAC key).
 */
export const webhookHeaders = { id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' } as const;

const secretPrefix = 'whsec_';

/** The HMAC key of a `whsec_<base64>` secret; an Error saying what is wrong (never the secret) otherwise. */
export function signingKey(secret: string): Buffer {
  const encoded = secret.startsWith(secretPrefix) ? secret.slice(secretPrefix.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new Error(`the signing secret is not "whsec_" followed by base64 (${secret.length} characters)`);
  const key = Buffer.from(encoded, 'base64');
  // The specification asks for 24 to 64 random bytes.
  if (key.length < 24 || key.length > 64) throw new Error(`the signing secret decodes to ${key.length} bytes; the Standard Webhooks specification asks for 24 to 64`);
  return key;
}

/** The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>`. */
export function signWebhook(input: { secret: string; id: string; timestamp: number; body: string }): string {
  const mac = createHmac('sha256', signingKey(input.secret)).update(`${input.id}.${input.timestamp}.${input.body}`).digest('base64');
  return `v1,${mac}`;
}

/** The three headers of a signed delivery. */
export function signedHeaders(input: { secret: string; id: string; timestamp: number; body: string }): Record<string, string> {
  return {
    [webhookHeaders.id]: input.id,
    [webhookHeaders.timestamp]: String(input.timestamp),
    [webhookHeaders.signature]: signWebhook(input),
  };
}

export type VerificationProblem = 'missing-headers' | 'stale-timestamp' | 'bad-signature';

/**
 * What a receiver checks: the three headers are there, the timestamp is within toleranceSeconds of
 * now (a replayed old message is refused), and one of the space-separated `v1,` signatures matches
 * (several are sent while a secret is rotated). Returns the problem, or undefined when it verifies.
 */
export function verifyWebhook(input: {
  secret: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  nowSeconds: number;
  toleranceSeconds?: number;
}): VerificationProblem | undefined {
  const header = (name: string) => {
    const value = input.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const id = header(webhookHeaders.id);
  const timestamp = header(webhookHeaders.timestamp);
  const signatures = header(webhookHeaders.signature);
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return 'missing-headers';
  if (Math.abs(input.nowSeconds - Number(timestamp)) > (input.toleranceSeconds ?? 300)) return 'stale-timestamp';
  const expected = Buffer.from(signWebhook({ secret: input.secret, id, timestamp: Number(timestamp), body: input.body }).slice(3), 'base64');
  const matches = signatures.split(' ').some((entry) => {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) return false;
    const given = Buffer.from(value, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? undefined : 'bad-signature';
}
