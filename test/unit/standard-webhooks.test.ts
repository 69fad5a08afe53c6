import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { signedHeaders, signingKey, signWebhook, verifyWebhook } from '../../src/notify/standard-webhooks.js';

// The example the Standard Webhooks specification and its reference libraries publish.
const published = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

describe('Standard Webhooks signatures', () => {
  test('signing reproduces the specification\'s published example', () => {
    assert.equal(signWebhook(published), published.signature);
    assert.deepEqual(signedHeaders(published), {
      'webhook-id': published.id,
      'webhook-timestamp': String(published.timestamp),
      'webhook-signature': published.signature,
    });
  });

  const headers = { 'webhook-id': published.id, 'webhook-timestamp': String(published.timestamp), 'webhook-signature': published.signature };
  const at = published.timestamp;

  test('a receiver accepts the published example, also among other signatures (key rotation)', () => {
    assert.equal(verifyWebhook({ secret: published.secret, headers, body: published.body, nowSeconds: at }), undefined);
    const rotated = { ...headers, 'webhook-signature': `v1,bm90IHRoaXMgb25l ${published.signature}` };
    assert.equal(verifyWebhook({ secret: published.secret, headers: rotated, body: published.body, nowSeconds: at }), undefined);
  });

  test('a receiver refuses another body, another id, an old timestamp, another secret or missing headers', () => {
    assert.equal(verifyWebhook({ secret: published.secret, headers, body: '{"test": 2432232315}', nowSeconds: at }), 'bad-signature');
    assert.equal(verifyWebhook({ secret: published.secret, headers: { ...headers, 'webhook-id': 'msg_other' }, body: published.body, nowSeconds: at }), 'bad-signature');
    assert.equal(verifyWebhook({ secret: published.secret, headers, body: published.body, nowSeconds: at + 301 }), 'stale-timestamp');
    assert.equal(verifyWebhook({ secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}`, headers, body: published.body, nowSeconds: at }), 'bad-signature');
    assert.equal(verifyWebhook({ secret: published.secret, headers: { ...headers, 'webhook-signature': 'v2,' + published.signature.slice(3) }, body: published.body, nowSeconds: at }), 'bad-signature');
    assert.equal(verifyWebhook({ secret: published.secret, headers: { 'webhook-id': published.id }, body: published.body, nowSeconds: at }), 'missing-headers');
  });

  test('a secret that is not whsec_ and 24-64 bytes of base64 is refused without being repeated', () => {
    assert.throws(() => signingKey('whsec_not base64!'), (error: Error) => !error.message.includes('not base64!') && /base64/.test(error.message));
    assert.throws(() => signingKey(`whsec_${Buffer.alloc(8).toString('base64')}`), /8 bytes/);
    assert.equal(signingKey(published.secret).length, 24);
  });
});
