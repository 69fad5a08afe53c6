/**
 * `lifeboat serve` and the shipped alert rules against a real stack: a worker (its own process,
 * exposing the SDK's metrics), real backups and drills in fs and S3 repositories, the real
 * `lifeboat serve` command, and a real Prometheus server scraping both and evaluating
 * deploy/prometheus/lifeboat-rules.yml as shipped.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ResultPromise } from 'execa';
import { freePort } from '../../src/dev/ports.js';
import { projectRoot } from '../../src/dev/tools.js';
import { createDatabase, createLifeboat, type Lifeboat, type WorkerProcess } from '../helpers/lifeboat.js';
import { startPrometheus, type TestPrometheus } from '../helpers/prometheus.js';

const suffix = randomBytes(3).toString('hex');
const good = `good-${suffix}`;
const bad = `bad-${suffix}`;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (enough of the format for these tests), and its TYPE lines. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) continue;
    const labels = Object.fromEntries([...(sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: sample[1]!, labels, value: Number(sample[3]) });
  }
  return { samples, types };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s${last ? ` (${String(last)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('lifeboat serve, its metrics and the shipped alert rules in a real Prometheus', () => {
  let lifeboat: Lifeboat;
  let worker: WorkerProcess;
  let serve: ResultPromise;
  let prometheus: TestPrometheus;
  let serveAddress: string;
  let workerMetricsAddress: string;
  let goodBackupId: string;

  const scrape = async () => {
    const response = await fetch(`http://${serveAddress}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await response.text());
  };
  const sample = (samples: Sample[], name: string, labels: Record<string, string>) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value));

  before(async () => {
    lifeboat = await createLifeboat('monitoring');
    serveAddress = `127.0.0.1:${await freePort()}`;
    workerMetricsAddress = `127.0.0.1:${await freePort()}`;
    createDatabase(join(lifeboat.dir, 'good.sqlite'), 1);
    createDatabase(join(lifeboat.dir, 'bad.sqlite'), 1);
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          [good]: {
            type: 'sqlite',
            path: join(lifeboat.dir, 'good.sqlite'),
            repositories: ['local', 's3'],
            objectives: { rpoSeconds: 3600, rtoSeconds: 600, drillEverySeconds: 86400 },
            drill: { smokeChecks: [{ name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 }] },
          },
          // Objectives no backup or drill can meet: its drill fails, and its backup is stale at once.
          [bad]: { type: 'sqlite', path: join(lifeboat.dir, 'bad.sqlite'), repositories: ['local'], objectives: { rpoSeconds: 1, rtoSeconds: 0.001 } },
        },
        { serve: { listen: serveAddress, refreshSeconds: 5 }, worker: { metricsListen: workerMetricsAddress } },
      ),
    );
    worker = lifeboat.spawnWorker();
    goodBackupId = (await lifeboat.run('backup', { target: good })).backupId;
    assert.equal((await lifeboat.run('drill', { target: good })).passed, true);
    await lifeboat.run('backup', { target: bad });
    assert.equal((await lifeboat.run('drill', { target: bad })).passed, false);
    await lifeboat.client.schedule.create({
      scheduleId: `lifeboat/${good}/nightly-backup`,
      spec: { intervals: [{ every: '1 day' }] },
      action: { type: 'startWorkflow', workflowType: 'backup', args: [{ target: good }], taskQueue: lifeboat.settings.taskQueue },
      state: { paused: true, note: 'maintenance' },
    });

    serve = lifeboat.cli(['serve']);
    await until('the first refresh of lifeboat serve', async () => ((await scrape()).samples.some((s) => s.name === 'lifeboat_target_info' && s.labels.target === bad) ? true : undefined));
    prometheus = await startPrometheus({
      jobs: [
        { job: 'lifeboat', address: serveAddress },
        { job: 'lifeboat-worker', address: workerMetricsAddress },
      ],
      ruleFiles: [join(projectRoot, 'deploy', 'prometheus', 'lifeboat-rules.yml')],
    });
  });

  after(async () => {
    await prometheus?.close();
    serve?.kill('SIGTERM');
    await serve;
    await lifeboat?.client.schedule.getHandle(`lifeboat/${good}/nightly-backup`).delete().catch(() => undefined);
    await lifeboat?.close();
  });

  test('/metrics: per target and repository, in base units, with objectives; no workflow id in any label', async () => {
    const { samples, types } = await scrape();
    const local = { target: good, repository: 'local' };
    const age = sample(samples, 'lifeboat_backup_newest_age_seconds', local)?.value;
    assert.ok(age !== undefined && age >= 0 && age < 3600, `age ${age}`);
    for (const repository of ['local', 's3']) {
      assert.ok((sample(samples, 'lifeboat_backup_last_size_bytes', { target: good, repository })?.value ?? 0) > 0);
      assert.ok((sample(samples, 'lifeboat_backup_last_duration_seconds', { target: good, repository })?.value ?? 0) > 0);
      assert.equal(sample(samples, 'lifeboat_repository_up', { target: good, repository })?.value, 1);
      for (const runbook of ['backup', 'drill']) {
        const at = sample(samples, 'lifeboat_last_success_timestamp_seconds', { target: good, repository, runbook })?.value ?? 0;
        assert.ok(Math.abs(Date.now() / 1000 - at) < 600, `${repository} ${runbook} succeeded just now (${at})`);
      }
    }
    assert.equal(sample(samples, 'lifeboat_rpo_objective_seconds', { target: good })?.value, 3600);
    assert.equal(sample(samples, 'lifeboat_rto_objective_seconds', { target: good })?.value, 600);
    assert.equal(sample(samples, 'lifeboat_drill_last_passed', { target: good })?.value, 1);
    assert.equal(sample(samples, 'lifeboat_drill_last_passed', { target: bad })?.value, 0);
    assert.ok((sample(samples, 'lifeboat_drill_last_rto_seconds', { target: good })?.value ?? 0) > 0);
    assert.equal(sample(samples, 'lifeboat_drill_last_rto_objective_seconds', { target: bad })?.value, 0.001);
    assert.equal(sample(samples, 'lifeboat_schedule_paused', { target: good, schedule: 'nightly-backup' })?.value, 1);
    assert.equal(sample(samples, 'lifeboat_runbook_last_run_failed', { target: good, runbook: 'backup' })?.value, 0);
    assert.ok((sample(samples, 'lifeboat_worker_pollers', { task_queue: lifeboat.settings.taskQueue, type: 'activity' })?.value ?? 0) >= 1);
    assert.equal(sample(samples, 'lifeboat_temporal_up', {})?.value, 1);
    assert.equal(sample(samples, 'lifeboat_target_problems', { target: good })?.value, 0);

    const lifeboatSamples = samples.filter((s) => s.name.startsWith('lifeboat_'));
    for (const s of lifeboatSamples) {
      for (const value of Object.values(s.labels)) assert.doesNotMatch(value, /\d{8}T\d{6}Z/, `${s.name} has a run or backup id as a label value`);
    }
    assert.ok(!lifeboatSamples.some((s) => Object.values(s.labels).includes(goodBackupId)));
    for (const [name, type] of types) {
      if (!name.startsWith('lifeboat_')) continue;
      if (type === 'counter') assert.match(name, /_total$/, `counter ${name}`);
      else assert.doesNotMatch(name, /_total$/, `${type} ${name}`);
      assert.doesNotMatch(name, /_(ms|milliseconds|minutes|hours|kb|mb|kib|mib)$/, `${name} is in base units`);
    }
  });

  test('runs that finish while serve runs are counted by target, runbook and result', async () => {
    const labels = { target: good, runbook: 'backup', result: 'completed' };
    const before = sample((await scrape()).samples, 'lifeboat_runs_total', labels)?.value;
    assert.equal(before, 0, 'counted from zero when serve started');
    await lifeboat.run('backup', { target: good });
    await until('the finished backup counted', async () => ((sample((await scrape()).samples, 'lifeboat_runs_total', labels)?.value ?? 0) >= 1 ? true : undefined));
  });

  test('/status answers the same state as JSON', async () => {
    const response = await fetch(`http://${serveAddress}/status`);
    assert.equal(response.status, 200);
    const state = (await response.json()) as { healthy: boolean; targets: Array<{ target: string; problems: Array<{ code: string }> }> };
    assert.equal(state.healthy, false);
    assert.deepEqual(state.targets.find((t) => t.target === good)?.problems, []);
    assert.deepEqual(state.targets.find((t) => t.target === bad)?.problems.map((p) => p.code).sort(), ['backup-stale', 'drill-failed', 'rto-missed']);
    assert.equal((await fetch(`http://${serveAddress}/nothing`)).status, 404);
  });

  test('a second serve, or a second worker, on an address in use fails with AddressInUse (exit 2)', async () => {
    const second = await lifeboat.cli(['serve', '--listen', serveAddress]);
    assert.equal(second.exitCode, 2, second.all);
    assert.match(second.stderr, /AddressInUse: lifeboat serve cannot listen on 127\.0\.0\.1:\d+: another process is listening there/);
    const secondWorker = await lifeboat.spawnWorker().exited;
    assert.equal(secondWorker.exitCode, 2, secondWorker.output);
    assert.match(secondWorker.output, /AddressInUse: the worker's metrics cannot listen on 127\.0\.0\.1:\d+/);
  });

  test('Prometheus scrapes serve and the worker, and evaluates the shipped rules against what it scraped', async () => {
    const targets = await until('both targets in Prometheus', async () => {
      const result = await prometheus.query('lifeboat_target_info');
      return result.length === 2 ? result.map((r) => r.metric.target).sort() : undefined;
    });
    assert.deepEqual(targets, [bad, good].sort());
    const sdkSeries = await until('the worker\'s SDK metrics in Prometheus', async () => {
      const result = await prometheus.query('count by (__name__) ({job="lifeboat-worker", __name__=~"temporal_.+_seconds_count"})');
      return result.length > 0 ? result.map((r) => r.metric.__name__) : undefined;
    });
    assert.ok(sdkSeries.length > 0, 'the SDK reports durations in seconds');

    const alerts = await until('the alerts of the bad target', async () => {
      const active = (await prometheus.alerts()).filter((a) => a.labels.target === bad);
      const names = new Set(active.map((a) => a.labels.alertname));
      return ['LifeboatBackupStale', 'LifeboatDrillFailing', 'LifeboatRtoAboveObjective'].every((name) => names.has(name)) ? active : undefined;
    });
    const state = (name: string) => alerts.find((a) => a.labels.alertname === name)?.state;
    assert.equal(state('LifeboatDrillFailing'), 'firing', 'no for: it fires at once');
    assert.equal(state('LifeboatRtoAboveObjective'), 'firing');
    assert.equal(state('LifeboatBackupStale'), 'pending', 'for: 5m');
    const goodAlerts = (await prometheus.alerts()).filter((a) => a.labels.target === good || a.labels.alertname === 'LifeboatMetricsAbsent' || a.labels.alertname === 'LifeboatNoWorkerPolling');
    assert.deepEqual(goodAlerts.map((a) => a.labels.alertname), [], 'nothing about the target within its objectives, nor about serve or the worker');
    worker.kill('SIGTERM');
  });
});
