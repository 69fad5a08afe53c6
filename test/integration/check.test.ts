/**
 * `lifeboat check`, specified through the real CLI against real servers: a good installation
 * passes every check; each problem of a new installation is found and says what to change
 * (an unreachable repository, a missing key file, a task queue no worker polls, an invalid config,
 * a PostgreSQL whose archive_command is not Lifeboat's); with Lifeboat's archive_command, a forced
 * segment switch reaches the archive.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/dev/ports.js';
import { startTemporalDevServer } from '../../src/dev/temporal-server.js';
import { walRecordKey } from '../../src/postgres/wal-archive.js';
import type { CheckResult } from '../../src/check/result.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { archivedSource, type FsArchivedSource } from '../helpers/pitr-workload.js';

interface CheckReport {
  ok: boolean;
  results: CheckResult[];
}

describe('lifeboat check', () => {
  let lifeboat: Lifeboat;
  let keyFile: string;
  // Schedule ids are per namespace: a target name of its own keeps this file's schedules apart.
  const orders = `orders-${randomBytes(3).toString('hex')}`;

  function sqliteConfig(extra: Record<string, unknown> = {}, target: Record<string, unknown> = {}) {
    return lifeboat.baseConfig(
      { [orders]: { type: 'sqlite', path: join(lifeboat.dir, 'orders.sqlite'), repositories: ['local', 's3'], ...target } },
      { encryption: { keyFile }, ...extra },
    );
  }

  async function check(args: string[] = [], env: Record<string, string> = {}): Promise<{ exitCode: number | undefined; report: CheckReport; stderr: string }> {
    const result = await lifeboat.cli(['check', ...args, '--json'], { env });
    return { exitCode: result.exitCode, report: JSON.parse(String(result.stdout)) as CheckReport, stderr: String(result.stderr) };
  }

  const find = (report: CheckReport, area: string, subject?: string) => {
    const found = report.results.find((result) => result.area === area && (subject === undefined || result.subject === subject));
    assert.ok(found, `a result for ${area} ${subject ?? ''}: ${JSON.stringify(report.results)}`);
    return found;
  };
  const problems = (report: CheckReport) => report.results.filter((result) => result.status === 'failed').map((result) => `${result.area} ${result.subject}`);

  before(async () => {
    lifeboat = await createLifeboat('check');
    createDatabase(join(lifeboat.dir, 'orders.sqlite'), 1);
    keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat.writeConfig(sqliteConfig()).catch(() => undefined);
    await lifeboat.cli(['schedules', 'apply']).catch(() => undefined);
    await lifeboat.close();
  });

  it('a good installation passes every check, and says what it checked', async () => {
    await lifeboat.writeConfig(sqliteConfig({}, { schedules: { nightly: { runbook: 'backup', cron: '0 2 * * *' } } }));
    assert.equal((await lifeboat.cli(['schedules', 'apply'])).exitCode, 0);
    const { exitCode, report, stderr } = await check();
    assert.deepEqual(problems(report), [], stderr);
    assert.equal(exitCode, 0, stderr);
    assert.equal(report.ok, true);
    assert.equal(report.results.filter((result) => result.status === 'warning').length, 0, stderr);
    assert.match(find(report, 'config').detail, new RegExp(`valid: 1 target \\(${orders}\\), 2 repositories, 1 schedule`));
    assert.match(find(report, 'encryption').detail, /key [0-9a-f]+ readable/);
    assert.match(find(report, 'repository', 'local').detail, /64 KiB put, read back \(sha256 match\), listed and deleted/);
    assert.match(find(report, 'repository', 's3').detail, /^s3:\/\//);
    assert.match(find(report, 'tools', 'zstd').detail, /zstd \d+\.\d+/);
    assert.match(find(report, 'temporal', 'search attributes').detail, /LifeboatRequestedBy/);
    assert.match(find(report, 'temporal', `task queue ${lifeboat.settings.taskQueue}`).detail, /workers poll task queue .*workflow: .*activity: /);
    assert.match(find(report, 'schedules').detail, /1 schedule match the config/);
    assert.match(stderr, /all checks passed/);
    // The round trip leaves nothing behind.
    assert.deepEqual(await (await import('../../src/repository/open.js')).openBackend({ type: 'fs', path: join(lifeboat.dir, 'repository') }).list('.lifeboat-check/'), []);
  });

  it('an unreachable repository and a missing key file are found, each saying what to change', async () => {
    const closedPort = await freePort();
    const config = sqliteConfig({ encryption: { keyFile: join(lifeboat.dir, 'no-such.key') } });
    const repositories = config.repositories as Record<string, Record<string, unknown>>;
    repositories.s3 = { ...repositories.s3, endpoint: `http://127.0.0.1:${closedPort}` };
    await lifeboat.writeConfig(config);
    const { exitCode, report, stderr } = await check();
    assert.equal(exitCode, 1, stderr);
    assert.deepEqual(problems(report).sort(), ['encryption ' + join(lifeboat.dir, 'no-such.key'), 'repository s3']);
    const s3 = find(report, 'repository', 's3');
    assert.match(s3.detail, /ECONNREFUSED/);
    assert.match(s3.fix ?? '', new RegExp(`Check repositories\\.s3: that http://127\\.0\\.0\\.1:${closedPort} answers from this host, that bucket "lifeboat-test" exists`));
    const key = find(report, 'encryption');
    assert.match(key.detail, /no-such\.key does not exist/);
    assert.match(key.fix ?? '', /head -c 32 \/dev\/urandom/);
    assert.equal(find(report, 'repository', 'local').status, 'ok', 'the other repository is still checked');
    assert.match(stderr, /FAILED  repository s3: .*\n\s+fix: Check repositories\.s3/);
  });

  it('a task queue no worker polls is found, naming the settings to check', async () => {
    await lifeboat.writeConfig(sqliteConfig());
    const idle = `nobody-polls-${randomBytes(3).toString('hex')}`;
    const { exitCode, report, stderr } = await check([], { LIFEBOAT_TASK_QUEUE: idle });
    assert.equal(exitCode, 1, stderr);
    assert.deepEqual(problems(report), [`temporal task queue ${idle}`]);
    const pollers = find(report, 'temporal', `task queue ${idle}`);
    assert.match(pollers.detail, new RegExp(`no worker polls task queue "${idle}" for workflow and activity tasks`));
    assert.match(pollers.fix ?? '', /Start `lifeboat worker` with the same TEMPORAL_ADDRESS .* LIFEBOAT_TASK_QUEUE/);
  });

  it('an invalid config stops the check there, exit 2, naming the field', async () => {
    await lifeboat.writeConfig(sqliteConfig({}, { schedules: { nightly: { runbook: 'backup', cron: '0 2 * *' } } }));
    const { exitCode, report } = await check();
    assert.equal(exitCode, 2);
    assert.equal(report.results.length, 1);
    assert.match(report.results[0]!.detail, new RegExp(`targets\\.${orders}\\.schedules\\.nightly\\.cron: a cron string has 5 fields`));
    await lifeboat.writeConfig(sqliteConfig());
    const unknown = await check(['no-such-target']);
    assert.equal(unknown.exitCode, 2);
    assert.match(unknown.report.results[0]!.detail, /no target named "no-such-target"/);
    assert.equal(unknown.report.results[0]!.fix, `Known targets: ${orders}`);
  });

  it("a namespace without Lifeboat's search attributes is found by check, and apply is refused, both with the commands that register them", async () => {
    // A Temporal server of its own, as a production cluster is before anyone registered them.
    const bare = await startTemporalDevServer({ dbFile: join(lifeboat.dir, 'bare-temporal', 'temporal.db'), uiPort: false, searchAttributes: {} });
    try {
      await lifeboat.writeConfig(sqliteConfig({}, { schedules: { nightly: { runbook: 'backup', cron: '0 2 * * *' } } }));
      const { exitCode, report, stderr } = await check([], { TEMPORAL_ADDRESS: bare.address });
      assert.equal(exitCode, 1, stderr);
      const attributes = find(report, 'temporal', 'search attributes');
      assert.equal(attributes.status, 'failed');
      assert.match(attributes.detail, /search attributes not registered in namespace "default": LifeboatTarget, LifeboatKind, LifeboatRequestedBy \(starting a run fails without them\)/);
      assert.match(attributes.fix ?? '', new RegExp(`temporal operator search-attribute create --address ${bare.address} --namespace default --name LifeboatRequestedBy --type Keyword`));

      const applied = await lifeboat.cli(['schedules', 'apply'], { env: { TEMPORAL_ADDRESS: bare.address } });
      assert.equal(applied.exitCode, 2, applied.all);
      assert.match(String(applied.stderr), /ScheduleRejected: the Temporal server refused to create schedule lifeboat\/orders-\w+\/nightly \(0 changes before it were made\): .*search attribute/);
      assert.match(String(applied.stderr), /temporal operator search-attribute create --name LifeboatTarget --type Keyword/);
    } finally {
      await bare.stop();
    }
  });

  describe('a PostgreSQL target', () => {
    const main = 'main';
    let source: FsArchivedSource;

    before(async () => {
      source = await archivedSource(lifeboat, main);
      await lifeboat.writeConfig({
        ...sqliteConfig(),
        repositories: { local: { type: 'fs', path: source.repositoryPath } },
        targets: { [main]: { type: 'postgres', repositories: ['local'], connection: source.connection, method: 'base' } },
      });
    });

    after(async () => {
      await source?.db.close();
    });

    it("with Lifeboat's archive_command: the connection, the PostgreSQL programs, and a forced segment switch that reaches the archive", async () => {
      const { exitCode, report, stderr } = await check([main]);
      assert.deepEqual(problems(report), [], stderr);
      assert.equal(exitCode, 0, stderr);
      assert.match(find(report, 'postgres', main).detail, /^PostgreSQL 15\.\d+ .*at postgres@/);
      assert.match(find(report, 'tools', `${main}: PostgreSQL programs`).detail, /pg_dump 15\.\d+, pg_restore 15\.\d+, pg_basebackup 15\.\d+, postgres 15\.\d+, pg_ctl 15\.\d+, initdb 15\.\d+, pg_verifybackup 15\.\d+/);
      const archive = find(report, 'postgres', `${main}: WAL archive`);
      const segment = /segment ([0-9A-F]{24}), switched out now, reached local/.exec(archive.detail)?.[1];
      assert.ok(segment, archive.detail);
      assert.ok(await source.repository.backend.head(walRecordKey(main, segment)), 'the segment is in the archive');
    });

    it('an archive_command that is not Lifeboat\'s is found, with the line to set', async () => {
      await source.db.configure({ archive_command: '/bin/true %p' });
      const { exitCode, report, stderr } = await check([main]);
      assert.equal(exitCode, 1, stderr);
      assert.deepEqual(problems(report), [`postgres ${main}: WAL archive`]);
      const archive = find(report, 'postgres', `${main}: WAL archive`);
      assert.match(archive.detail, /archive_command is '\/bin\/true %p', not Lifeboat's wal-push for target "main"/);
      assert.match(archive.fix ?? '', new RegExp(`Set archive_command = '.*bin/lifeboat\\.js --config ${lifeboat.configPath.replace(/[.]/g, '\\.')} wal-push %p --target main'`));
    });
  });
});
