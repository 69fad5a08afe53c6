/**
 * `npm run bench:chatops`: how fast `lifeboat serve` acknowledges Slack slash commands, against the
 * acceptance target of issue 16 §7:
 *
 *   20 concurrent signed slash commands            acknowledgement p99 <= 300 ms (Slack's limit: 3 s)
 *
 * Each round fires `--concurrency` signed requests at once over loopback HTTP; every request is
 * verified (HMAC-SHA256), authorized and then does its real work before serve answers: `drill
 * <target>` starts a drill run on a headless Temporal dev server (a new workflow id per request,
 * derived from its trigger_id), `status` answers from serve's last state read. The acknowledgement
 * time is from sending the request to having read Slack's whole answer. No worker polls the task
 * queue (what is measured is serve and Temporal's start, not the drills), and the runs are
 * terminated at the end. Serve's outcome watchers (one long poll per run) stay open meanwhile,
 * as they would in production.
 *
 * Baseline, in the same rounds: the same number of drill starts sent at once straight to Temporal
 * from this process (startRunbookOnce, what serve calls), so that what serve adds (verifying,
 * authorizing, HTTP, the decision log, the watcher) reads apart from what the Temporal server
 * takes. The dev server keeps its state in one SQLite file and writes one start at a time: on a
 * busy disk its starts, not serve, set the drill figures.
 *
 * Usage: npm run bench:chatops -- [--concurrency 20] [--rounds 5] [--targets 20] [--keep]
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectClient, startRunbookOnce } from '../src/client.js';
import { parseConfig } from '../src/config/load.js';
import { projectRoot } from '../src/dev/tools.js';
import { startTemporalDevServer } from '../src/dev/temporal-server.js';
import { createLogger } from '../src/logger.js';
import { startServe } from '../src/serve/server.js';
import { startReceiver } from '../test/helpers/receiver.js';
import { percentile, runSuite, verdict } from './percentiles.js';

const say = (line: string): void => void process.stderr.write(`bench:chatops: ${line}\n`);

const ACK_P99_TARGET_MS = 300;
const secretEnv = 'LIFEBOAT_BENCH_SLACK_SIGNING_SECRET';
const team = 'T0BENCH';
const channel = 'C0OPS';

function options() {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '5' },
      targets: { type: 'string', default: '20' },
      keep: { type: 'boolean', default: false },
    },
  });
  const int = (name: 'concurrency' | 'rounds' | 'targets'): number => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1, got ${String(values[name])}`);
    return value;
  };
  return { concurrency: int('concurrency'), rounds: int('rounds'), targets: int('targets'), keep: values.keep ?? false };
}

/** Signed as Slack signs (v0); computed here from the documented scheme rather than with serve's own code. */
function signedHeaders(secret: string, body: string): Record<string, string> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  return { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': timestamp, 'x-slack-signature': signature };
}

