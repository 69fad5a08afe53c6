/**
 * Delivery of notifications to real HTTP receivers on loopback: Standard Webhooks signatures a
 * receiver checks with its own copy of the secret, the same webhook-id for a resend, which answers
 * are retried and which are refusals, and Slack messages that never leak their URL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { webhookIdOf } from '../../activities/notify.js';
import type { NotificationChannelConfig } from '../../src/config/schema.js';
import { LifeboatError } from '../../src/errors.js';
import { deliver } from '../../src/notify/deliver.js';
import { approvalAnswer, type ApprovalWaitingEvent, type DrillFinishedEvent } from '../../src/notify/events.js';
import { slackActions } from '../../src/notify/messages.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const run = { runbook: 'drill', target: 'orders', workflowId: 'drill-orders-20261206T101500Z', runId: 'b3f1c1de-0000-4000-8000-000000000001', requestedBy: { via: 'cli', user: 'ops', host: 'db1' } } as const;
const drillFinished: DrillFinishedEvent = {
  type: 'drill.finished',
  at: '2026-12-06T10:15:42.000Z',
  run,
  passed: true,
  backupId: '20261206T020000Z-1a2b3c',
  snapshotAt: '2026-12-06T02:00:00.000Z',
  rto: { seconds: 41.5, targetSeconds: 60, met: true },
  rpo: { seconds: 29742, targetSeconds: 86400, met: true },
  checks: { passed: 2, total: 2 },
  failure: null,
  reportKeys: ['local:orders/reports/drill-orders-20261206T101500Z.json'],
};
const approvalWaiting: ApprovalWaitingEvent = {
  type: 'approval.waiting',
  at: '2026-12-06T10:16:00.000Z',
  run: { ...run, runbook: 'pitr', workflowId: 'pitr-orders-20261206T101600Z' },
  action: 'replace the live cluster in /srv/pg/main',
  deadline: '2026-12-06T11:16:00.000Z',
  answer: approvalAnswer('pitr-orders-20261206T101600Z'),
};

describe('notification delivery to receivers on loopback', () => {
  let receiver: Receiver;
  const env = { LIFEBOAT_TEST_WEBHOOK_SECRET: secret, LIFEBOAT_TEST_SLACK_URL: '' };
  const webhookId = webhookIdOf(run.workflowId, run.runId, drillFinished.type);

  before(async () => {
    receiver = await startReceiver({ secret });
    env.LIFEBOAT_TEST_SLACK_URL = `${receiver.url}/services/T0001/B0002/s3cr3tT0k3n`;
  });
  after(async () => {
    await receiver?.close();
  });

  const webhook = (): NotificationChannelConfig => ({ type: 'webhook', url: `${receiver.url}/lifeboat`, secretEnv: 'LIFEBOAT_TEST_WEBHOOK_SECRET', events: ['drill.finished'] });
  const slack: NotificationChannelConfig = { type: 'slack', urlEnv: 'LIFEBOAT_TEST_SLACK_URL', events: ['drill.finished', 'approval.waiting'] };

  test('a webhook is signed per Standard Webhooks; the receiver verifies it and gets {type, timestamp, data}', async () => {
    const delivered = await deliver(drillFinished, 'pager', webhook(), { env, webhookId });
    assert.deepEqual(delivered, { channel: 'pager', status: 200, webhookId });
    const request = receiver.requests.at(-1)!;
    assert.equal(request.verification, undefined, 'the signature verifies with the receiver\'s secret');
    assert.equal(request.headers['webhook-id'], webhookId);
    assert.match(String(request.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(JSON.parse(request.body), { type: 'drill.finished', timestamp: drillFinished.at, data: drillFinished });
  });

  test('a receiver that is down gets the same webhook-id again, and keeps the message once', async () => {
    const before = receiver.accepted.length;
    receiver.failNext(1, 503);
    await assert.rejects(deliver(drillFinished, 'pager', webhook(), { env, webhookId }), (error: Error) => !(error instanceof LifeboatError) && /answered 503/.test(error.message));
    await deliver(drillFinished, 'pager', webhook(), { env, webhookId });
    const sent = receiver.requests.slice(-2);
    assert.deepEqual(sent.map((r) => r.status), [503, 200]);
    assert.equal(sent[0]!.headers['webhook-id'], sent[1]!.headers['webhook-id'], 'a resend carries the same id');
    assert.equal(receiver.accepted.length, before, 'the receiver had it already (first test): the resend is dropped');
  });

  test('408 and 429 are retried; another 4xx is a refusal (NotificationRejected); a wrong secret fails verification', async () => {
    for (const status of [408, 429]) {
      receiver.failNext(1, status);
      await assert.rejects(deliver(drillFinished, 'pager', webhook(), { env, webhookId }), (error: Error) => !(error instanceof LifeboatError));
    }
    const wrong = { ...env, LIFEBOAT_TEST_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}` };
    await assert.rejects(deliver(drillFinished, 'pager', webhook(), { env: wrong, webhookId }), (error: Error) =>
      error instanceof LifeboatError && error.type === 'NotificationRejected' && /answered 401 "signature does not verify"/.test(error.message),
    );
    assert.equal(receiver.requests.at(-1)!.verification, 'bad-signature');
  });

  test('a missing variable is CredentialsUnavailable; a secret that cannot sign is InvalidConfig and is not repeated', async () => {
    await assert.rejects(deliver(drillFinished, 'pager', webhook(), { env: {}, webhookId }), (error: Error) => error instanceof LifeboatError && error.type === 'CredentialsUnavailable' && /LIFEBOAT_TEST_WEBHOOK_SECRET/.test(error.message));
    await assert.rejects(deliver(drillFinished, 'pager', webhook(), { env: { LIFEBOAT_TEST_WEBHOOK_SECRET: 'hunter2hunter2' }, webhookId }), (error: Error) =>
      error instanceof LifeboatError && error.type === 'InvalidConfig' && !error.message.includes('hunter2'),
    );
  });

  test('Slack gets a message with the facts; an approval has Approve and Reject buttons carrying the workflow id', async () => {
    await deliver(drillFinished, 'ops', slack, { env, webhookId, ui: { url: 'http://temporal.example:8233', namespace: 'default' } });
    const drill = JSON.parse(receiver.requests.at(-1)!.body) as { text: string; blocks: Array<{ type: string; fields?: Array<{ text: string }>; elements?: Array<{ text: string }> }> };
    assert.equal(receiver.requests.at(-1)!.path, '/services/T0001/B0002/s3cr3tT0k3n');
    assert.match(drill.text, /drill of orders PASSED: RTO 41\.5 s \(objective 60\.0 s: met\), RPO 8\.3 h \(objective 24\.0 h: met\)/);
    assert.ok(drill.blocks.some((b) => b.fields?.some((f) => f.text === '*Checks*\n2/2 passed')));
    assert.ok(JSON.stringify(drill.blocks).includes('http://temporal.example:8233/namespaces/default/workflows/drill-orders-20261206T101500Z/'), 'links to the run in the Temporal UI');

    await deliver(approvalWaiting, 'ops', slack, { env, webhookId: webhookIdOf(approvalWaiting.run.workflowId, run.runId, approvalWaiting.type) });
    const approval = JSON.parse(receiver.requests.at(-1)!.body) as { text: string; blocks: Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }> };
    const buttons = approval.blocks.find((b) => b.type === 'actions')!.elements!;
    assert.deepEqual(buttons.map((b) => [b.action_id, b.value]), [
      [slackActions.approve, 'pitr-orders-20261206T101600Z'],
      [slackActions.reject, 'pitr-orders-20261206T101600Z'],
    ]);
    assert.match(approval.text, /`lifeboat approve pitr-orders-20261206T101600Z` or `lifeboat approve pitr-orders-20261206T101600Z --reject`/);
  });

  test('a Slack webhook URL is a credential: no error message repeats it', async () => {
    receiver.failNext(1, 404);
    await assert.rejects(deliver(drillFinished, 'ops', slack, { env, webhookId }), (error: Error) =>
      error instanceof LifeboatError && error.type === 'NotificationRejected' && !error.message.includes('s3cr3tT0k3n') && /LIFEBOAT_TEST_SLACK_URL/.test(error.message),
    );
    const down = { ...env, LIFEBOAT_TEST_SLACK_URL: 'http://127.0.0.1:9/services/T0001/B0002/s3cr3tT0k3n' };
    await assert.rejects(deliver(drillFinished, 'ops', slack, { env: down, webhookId }), (error: Error) => !(error instanceof LifeboatError) && !error.message.includes('s3cr3tT0k3n') && /did not answer/.test(error.message));
  });
});
