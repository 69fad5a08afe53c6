/**
 * `npm run bench:monitoring`: what monitoring costs, against the acceptance targets of issues 15 and 16:
 *
 *   /metrics of `lifeboat serve` with T targets x R repositories     scrape p95 <= 200 ms
 *     (also while a refresh of every target runs beside the scrapes: a scrape never waits for one)
 *   requests of one refresh to the repositories                       grow with targets, not with backups
 *   `lifeboat status` over a repository holding N backups of a target  list and get requests grow with the
 *                                                                       backups, not with the objects
 *
 * Repositories are fs repositories holding small but complete fixture backups (test/helpers/
 * backup-fixtures.ts), wrapped to count what is asked of them; "S3 requests" is what S3 would
 * have been asked for the same calls (a LIST request per 1,000 keys). A headless Temporal dev
 * server answers the runs, schedules and pollers.
 *
 * Usage: npm run bench:monitoring -- [--targets 100] [--repositories 3] [--backups 3] [--more-backups 30]
 *                                    [--status-backups 1000] [--objects-per-backup 3] [--scrapes 300] [--keep]
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config/load.js';
import type { RepositoryConfig } from '../src/config/schema.js';
import { connectClient } from '../src/client.js';
import { projectRoot } from '../src/dev/tools.js';
import { startTemporalDevServer } from '../src/dev/temporal-server.js';
import { createLogger } from '../src/logger.js';
import { openBackend } from '../src/repository/open.js';
import { Repository } from '../src/repository/repository.js';
import { startServe } from '../src/serve/server.js';
import { readState } from '../src/state/read.js';
import { writeFixtureBackups } from '../test/helpers/backup-fixtures.js';
import { CountingBackend, sumCounts, type RequestCounts } from '../test/helpers/counting-backend.js';
import { percentile, runSuite, verdict } from './percentiles.js';

const say = (line: string): void => void process.stderr.write(`bench:monitoring: ${line}\n`);

function options() {
  const { values } = parseArgs({
    options: {
      targets: { type: 'string', default: '100' },
      repositories: { type: 'string', default: '3' },
      backups: { type: 'string', default: '3' },
      'more-backups': { type: 'string', default: '30' },
      'status-backups': { type: 'string', default: '1000' },
      'objects-per-backup': { type: 'string', default: '3' },
      scrapes: { type: 'string', default: '300' },
      keep: { type: 'boolean', default: false },
    },
  });
  const int = (name: keyof typeof values): number => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1, got ${String(values[name])}`);
    return value;
  };
  return {
    targets: int('targets'),
    repositories: int('repositories'),
    backups: int('backups'),
    moreBackups: int('more-backups'),
    statusBackups: int('status-backups'),
    objectsPerBackup: int('objects-per-backup'),
    scrapes: int('scrapes'),
    keep: values.keep ?? false,
  };
}

function describeCounts(counts: RequestCounts): string {
  return `${counts.s3Requests} S3 requests (get ${counts.get}, head ${counts.head}, list ${counts.list} returning ${counts.listedKeys} keys)`;
}

async function main(): Promise<number> {
  const o = options();
  const workDir = join(projectRoot, '.lifeboat', 'bench', 'monitoring');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const temporal = await startTemporalDevServer({ dbFile: join(workDir, 'temporal.db'), uiPort: false });
  const failures: string[] = [];
  try {
    const repositoryNames = Array.from({ length: o.repositories }, (_, i) => `repo${i + 1}`);
    const targetNames = Array.from({ length: o.targets }, (_, i) => `target-${String(i + 1).padStart(3, '0')}`);
    const repositoryConfigs = Object.fromEntries(repositoryNames.map((name) => [name, { type: 'fs', path: join(workDir, name) }]));
    const config = parseConfig(
      {
        repositories: repositoryConfigs,
        targets: Object.fromEntries(targetNames.map((name) => [name, { type: 'sqlite', path: `/srv/${name}.sqlite`, repositories: repositoryNames, objectives: { rpoSeconds: 86400, rtoSeconds: 600 } }])),
        temporal: { address: temporal.address },
      },
      'the benchmark config',
    );
    const counting = new Map<string, CountingBackend>();
    const openCounted = (name: string, repositoryConfig: RepositoryConfig): Repository => {
      let backend = counting.get(name);
      if (!backend) counting.set(name, (backend = new CountingBackend(openBackend(repositoryConfig))));
      return new Repository(name, backend);
    };
    const takeCounts = (): RequestCounts => sumCounts([...counting.values()].map((backend) => backend.take()));

    say(`writing ${o.targets} targets x ${o.repositories} repositories x ${o.backups} backups (${o.objectsPerBackup} objects each) and a drill report each`);
    const seed = async (count: number): Promise<void> => {
      for (const repositoryName of repositoryNames) {
        const repository = openCounted(repositoryName, config.repositories[repositoryName]!);
        for (const target of targetNames) await writeFixtureBackups(repository, target, count, { objectsPerBackup: o.objectsPerBackup });
      }
    };
    await seed(o.backups);
    for (const repositoryName of repositoryNames) {
      const repository = openCounted(repositoryName, config.repositories[repositoryName]!);
      for (const target of targetNames) {
        await repository.writeReport(target, `drill-${target}-bench`, { runbook: 'drill', target, workflowId: `drill-${target}-bench`, startedAt: new Date().toISOString(), passed: true, backupId: null, rto: { seconds: 30, targetSeconds: 600, met: true }, rpo: null, failure: null });
      }
    }
    takeCounts();

    const settings = { address: temporal.address, namespace: 'default', taskQueue: 'lifeboat-bench-monitoring' };
    const logger = createLogger('bench-serve', 'warn');
    // A long interval: the benchmark starts every refresh itself.
    const serve = await startServe({ config, settings, listen: '127.0.0.1:0', refreshSeconds: 86400, openRepository: openCounted, logger });
    try {
      while (serve.refresher.latest === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      const firstRefresh = takeCounts();
      await serve.refresher.refresh();
      const steady = takeCounts();
      const steadySeconds = serve.refresher.lastDurationSeconds ?? NaN;
      say(`first refresh (remembers nothing yet): ${describeCounts(firstRefresh)}`);
      say(`refresh with ${o.backups} backups per target and repository: ${describeCounts(steady)} in ${steadySeconds.toFixed(2)} s`);

      say(`adding ${o.moreBackups} more backups per target and repository`);
      await seed(o.moreBackups);
      takeCounts();
      await serve.refresher.refresh();
      const grown = takeCounts();
      say(`refresh with ${o.backups + o.moreBackups} backups per target and repository: ${describeCounts(grown)} in ${(serve.refresher.lastDurationSeconds ?? NaN).toFixed(2)} s`);
      const perTarget = steady.s3Requests / (o.targets * o.repositories);
      if (grown.s3Requests !== steady.s3Requests) failures.push(`a refresh asked ${grown.s3Requests} requests with more backups against ${steady.s3Requests} before: it grows with backups`);

      const scrapeOnce = async (): Promise<number> => {
        const started = performance.now();
        const response = await fetch(`${serve.url}/metrics`);
        const body = await response.text();
        if (response.status !== 200 || !body.includes('lifeboat_target_info')) throw new Error(`scrape answered ${response.status}`);
        return performance.now() - started;
      };
      const scrapes = async (label: string): Promise<number> => {
        const times: number[] = [];
        for (let i = 0; i < o.scrapes; i++) times.push(await scrapeOnce());
        times.sort((a, b) => a - b);
        const p95 = percentile(times, 95);
        say(`${label}: ${o.scrapes} scrapes, p50 ${percentile(times, 50).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${times.at(-1)!.toFixed(1)} ms`);
        return p95;
      };
      const body = await (await fetch(`${serve.url}/metrics`)).text();
      say(`/metrics: ${body.split('\n').filter((line) => line.startsWith('lifeboat_')).length} lifeboat samples, ${(body.length / 1024).toFixed(0)} KiB`);
      const idleP95 = await scrapes('idle');
      let refreshing = true;
      const refreshes = (async () => {
        while (refreshing) await serve.refresher.refresh();
      })();
      const busyP95 = await scrapes('while refreshes run back to back');
      refreshing = false;
      await refreshes;
      for (const [label, p95] of [['idle', idleP95], ['during refreshes', busyP95]] as const) if (p95 > 200) failures.push(`scrape p95 ${label} is ${p95.toFixed(1)} ms (> 200 ms)`);

      // lifeboat status over one target holding many backups: the newest (by its marker), its reports; no listing of the backups.
      say(`status over a repository holding ${o.statusBackups} backups of one target (${o.objectsPerBackup} objects each)`);
      const statusRepository = openCounted('status', { type: 'fs', path: join(workDir, 'status') });
      const statusConfig = parseConfig(
        { repositories: { status: { type: 'fs', path: join(workDir, 'status') } }, targets: { big: { type: 'sqlite', path: '/srv/big.sqlite', repositories: ['status'] } }, temporal: { address: temporal.address } },
        'the status config',
      );
      const statusOf = async (backups: number): Promise<RequestCounts> => {
        takeCounts();
        const client = await connectClient(settings);
        try {
          const report = await readState({ config: statusConfig, env: process.env, temporal: { client, taskQueue: settings.taskQueue }, openRepository: openCounted });
          if (report.targets[0]?.repositories[0]?.newestBackup === null) throw new Error('status found no backup');
        } finally {
          await client.connection.close();
        }
        const counts = takeCounts();
        say(`  status with ${backups} backups: ${describeCounts(counts)}`);
        return counts;
      };
      await writeFixtureBackups(statusRepository, 'big', 10, { objectsPerBackup: o.objectsPerBackup, endsAgoSeconds: 3600 * 24 * 365 });
      const small = await statusOf(10);
      await writeFixtureBackups(statusRepository, 'big', o.statusBackups - 10, { objectsPerBackup: o.objectsPerBackup, concurrency: 16 });
      const large = await statusOf(o.statusBackups);
      if (large.s3Requests > small.s3Requests) failures.push(`status asked ${large.s3Requests} requests over ${o.statusBackups} backups against ${small.s3Requests} over 10`);
      // Without the marker (a repository written before markers existed) the backups are listed: that is what the marker saves.
      for (const id of await statusRepository.latestBackupIds('big')) await statusRepository.backend.delete(`${statusRepository.latestBackupPrefix('big')}${id}`);
      takeCounts();
      const listed = await statusOf(o.statusBackups);
      say(`  (the same without the latest-backup marker, by listing: ${describeCounts(listed)})`);

      say('');
      say(`| measure | value | target |`);
      say(`|---|---|---|`);
      say(`| /metrics scrape p95, ${o.targets} targets x ${o.repositories} repositories, idle | ${idleP95.toFixed(1)} ms | <= 200 ms |`);
      say(`| /metrics scrape p95 while refreshes run | ${busyP95.toFixed(1)} ms | <= 200 ms |`);
      say(`| S3 requests of one refresh, ${o.backups} backups each | ${steady.s3Requests} (${perTarget.toFixed(1)} per target and repository) | |`);
      say(`| S3 requests of one refresh, ${o.backups + o.moreBackups} backups each | ${grown.s3Requests} | = the line above |`);
      say(`| one refresh, seconds | ${steadySeconds.toFixed(2)} | |`);
      say(`| status, 10 backups / ${o.statusBackups} backups | ${small.s3Requests} / ${large.s3Requests} requests | not growing with objects |`);
      say(`| status by listing (no marker), ${o.statusBackups} backups | ${listed.s3Requests} requests (${listed.listedKeys} keys listed) | reference |`);
    } finally {
      await serve.close();
    }
  } finally {
    await temporal.stop();
    if (!o.keep) await rm(workDir, { recursive: true, force: true });
  }
  return verdict(say, failures);
}

runSuite(say, main);