async function main(): Promise<number> {
  const o = options();
  const workDir = join(projectRoot, '.lifeboat', 'bench', 'chatops');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  const temporal = await startTemporalDevServer({ dbFile: join(workDir, 'temporal.db'), uiPort: false });
  const receiver = await startReceiver();
  const failures: string[] = [];
  const started: string[] = [];
  const settings = { address: temporal.address, namespace: 'default', taskQueue: 'lifeboat-bench-chatops' };
  const client = await connectClient(settings);
  try {
    const targetNames = Array.from({ length: o.targets }, (_, i) => `db-${String(i + 1).padStart(2, '0')}`);
    const config = parseConfig(
      {
        repositories: { local: { type: 'fs', path: join(workDir, 'repository') } },
        targets: Object.fromEntries(targetNames.map((name) => [name, { type: 'sqlite', path: join(workDir, `${name}.sqlite`), repositories: ['local'] }])),
        temporal: { address: temporal.address, taskQueue: settings.taskQueue },
        chatops: {
          slack: { signingSecretEnv: secretEnv, teamId: team },
          allow: [{ commands: ['drill', 'status'], targets: ['*'], channels: [channel], users: ['*'] }],
          decisionLog: join(workDir, 'decisions.jsonl'),
        },
      },
      'the benchmark config',
    );
    const serve = await startServe({ config, settings, listen: '127.0.0.1:0', refreshSeconds: 86400, env: { ...process.env, [secretEnv]: secret }, logger: createLogger('bench-serve', 'warn') });
    try {
      while (serve.refresher.latest === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      let n = 0;
      const ask = async (text: string): Promise<number> => {
        const i = ++n;
        const body = new URLSearchParams({
          team_id: team,
          channel_id: channel,
          channel_name: 'ops',
          user_id: `U0USER${i % 7}`,
          user_name: `user${i % 7}`,
          command: '/lifeboat',
          text,
          response_url: `${receiver.url}/commands/${team}/${i}/${randomBytes(6).toString('hex')}`,
          trigger_id: `${Date.now()}.${i}.${randomBytes(8).toString('hex')}`,
        }).toString();
        const sent = performance.now();
        const response = await fetch(`${serve.url}/slack/commands`, { method: 'POST', headers: signedHeaders(secret, body), body });
        const answer = (await response.json()) as { text?: string };
        const ms = performance.now() - sent;
        if (response.status !== 200) throw new Error(`${text}: answered ${response.status}`);
        const id = /started: (\S+)\./.exec(answer.text ?? '')?.[1];
        if (text.startsWith('drill')) {
          if (!id) throw new Error(`${text}: not started: ${answer.text ?? ''}`);
          started.push(id);
        }
        return ms;
      };
      const round = async (texts: string[]): Promise<number[]> => Promise.all(texts.map((text) => ask(text)));

      // One request first: the connections to Temporal are open before anything is measured.
      await ask(`drill ${targetNames[0]!}`);
      const measured: Record<'drill' | 'status' | 'baseline', number[]> = { drill: [], status: [], baseline: [] };
      let b = 0;
      const startDirectly = async (target: string): Promise<number> => {
        const workflowId = `drill-${target}-bench-baseline-${++b}-${randomBytes(4).toString('hex')}`;
        const sent = performance.now();
        await startRunbookOnce(client, settings, 'drill', { target }, { via: 'chatops', user: 'U0BASELINE', channel }, workflowId);
        const ms = performance.now() - sent;
        started.push(workflowId);
        return ms;
      };
      for (let r = 0; r < o.rounds; r++) {
        const baseline = await Promise.all(Array.from({ length: o.concurrency }, (_, i) => startDirectly(targetNames[i % targetNames.length]!)));
        measured.baseline.push(...baseline);
        const drills = await round(Array.from({ length: o.concurrency }, (_, i) => `drill ${targetNames[i % targetNames.length]!}`));
        const statuses = await round(Array.from({ length: o.concurrency }, (_, i) => (i % 2 ? 'status' : `status ${targetNames[i % targetNames.length]!}`)));
        measured.drill.push(...drills);
        measured.status.push(...statuses);
        say(`round ${r + 1}: ${o.concurrency} starts straight to Temporal, slowest ${Math.max(...baseline).toFixed(1)} ms; ${o.concurrency} drills, slowest ack ${Math.max(...drills).toFixed(1)} ms; ${o.concurrency} status, slowest ${Math.max(...statuses).toFixed(1)} ms`);
      }
      const decisions = serve.chatops!.decisions.decisions;
      const startedRuns = decisions.filter((d) => d.decision === 'started' && d.alreadyStarted !== true).length;
      if (startedRuns !== o.rounds * o.concurrency + 1) failures.push(`${startedRuns} runs started for ${o.rounds * o.concurrency + 1} drill commands`);

      say('');
      say(`| measure (${o.rounds} rounds of ${o.concurrency} concurrent signed slash commands) | p50 | p99 | max | target |`);
      say('|---|---|---|---|---|');
      const labels = {
        drill: 'ack of `drill` (starts a run on Temporal)',
        status: 'ack of `status` (answered from serve\'s state)',
        baseline: 'baseline: the same starts sent straight to Temporal, no serve',
      } as const;
      for (const what of ['drill', 'status', 'baseline'] as const) {
        const sorted = [...measured[what]].sort((x, y) => x - y);
        const p99 = percentile(sorted, 99);
        const target = what === 'baseline' ? 'reference' : `p99 <= ${ACK_P99_TARGET_MS} ms`;
        say(`| ${labels[what]} | ${percentile(sorted, 50).toFixed(1)} ms | ${p99.toFixed(1)} ms | ${sorted.at(-1)!.toFixed(1)} ms | ${target} |`);
        if (what !== 'baseline' && p99 > ACK_P99_TARGET_MS) failures.push(`ack p99 of ${what} is ${p99.toFixed(1)} ms (> ${ACK_P99_TARGET_MS} ms)`);
      }
      const p50 = (what: 'drill' | 'baseline') => percentile([...measured[what]].sort((x, y) => x - y), 50);
      say(`drill ack p50 / baseline start p50: ${(p50('drill') / p50('baseline')).toFixed(2)}x (what serve adds on top of Temporal's start)`);
    } finally {
      await serve.close();
    }
  } finally {
    // The drills have no worker: end them so nothing is left waiting.
    await Promise.allSettled(started.map((id) => client.workflow.getHandle(id).terminate('benchmark over')));
    await client.connection.close();
    await receiver.close();
    await temporal.stop();
    if (!o.keep) await rm(workDir, { recursive: true, force: true });
  }
  return verdict(say, failures);
}

runSuite(say, main);
