/**
 * Chatops' pure parts: Slack's request signing (against the example Slack's documentation
 * publishes), the allow rules (default deny, and why a request is refused), the command text, the
 * workflow id a request derives, and the config's checks.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authorize, type ChatopsAsk } from '../../src/chatops/authorize.js';
import { parseCommand } from '../../src/chatops/commands.js';
import { buttonPressOf, chatopsWorkflowId } from '../../src/chatops/service.js';
import { signSlackRequest, verifySlackRequest } from '../../src/chatops/signature.js';
import { parseConfig } from '../../src/config/load.js';
import type { ChatopsConfig } from '../../src/config/schema.js';

// "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack): its worked example.
const slackExample = {
  secret: '8f742231b10e8888abcd99yyyzzz85a5',
  timestamp: 1531420618,
  body:
    'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner' +
    '&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN' +
    '&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
  signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
};

describe('Slack request signatures (v0)', () => {
  const headers = { 'x-slack-request-timestamp': String(slackExample.timestamp), 'x-slack-signature': slackExample.signature };
  const verify = (over: Partial<{ headers: Record<string, string>; body: string; nowSeconds: number; secret: string }> = {}) =>
    verifySlackRequest({ secret: slackExample.secret, headers, body: slackExample.body, nowSeconds: slackExample.timestamp, ...over });

  test('signing reproduces the example of Slack\'s documentation, and it verifies (as a string and as bytes)', () => {
    assert.equal(signSlackRequest(slackExample), slackExample.signature);
    assert.equal(verify(), undefined);
    assert.equal(verifySlackRequest({ secret: slackExample.secret, headers, body: Buffer.from(slackExample.body), nowSeconds: slackExample.timestamp }), undefined);
  });

  test('within 5 minutes of now either way it verifies; beyond, it is stale or from the future', () => {
    assert.equal(verify({ nowSeconds: slackExample.timestamp + 300 }), undefined);
    assert.equal(verify({ nowSeconds: slackExample.timestamp - 300 }), undefined);
    assert.equal(verify({ nowSeconds: slackExample.timestamp + 301 }), 'stale');
    assert.equal(verify({ nowSeconds: slackExample.timestamp - 301 }), 'future');
  });

  test('a changed body, timestamp or secret, a missing or malformed header: refused', () => {
    assert.equal(verify({ body: slackExample.body.replace('text=', 'text=drill+orders') }), 'bad-signature');
    assert.equal(verify({ headers: { ...headers, 'x-slack-request-timestamp': String(slackExample.timestamp + 1) }, nowSeconds: slackExample.timestamp + 1 }), 'bad-signature');
    assert.equal(verify({ secret: 'another-secret' }), 'bad-signature');
    assert.equal(verify({ headers: { 'x-slack-request-timestamp': headers['x-slack-request-timestamp'] } }), 'unsigned');
    assert.equal(verify({ headers: { 'x-slack-signature': headers['x-slack-signature'] } }), 'unsigned');
    assert.equal(verify({ headers: { ...headers, 'x-slack-signature': `v1=${slackExample.signature.slice(3)}` } }), 'malformed');
    assert.equal(verify({ headers: { ...headers, 'x-slack-signature': slackExample.signature.toUpperCase().replace('V0=', 'v0=') } }), 'malformed');
    assert.equal(verify({ headers: { ...headers, 'x-slack-request-timestamp': '1531420618.5' } }), 'malformed');
  });
});

describe('chatops authorization: allow rules, default deny', () => {
  const config: ChatopsConfig = {
    slack: { signingSecretEnv: 'SLACK_SIGNING_SECRET' },
    allow: [
      // Anyone in #ops may drill any target and read the status.
      { commands: ['drill', 'status', 'backups'], targets: ['*'], channels: ['C0OPS'], users: ['*'] },
      // Only Alice may back up and approve, on orders, from #ops or #dba.
      { commands: ['backup', 'approve'], targets: ['orders'], channels: ['C0OPS', 'C0DBA'], users: ['U0ALICE'] },
    ],
  };
  const ask = (over: Partial<ChatopsAsk>): ChatopsAsk => ({ command: 'drill', target: 'orders', user: 'U0BOB', channel: 'C0OPS', team: 'T0ACME', ...over });

  test('a request one rule covers is allowed, and names the rule', () => {
    assert.deepEqual(authorize(config, ask({})), { allowed: true, rule: 0 });
    assert.deepEqual(authorize(config, ask({ command: 'approve', user: 'U0ALICE', channel: 'C0DBA' })), { allowed: true, rule: 1 });
  });

  test('anything no rule covers is refused, saying which part no rule covers', () => {
    const refused = (over: Partial<ChatopsAsk>) => {
      const verdict = authorize(config, ask(over));
      assert.equal(verdict.allowed, false);
      return verdict.allowed ? '' : verdict.reason;
    };
    assert.match(refused({ channel: 'C0RANDOM' }), /`drill` on target "orders" is not allowed in this channel \(C0RANDOM\)/);
    assert.match(refused({ command: 'approve' }), /user U0BOB may not ask for `approve` on target "orders" here/);
    assert.match(refused({ command: 'backup', target: 'billing', user: 'U0ALICE' }), /no chatops rule allows `backup` on target "billing"/);
    assert.equal(authorize({ ...config, allow: [] }, ask({})).allowed, false);
  });

  test('with a workspace configured, requests from any other are refused', () => {
    const verdict = authorize({ ...config, slack: { ...config.slack, teamId: 'T0ACME' } }, ask({ team: 'T0EVIL' }));
    assert.deepEqual(verdict, { allowed: false, reason: 'this Lifeboat answers the Slack workspace T0ACME only, and the request came from T0EVIL' });
    assert.equal(authorize({ ...config, slack: { ...config.slack, teamId: 'T0ACME' } }, ask({})).allowed, true);
  });
});

describe('chatops commands', () => {
  test('each command and its argument', () => {
    assert.deepEqual(parseCommand('drill orders'), { command: 'drill', target: 'orders' });
    assert.deepEqual(parseCommand('  backup   orders '), { command: 'backup', target: 'orders' });
    assert.deepEqual(parseCommand('status'), { command: 'status', target: undefined });
    assert.deepEqual(parseCommand('status orders'), { command: 'status', target: 'orders' });
    assert.deepEqual(parseCommand('backups orders'), { command: 'backups', target: 'orders' });
    assert.deepEqual(parseCommand('approve pitr-ledger-20261121T020000Z'), { command: 'approve', workflowId: 'pitr-ledger-20261121T020000Z', approve: true });
    assert.deepEqual(parseCommand('reject pitr-ledger-20261121T020000Z'), { command: 'approve', workflowId: 'pitr-ledger-20261121T020000Z', approve: false });
    assert.deepEqual(parseCommand(''), { command: 'help' });
    assert.deepEqual(parseCommand('help'), { command: 'help' });
  });

  test('what is not a command says why', () => {
    assert.deepEqual(parseCommand('restore orders'), { command: 'invalid', problem: 'unknown command `restore`' });
    assert.deepEqual(parseCommand('drill'), { command: 'invalid', problem: '`drill` needs a target: `drill <target>`' });
    assert.deepEqual(parseCommand('drill Orders!'), { command: 'invalid', problem: '"Orders!" is not a target name' });
    assert.deepEqual(parseCommand('drill orders now'), { command: 'invalid', problem: '`drill` takes one argument; "now" is one too many' });
    assert.deepEqual(parseCommand('approve <script>'), { command: 'invalid', problem: '"<script>" is not a workflow id' });
  });

  test('a request derives its workflow id: the same for a retry of it, another for another invocation', () => {
    const request = { team: 'T0ACME', triggerId: '13345224609.738474920.8088930838d88f008e0', responseUrl: 'https://hooks.slack.com/commands/1' };
    const id = chatopsWorkflowId('drill', 'orders', request);
    assert.match(id, /^drill-orders-slack-[0-9a-f]{12}$/);
    assert.equal(chatopsWorkflowId('drill', 'orders', { ...request }), id);
    assert.notEqual(chatopsWorkflowId('drill', 'orders', { ...request, triggerId: '13345224609.738474920.8088930838d88f008e1' }), id);
  });

  test('a button press on an approval message, and what is not one', () => {
    const press = {
      type: 'block_actions',
      user: { id: 'U0ALICE', username: 'alice', team_id: 'T0ACME' },
      team: { id: 'T0ACME' },
      channel: { id: 'C0OPS', name: 'ops' },
      response_url: 'https://hooks.slack.com/actions/T0ACME/1/x',
      trigger_id: '1.2.3',
      actions: [{ action_id: 'lifeboat_reject', value: 'pitr-ledger-1', type: 'button' }],
    };
    assert.deepEqual(buttonPressOf(press), {
      approve: false,
      workflowId: 'pitr-ledger-1',
      user: 'U0ALICE',
      userName: 'alice',
      channel: 'C0OPS',
      team: 'T0ACME',
      responseUrl: press.response_url,
      triggerId: '1.2.3',
    });
    assert.equal(buttonPressOf({ ...press, type: 'view_submission' }), 'interactions of type "view_submission" are not handled');
    assert.equal(buttonPressOf({ ...press, actions: [{ action_id: 'other', value: 'x' }] }), 'no Lifeboat approval button in the actions');
  });
});

describe('chatops configuration', () => {
  const base = {
    repositories: { local: { type: 'fs', path: '/var/backups/lifeboat' } },
    targets: { orders: { type: 'sqlite', path: '/srv/orders.sqlite', repositories: ['local'] } },
  };

  test('rules name known targets, Slack ids (not names), and the late-outcomes channel is a Slack notification channel', () => {
    const problems = (chatops: unknown, extra: Record<string, unknown> = {}) => {
      try {
        parseConfig({ ...base, ...extra, chatops }, 'lifeboat.config.yaml');
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    };
    assert.equal(problems({ slack: { signingSecretEnv: 'S' }, allow: [{ commands: ['drill'], targets: ['*'], channels: ['C0OPS'], users: ['*'] }] }), '');
    assert.match(problems({ slack: { signingSecretEnv: 'S' }, allow: [{ commands: ['drill'], targets: ['billing'], channels: ['C0OPS'], users: ['*'] }] }), /chatops\.allow\.0\.targets\.0.*unknown target "billing"/s);
    assert.match(problems({ slack: { signingSecretEnv: 'S' }, allow: [{ commands: ['drill'], targets: ['*'], channels: ['#ops'], users: ['*'] }] }), /chatops\.allow\.0\.channels\.0/);
    assert.match(problems({ slack: { signingSecretEnv: 'S' }, allow: [{ commands: ['restore'], targets: ['*'], channels: ['*'], users: ['*'] }] }), /chatops\.allow\.0\.commands\.0/);
    assert.match(problems({ slack: { signingSecretEnv: 'S', lateOutcomes: 'pager' } }, { notifications: { channels: { pager: { type: 'webhook', url: 'https://x.example', secretEnv: 'W' } } } }), /"pager" is not a notifications channel of type slack/);
    assert.equal(problems({ slack: { signingSecretEnv: 'S', lateOutcomes: 'ops' } }, { notifications: { channels: { ops: { type: 'slack', urlEnv: 'U' } } } }), '');
  });
});
