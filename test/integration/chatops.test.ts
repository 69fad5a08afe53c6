/**
 * Chatops over real HTTP: `lifeboat serve` (in this process) with a chatops config, the real
 * Temporal dev server and a worker, and a local receiver standing in for Slack's response_url and
 * for the incoming webhook of the late-outcomes channel. Requests are signed here as Slack signs
 * them, with the secret serve reads from its environment.
 *
 * - a slash command starts a drill (and a backup) and the outcome reaches its response_url; the
 *   run says who asked (memo and search attribute);
 * - Slack's retry of a request, and a re-signed retry, get the same answer and start nothing more;
 * - unsigned, stale, future, tampered, replayed, unauthorized-user and unauthorized-channel
 *   requests are refused, recorded, and start nothing;
 * - a run that outlasts its response_url, or one still open when serve restarts, is told through
 *   the late-outcomes channel;
 * - an approval button pressed by someone the rules do not allow changes nothing; pressed by an
 *   approver, the run takes the answer and records the Slack identity.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ChatopsDecision } from '../../src/chatops/decisions.js';
import { chatopsWorkflowId } from '../../src/chatops/service.js';
import { runbookFailure, searchAttributes } from '../../src/client.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logger.js';
import { startServe, type RunningServe } from '../../src/serve/server.js';
import type { DrillReport } from '../../workflows/drill.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { startReceiver, type ReceivedRequest, type Receiver } from '../helpers/receiver.js';
import { buttonPressBody, slackHeaders } from '../helpers/slack.js';

const secret = randomBytes(16).toString('hex');
const secretEnv = 'LIFEBOAT_TEST_SLACK_SIGNING_SECRET';
const lateEnv = 'LIFEBOAT_TEST_CHATOPS_LATE_WEBHOOK';
const team = 'T0ACME';
const ops = { id: 'C0OPS', name: 'ops' };
const alice = { id: 'U0ALICE', name: 'alice' };
const bob = { id: 'U0BOB', name: 'bob' };
const target = 'orders';

interface SlackAnswer {
  response_type?: string;
  replace_original?: boolean;
  text: string;
  blocks?: unknown[];
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('chatops: Slack slash commands and approval buttons on lifeboat serve', () => {
  let lifeboat: Lifeboat;
  let receiver: Receiver;
  let serve: RunningServe;
  let config: ReturnType<typeof loadConfig>;
  let decisionLog: string;
  let commandCount = 0;

  const serveWith = (extra: { responseUrlLifetimeMs?: number } = {}) =>
    startServe({
      config,
      settings: lifeboat.settings,
      listen: '127.0.0.1:0',
      refreshSeconds: 5,
      env: { ...process.env, [secretEnv]: secret, [lateEnv]: `${receiver.url}/services/late` },
      logger: createLogger('chatops-test', 'silent'),
      chatops: extra,
    });

  /** A slash command's form body, as Slack sends it; every invocation has its own trigger id and response_url. */
  function commandBody(text: string, who: { id: string; name: string }, channel: { id: string; name: string } = ops): { body: string; responseUrl: string; triggerId: string } {
    const n = ++commandCount;
    const responseUrl = `${receiver.url}/commands/${team}/${n}/${randomBytes(6).toString('hex')}`;
    const triggerId = `${Date.now()}.${n}.${randomBytes(8).toString('hex')}`;
    const body = new URLSearchParams({
      token: 'deprecated-verification-token',
      team_id: team,
      team_domain: 'acme',
      channel_id: channel.id,
      channel_name: channel.name,
      user_id: who.id,
      user_name: who.name,
      command: '/lifeboat',
      text,
      api_app_id: 'A0LIFEBOAT',
      response_url: responseUrl,
      trigger_id: triggerId,
    }).toString();
    return { body, responseUrl, triggerId };
  }

  const signed = (body: string, options: { timestamp?: number; signWith?: string; retry?: number } = {}) => slackHeaders(options.signWith ?? secret, body, options);

  async function post(path: string, body: string, headers: Record<string, string>, on: RunningServe = serve): Promise<{ status: number; answer: SlackAnswer | undefined; text: string }> {
    const response = await fetch(`${on.url}${path}`, { method: 'POST', headers, body });
    const text = await response.text();
    const json = response.headers.get('content-type')?.startsWith('application/json') ? (JSON.parse(text) as SlackAnswer) : undefined;
    return { status: response.status, answer: json, text };
  }

  const command = (text: string, who = alice, channel = ops, on = serve) => {
    const request = commandBody(text, who, channel);
    const headers = signed(request.body);
    return post('/slack/commands', request.body, headers, on).then((result) => ({ ...result, ...request, headers }));
  };

  const receivedAt = (path: string): ReceivedRequest[] => receiver.accepted.filter((r) => r.path === path);
  const messageAt = (path: string) => until(`a message posted to ${path}`, () => receivedAt(path)[0]).then((r) => JSON.parse(r.body) as SlackAnswer);
  const decisions = (): ChatopsDecision[] => serve.chatops!.decisions.decisions;
  const notStarted = async (workflowId: string) =>
    assert.rejects(lifeboat.client.workflow.getHandle(workflowId).describe(), WorkflowNotFoundError, `${workflowId} was started`);

  before(async () => {
    lifeboat = await createLifeboat('chatops');
    receiver = await startReceiver();
    createDatabase(join(lifeboat.dir, 'orders.sqlite'), 1);
    decisionLog = join(lifeboat.dir, 'chatops-decisions.jsonl');
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          [target]: {
            type: 'sqlite',
            path: join(lifeboat.dir, 'orders.sqlite'),
            repositories: ['local'],
            drill: { rtoTargetSeconds: 600, smokeChecks: [{ name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 }] },
            retention: { keepLast: 1 },
          },
        },
        {
          notifications: {
            temporalUiUrl: 'http://temporal-ui.test:8233',
            // The late-outcomes channel; the runs themselves send it nothing in this test.
            channels: { late: { type: 'slack', urlEnv: lateEnv, events: ['verify.damaged'] } },
          },
          chatops: {
            slack: { signingSecretEnv: secretEnv, teamId: team, lateOutcomes: 'late' },
            allow: [
              { commands: ['drill', 'status', 'backups'], targets: ['*'], channels: [ops.id], users: ['*'] },
              { commands: ['backup', 'approve'], targets: [target], channels: [ops.id], users: [alice.id] },
            ],
            decisionLog,
          },
        },
      ),
    );
    config = loadConfig(lifeboat.configPath);
    await lifeboat.startWorker();
    serve = await serveWith();
  });

  after(async () => {
    await serve?.close();
    await receiver?.close();
    await lifeboat?.close();
  });

  test('a slash command starts a backup, then a drill; each is acknowledged with its workflow id and a link to the Temporal UI, and its outcome reaches the response_url', async () => {
    const backup = await command(`backup ${target}`, alice);
    assert.equal(backup.status, 200, backup.text);
    assert.equal(backup.answer?.response_type, 'ephemeral');
    const backupId = chatopsWorkflowId('backup', target, { team, triggerId: backup.triggerId, responseUrl: backup.responseUrl });
    assert.match(backup.answer!.text, new RegExp(`^Backup of ${target} started: ${backupId}\\.`));
    assert.match(JSON.stringify(backup.answer!.blocks), new RegExp(`<http://temporal-ui\\.test:8233/namespaces/default/workflows/${backupId}/[0-9a-f-]+/history\\|${backupId}>`));
    const backupOutcome = await messageAt(new URL(backup.responseUrl).pathname);
    assert.equal(backupOutcome.response_type, 'in_channel');
    assert.match(backupOutcome.text, new RegExp(`^Backup of ${target} done: \\d{8}T\\d{6}Z-`));

    const drill = await command(`drill ${target}`, bob);
    assert.equal(drill.status, 200, drill.text);
    const drillId = chatopsWorkflowId('drill', target, { team, triggerId: drill.triggerId, responseUrl: drill.responseUrl });
    assert.match(drill.answer!.text, new RegExp(`^Drill of ${target} started: ${drillId}\\.`));

    // Slack retries a request it got no answer to in time: the same bytes with X-Slack-Retry-Num, or signed anew.
    const retried = await post('/slack/commands', drill.body, { ...drill.headers, 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' });
    assert.equal(retried.status, 200, retried.text);
    assert.deepEqual(retried.answer, drill.answer, 'the first answer again');
    const resigned = await post('/slack/commands', drill.body, signed(drill.body, { timestamp: Math.floor(Date.now() / 1000) + 1, retry: 2 }));
    assert.equal(resigned.status, 200, resigned.text);
    assert.deepEqual(resigned.answer, drill.answer, 'the same answer: the run the first request started');
    assert.ok(decisions().some((d) => d.workflowId === drillId && d.alreadyStarted === true && d.retry === 2));

    const outcome = await messageAt(new URL(drill.responseUrl).pathname);
    assert.match(outcome.text, new RegExp(`^Drill of ${target} PASSED: RTO`));
    assert.match(JSON.stringify(outcome.blocks), /asked by <@U0BOB>/);
    const handle = lifeboat.client.workflow.getHandle(drillId);
    const description = await handle.describe();
    assert.deepEqual(description.memo?.requestedBy, { via: 'chatops', user: bob.id, channel: ops.id, userName: bob.name, channelName: ops.name, team });
    assert.equal(description.typedSearchAttributes.get(searchAttributes.requestedBy), `chatops:${bob.id}`);
    assert.equal(((await handle.result()) as DrillReport).passed, true);
    assert.equal(receivedAt(new URL(drill.responseUrl).pathname).length, 1, 'one outcome for the three requests');
    assert.equal((await lifeboat.client.workflow.getHandle(drillId).describe()).runId, description.runId);
  });

  test('status and backups are answered from serve, to the asker only', async () => {
    await until('serve\'s first read of the state', () => serve.refresher.latest);
    const status = await command(`status ${target}`, bob);
    assert.equal(status.status, 200);
    assert.equal(status.answer?.response_type, 'ephemeral');
    assert.match(status.answer!.text, new RegExp(`^${target}: `));
    const all = await command('status', bob);
    assert.match(JSON.stringify(all.answer!.blocks), new RegExp(`\\*${target}\\* \\(sqlite\\)`));
    const backups = await command(`backups ${target}`, bob);
    assert.match(backups.answer!.text, new RegExp(`^1 backup\\(s\\) of ${target}; newest \\d{8}T\\d{6}Z-`));
    const help = await command('restore orders', bob);
    assert.match(help.answer!.text, /^unknown command `restore`/);
  });

  test('unsigned, stale, future, tampered and replayed requests are refused (401), recorded, and start nothing', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, (request: ReturnType<typeof commandBody>) => { body: string; headers: Record<string, string> }, RegExp]> = [
      ['unsigned', (r) => ({ body: r.body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }), /no X-Slack-Signature or X-Slack-Request-Timestamp header/],
      ['stale', (r) => ({ body: r.body, headers: signed(r.body, { timestamp: now - 360 }) }), /more than 300 s in the past/],
      ['future', (r) => ({ body: r.body, headers: signed(r.body, { timestamp: now + 360 }) }), /more than 300 s in the future/],
      ['tampered', (r) => ({ body: r.body.replace(`user_id=${bob.id}`, `user_id=${alice.id}`), headers: signed(r.body) }), /the signature does not match the body/],
      ['another secret', (r) => ({ body: r.body, headers: signed(r.body, { signWith: 'not-the-secret' }) }), /the signature does not match the body/],
    ];
    for (const [name, make, reason] of cases) {
      const request = commandBody(`backup ${target}`, bob);
      const { body, headers } = make(request);
      const refused = await post('/slack/commands', body, headers);
      assert.equal(refused.status, 401, `${name}: ${refused.text}`);
      assert.match(refused.text, reason, name);
      assert.match(decisions().at(-1)!.reason ?? '', reason, name);
      assert.equal(decisions().at(-1)!.decision, 'rejected');
      await notStarted(chatopsWorkflowId('backup', target, { team, triggerId: request.triggerId, responseUrl: request.responseUrl }));
    }

    // Replayed: a request that was carried out, sent again as it was (without Slack's retry header).
    const original = commandBody(`drill ${target}`, bob);
    const headers = signed(original.body);
    const first = await post('/slack/commands', original.body, headers);
    assert.equal(first.status, 200, first.text);
    const workflowId = chatopsWorkflowId('drill', target, { team, triggerId: original.triggerId, responseUrl: original.responseUrl });
    const runId = (await lifeboat.client.workflow.getHandle(workflowId).describe()).runId;
    const replayed = await post('/slack/commands', original.body, headers);
    assert.equal(replayed.status, 401);
    assert.match(replayed.text, /replayed/);
    assert.equal(decisions().at(-1)!.decision, 'rejected');
    assert.equal((await lifeboat.client.workflow.getHandle(workflowId).describe()).runId, runId, 'no second run');
    await messageAt(new URL(original.responseUrl).pathname);
  });

  test('an unauthorized user or channel is refused with the reason, recorded in the decision log, and nothing starts', async () => {
    const byBob = await command(`backup ${target}`, bob);
    assert.equal(byBob.status, 200);
    assert.equal(byBob.answer?.response_type, 'ephemeral');
    assert.match(byBob.answer!.text, /^Refused: user U0BOB may not ask for `backup` on target "orders" here; the chatops rules that allow it name other users\. Nothing was started\.$/);
    await notStarted(chatopsWorkflowId('backup', target, { team, triggerId: byBob.triggerId, responseUrl: byBob.responseUrl }));

    const elsewhere = await command(`drill ${target}`, bob, { id: 'C0RANDOM', name: 'random' });
    assert.match(elsewhere.answer!.text, /^Refused: `drill` on target "orders" is not allowed in this channel \(C0RANDOM\)/);
    await notStarted(chatopsWorkflowId('drill', target, { team, triggerId: elsewhere.triggerId, responseUrl: elsewhere.responseUrl }));

    await serve.chatops!.decisions.flushed();
    const logged = (await readFile(decisionLog, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as ChatopsDecision);
    const refusals = logged.filter((d) => d.decision === 'refused' && d.user === bob.id);
    assert.ok(refusals.some((d) => d.channel === ops.id && /may not ask for `backup`/.test(d.reason ?? '') && d.request === `/lifeboat backup ${target}`));
    assert.ok(refusals.some((d) => d.channel === 'C0RANDOM' && /not allowed in this channel/.test(d.reason ?? '')));
    assert.ok(logged.some((d) => d.decision === 'rejected' && /replayed/.test(d.reason ?? '')));
    assert.ok(!(await readFile(decisionLog, 'utf8')).includes('/commands/'), 'no response_url in the log');
  });

  test('a run that outlasts its response_url, and a run still open when serve restarts, are told through the late-outcomes channel', async () => {
    await lifeboat.stopWorker();
    const beforeRestart = await command(`backup ${target}`, alice);
    assert.match(beforeRestart.answer!.text, /^Backup of orders started/);
    const openId = chatopsWorkflowId('backup', target, { team, triggerId: beforeRestart.triggerId, responseUrl: beforeRestart.responseUrl });
    // serve restarts: the response_url is gone with the process.
    await serve.close();
    const query = `WorkflowId = "${openId}" AND ExecutionStatus = "Running"`;
    await until('the open run visible to a restarted serve', async () => ((await lifeboat.client.workflow.count(query)).count === 1 ? true : undefined));
    serve = await serveWith({ responseUrlLifetimeMs: 1 });
    await until('the restarted serve following the open run', () => (serve.chatops!.watcher.size >= 1 ? true : undefined));
    // A response_url that expires at once: as if the run took longer than Slack's 30 minutes.
    const outlasting = await command(`backup ${target}`, alice);
    assert.match(outlasting.answer!.text, /^Backup of orders started/);

    await lifeboat.startWorker();
    await until('both outcomes in the late-outcomes channel', () => (receivedAt('/services/late').length >= 2 ? true : undefined));
    const late = receivedAt('/services/late').map((r) => JSON.parse(r.body) as SlackAnswer);
    for (const message of late) {
      assert.match(message.text, /^Backup of orders done: /);
      assert.match(JSON.stringify(message.blocks), /asked by <@U0ALICE>/);
    }
    assert.ok(late.some((m) => JSON.stringify(m.blocks).includes(openId)));
    assert.equal(receivedAt(new URL(beforeRestart.responseUrl).pathname).length, 0);
    assert.equal(receivedAt(new URL(outlasting.responseUrl).pathname).length, 0);
  });

  test('approval buttons: a press by someone the rules do not allow changes nothing; the approver\'s press is taken, and recorded with the Slack identity', async () => {
    // A retention run removes the older backups of `orders` (keepLast 1) after an approval.
    const run = await lifeboat.start('retention', { target, approval: true });
    await until('the retention run waiting for its approval', async () => {
      const steps = await run.query<Array<{ name: string; status: string }>>('timeline').catch(() => []);
      return steps.some((s) => s.name === 'await-approval' && s.status === 'running') ? true : undefined;
    });
    const press = (who: { id: string; name: string }, action: 'lifeboat_approve' | 'lifeboat_reject') => {
      const responseUrl = `${receiver.url}/actions/${team}/${++commandCount}/${randomBytes(6).toString('hex')}`;
      const body = buttonPressBody({ team, user: who, channel: ops }, { action, workflowId: run.workflowId, responseUrl });
      return post('/slack/interactions', body, signed(body)).then((result) => ({ ...result, path: new URL(responseUrl).pathname }));
    };

    const byBob = await press(bob, 'lifeboat_approve');
    assert.equal(byBob.status, 200);
    const refusal = await messageAt(byBob.path);
    assert.equal(refusal.replace_original, false);
    assert.match(refusal.text, /^Refused: user U0BOB may not ask for `approve` on target "orders" here/);
    const slashByBob = await command(`approve ${run.workflowId}`, bob);
    assert.match(slashByBob.answer!.text, /^Refused: user U0BOB may not ask for `approve`/);
    assert.equal((await run.describe()).status.name, 'RUNNING', 'still waiting');

    const byAlice = await press(alice, 'lifeboat_reject');
    assert.equal(byAlice.status, 200);
    const answered = await messageAt(byAlice.path);
    assert.equal(answered.replace_original, true, 'the approval message becomes its answer');
    assert.match(answered.text, new RegExp(`^Rejected by <@U0ALICE>: ${run.workflowId} \\(orders\\)$`));
    const failure = await run.result().then(() => assert.fail('a rejected retention fails'), (error: unknown) => runbookFailure(error));
    assert.equal(failure.type, 'NotApproved');
    assert.match(failure.message, /was rejected by slack:U0ALICE \(@alice\); nothing was removed/);
    assert.ok(decisions().some((d) => d.route === 'interactions' && d.decision === 'answered' && d.user === alice.id && d.workflowId === run.workflowId));
  });
});
