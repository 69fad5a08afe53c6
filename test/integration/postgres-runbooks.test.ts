/**
 * PostgreSQL base backups, point-in-time recovery and drills as runbooks, against a real
 * PostgreSQL 15 whose WAL the real `lifeboat wal-push` archives, the real Temporal dev server and
 * an in-process worker:
 *
 * - `backup` with method "base" stores a base backup whose manifest (kind postgres-base) is written
 *   last and whose parts are read back;
 * - `pitr` recovers into a NEW cluster holding exactly the rows committed at or before the target
 *   (from the newest base backup that finished before it), and says where it runs;
 * - bad input (a target before the oldest base backup, beyond the archived WAL, an unknown backup)
 *   fails with a typed error, removes the new data directory, and leaves the live cluster alone;
 * - `drill` recovers the newest state into a scratch cluster, runs the smoke checks, measures RTO
 *   and RPO, stores its report and removes the scratch cluster; on a dump target it restores the
 *   newest dump into a scratch database and compares it with the dump.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logger.js';
import { recoverToTarget, removeRecoveredCluster } from '../../src/postgres/recovery.js';
import { startServe } from '../../src/serve/server.js';
import { pgBinary } from '../../src/postgres/tools.js';
import { isoFromMicros, parseTimestamp } from '../../src/postgres/recovery-target.js';
import { manifestSchema, type PostgresBaseManifest } from '../../src/repository/manifest.js';
import type { BackupResult } from '../../workflows/backup.js';
import type { DrillReport } from '../../workflows/drill.js';
import type { PitrInput, PitrResult } from '../../workflows/pitr.js';
import type { RestoreResult } from '../../workflows/restore.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { archivedSource, commitRows, recoveredIds, switchAndArchive, timeBetween, type Commit, type FsArchivedSource } from '../helpers/pitr-workload.js';
import { startReceiver } from '../helpers/receiver.js';
import { buttonPressBody, slackHeaders } from '../helpers/slack.js';
import { testStack, type TestStack } from '../helpers/stack.js';

const target = 'ledger';

/** How the test cluster is started again after a cutover (what a systemd unit does in production). */
function startCommand(source: FsArchivedSource): string {
  const { dataDir, logFile, cluster } = source.db;
  const options = `-c port=${cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${cluster.socketDir}`;
  return `runuser -u postgres -- ${pgBinary('pg_ctl')} start -D '${dataDir}' -l '${logFile}' -w -t 60 -o '${options}'`;
}

/** Waits until the run's timeline shows the step running. */
async function waitForStep(lifeboat: Lifeboat, workflowId: string, name: string): Promise<void> {
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
    const steps = await lifeboat.client.workflow.getHandle(workflowId).query<Array<{ name: string; status: string }>>('timeline');
    if (steps.some((step) => step.name === name && step.status === 'running')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${workflowId} did not reach ${name}`);
}

describe('PostgreSQL base backup, PITR and drill runbooks', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let source: FsArchivedSource;
  let first: BackupResult;
  let second: BackupResult;
  let config: Record<string, unknown>;
  const log: Commit[] = [];

  before(async () => {
    stack = await testStack();
    lifeboat = await createLifeboat('pg-runbooks', { stack });
    source = await archivedSource(lifeboat, target);
    config = lifeboat.baseConfig({
      [target]: {
        type: 'postgres',
        repositories: ['local'],
        connection: source.connection,
        method: 'base',
        base: { partSizeMiB: 1 },
        recovery: {
          dir: source.recoveryDir,
          timeoutSeconds: 120,
          cutover: { dataDir: source.db.dataDir, startCommand: startCommand(source), approvalTimeoutSeconds: 60, healthTimeoutSeconds: 30 },
        },
        drill: {
          rtoTargetSeconds: 600,
          rpoTargetSeconds: 3600,
          smokeChecks: [
            { name: 'ledger is readable', sql: 'SELECT count(*) FROM ledger', minRows: 1 },
            { name: 'the first row is there', sql: "SELECT note FROM ledger WHERE id = 1", expect: 'row 1' },
          ],
        },
      },
      // The same database backed up with pg_dump, for the dump drill.
      'ledger-dump': { type: 'postgres', repositories: ['local'], connection: source.connection, dump: { jobs: 1 } },
    });
    (config.repositories as Record<string, unknown>).local = { type: 'fs', path: source.repositoryPath };
    await lifeboat.writeConfig(config);
    await lifeboat.startWorker();

    await source.db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
    first = await lifeboat.run('backup', { target });
    log.push(...(await commitRows(source.db, 1, 40)));
    second = await lifeboat.run('backup', { target });
    log.push(...(await commitRows(source.db, 41, 40)));
    await switchAndArchive(source, target);
  });

  after(async () => {
    await lifeboat?.close();
    await source?.db.close();
    await stack?.close();
  });

  async function pitr(input: Omit<PitrInput, 'target'>): Promise<PitrResult> {
    return lifeboat.run('pitr', { target, ...input });
  }

  async function pitrFailure(input: Record<string, unknown>): Promise<{ type: string | undefined; message: string; workflowId: string }> {
    const handle = await lifeboat.start('pitr', { target, ...input } as PitrInput);
    const error = await handle.result().then(
      () => assert.fail('the recovery should have failed'),
      (e: unknown) => e,
    );
    return { ...runbookFailure(error), workflowId: handle.workflowId };
  }

  const recoveredDirs = async (): Promise<string[]> => (existsSync(source.recoveryDir) ? readdir(source.recoveryDir) : []);

  test('backup with method "base": the parts are stored, the manifest (postgres-base) is written last, the stored parts are read back, the stop segment is archived', async () => {
    for (const result of [first, second]) {
      assert.equal(result.kind, 'postgres-base');
      assert.deepEqual(
        result.timeline.map((step) => [step.name, step.status]),
        [['resolve-target', 'completed'], ['take-base-backup', 'completed'], ['write-manifest', 'completed'], ['verify-stored', 'completed'], ['check-archive', 'completed']],
      );
      assert.match(result.timeline.at(-1)!.detail!, /^[0-9A-F]{24} \(stop point [0-9A-F]+\/[0-9A-F]+\) is archived in local/);
      const manifest = manifestSchema.parse(await source.repository.readManifest(target, result.backupId));
      assert.equal(manifest.kind, 'postgres-base');
      assert.ok(manifest.kind === 'postgres-base' && manifest.objects.length >= 2, 'several 1 MiB parts');
      assert.equal(manifest.kind === 'postgres-base' && manifest.base.stopLsn, result.base?.stopLsn);
      assert.deepEqual(manifest.timeline.map((s) => s.name), ['resolve-target', 'take-base-backup'], 'the manifest records the steps before it');
    }
    assert.ok(second.backupId > first.backupId);
  });

  test('pitr to a time: a new cluster with exactly the rows committed at or before it, from the newest base backup before it', async () => {
    // Between two commits made after the first backup but before the second.
    const k = 5 + Math.floor(Math.random() * 30);
    const time = timeBetween(log[k - 1]!, log[k]!);
    const result = await pitr({ recoveryTarget: { kind: 'time', time } });
    try {
      assert.equal(result.backupId, first.backupId, result.choice);
      assert.deepEqual(await recoveredIds(result.cluster), log.slice(0, k).map((c) => c.id));
      assert.equal(result.reached.lastTransactionTime, log[k - 1]!.time);
      assert.ok(result.walTimeline >= 2, 'promoted to a timeline of its own');
      assert.ok(result.cluster.dataDir.startsWith(`${source.recoveryDir}/${target}-pitr-`), result.cluster.dataDir);
      assert.ok(result.cluster.port > 0 && result.cluster.port !== source.db.cluster.port);
      // Prefetch (recovery.prefetchSegments, on by default): its spool ended with the recovery, while the recovered cluster runs on.
      assert.equal(existsSync(`${result.cluster.dataDir}.wal-prefetch`), false, 'the prefetch spool is removed');
      assert.deepEqual(result.checks.map((c) => c.passed), [true, true]);
      assert.deepEqual(
        result.timeline.map((step) => step.name),
        ['resolve-target', 'choose-base-backup', 'restore-base-backup', 'recover', 'smoke-checks', 'store-report'],
      );
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
  });

  test('pitr --latest through the CLI: every archived row, from the newest base backup', async () => {
    const cli = await lifeboat.cli(['pitr', target, '--latest', '--wait', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as PitrResult;
    try {
      assert.equal(result.backupId, second.backupId);
      assert.deepEqual(await recoveredIds(result.cluster), log.map((c) => c.id));
      assert.equal(result.reached.stop, null);
    } finally {
      await removeRecoveredCluster(result.cluster);
    }
  });

  test('bad input: a target before the oldest base backup, beyond the archived WAL, or an unknown backup fails typed; nothing is left behind', async () => {
    const early = isoFromMicros(parseTimestamp(log[0]!.time).micros - 3_600_000_000n);
    const tooEarly = await pitrFailure({ recoveryTarget: { kind: 'time', time: early } });
    assert.equal(tooEarly.type, 'RecoveryTargetBeforeBackup', tooEarly.message);
    assert.match(tooEarly.message, new RegExp(`earlier than the oldest base backup of target "${target}", ${first.backupId}`));

    const unknown = await pitrFailure({ backupId: '20200101T000000Z-000000' });
    assert.equal(unknown.type, 'BackupNotFound', unknown.message);
    assert.match(unknown.message, /base backup 20200101T000000Z-000000 of target "ledger" does not exist/);

    const invalid = await pitrFailure({ recoveryTarget: { kind: 'time', time: 'yesterday' } });
    assert.equal(invalid.type, 'InvalidInput', invalid.message);

    const late = isoFromMicros(parseTimestamp(log.at(-1)!.time).micros + 3_600_000_000n);
    const tooLate = await pitrFailure({ recoveryTarget: { kind: 'time', time: late } });
    assert.equal(tooLate.type, 'RecoveryTargetUnreachable', tooLate.message);
    const steps = await lifeboat.client.workflow.getHandle(tooLate.workflowId).query<Array<{ name: string; status: string }>>('timeline');
    // After the cleanup, the failed run is recorded in the audit log.
    assert.deepEqual(steps.map((s) => [s.name, s.status]).slice(-3), [['recover', 'failed'], ['remove-recovered', 'completed'], ['record-audit', 'completed']]);

    assert.deepEqual(await recoveredDirs(), [], 'every new data directory was removed');
    const [state] = await source.db.query<{ recovering: boolean; wal: string }>('SELECT pg_is_in_recovery() AS recovering, pg_walfile_name(pg_current_wal_lsn()) AS wal');
    assert.deepEqual([state?.recovering, state?.wal.slice(0, 8)], [false, '00000001'], 'the live cluster is untouched, on timeline 1');
    assert.deepEqual((await source.db.query<{ id: number }>('SELECT id FROM ledger ORDER BY id')).map((r) => r.id), log.map((c) => c.id));
  });

  test('drill (method base): PITR to the end of the archive into a scratch cluster, smoke checks, RTO/RPO, report stored, scratch removed', async () => {
    const report = (await lifeboat.run('drill', { target })) as DrillReport;
    assert.equal(report.passed, true, JSON.stringify(report.failure));
    assert.equal(report.method, 'base');
    assert.equal(report.backupId, second.backupId);
    assert.equal(report.recovery?.lastTransactionTime, log.at(-1)!.time, 'the drill reached the newest archived commit');
    assert.deepEqual(report.checks.map((c) => [c.name, c.passed]), [['ledger is readable', true], ['the first row is there', true]]);
    assert.equal(report.rto?.met, true);
    assert.equal(report.rpo?.met, true);
    assert.ok(report.rpo!.seconds < 3600);
    assert.ok(report.timeline.some((s) => s.name === 'remove-scratch' && s.status === 'completed'));
    assert.deepEqual(await recoveredDirs(), [], 'the scratch cluster is gone');
    assert.equal(report.reportKeys.length, 1);
    assert.ok(existsSync(join(source.repositoryPath, target, 'reports', `${report.workflowId}.json`)), 'the report is in the repository');
  });

  test('a cancelled drill still stops and removes its scratch cluster, and stores no report', async () => {
    const handle = await lifeboat.start('drill', { target });
    await waitForStep(lifeboat, handle.workflowId, 'recover');
    const scratch = join(source.recoveryDir, `${target}-drill-${handle.workflowId}`);
    for (const deadline = Date.now() + 60_000; !existsSync(join(scratch, 'postmaster.pid')) && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(existsSync(join(scratch, 'postmaster.pid')), 'the scratch cluster is recovering');
    await handle.cancel();
    await assert.rejects(handle.result(), (error: Error) => /cancel/i.test(`${error.message} ${String((error as { cause?: unknown }).cause)}`));
    const steps = await handle.query<Array<{ name: string; status: string }>>('timeline');
    assert.deepEqual(steps.at(-2), { ...steps.at(-2), name: 'remove-scratch', status: 'completed' });
    assert.deepEqual(steps.at(-1), { ...steps.at(-1), name: 'record-audit', status: 'completed' }, 'a cancelled drill is recorded too');
    assert.deepEqual(await recoveredDirs(), [], 'the scratch cluster is gone');
    assert.equal(existsSync(join(source.repositoryPath, target, 'reports', `${handle.workflowId}.json`)), false);
  });

  test('drill (method dump): the newest dump restored into a scratch database and compared with its fingerprints, then dropped', async () => {
    const backup = await lifeboat.run('backup', { target: 'ledger-dump' });
    assert.equal(backup.dump?.verified, false, 'dump.verify is off by default: the drill verifies');
    const report = (await lifeboat.run('drill', { target: 'ledger-dump' })) as DrillReport;
    assert.equal(report.passed, true, JSON.stringify(report.failure));
    assert.equal(report.method, 'dump');
    assert.equal(report.backupId, backup.backupId);
    assert.deepEqual(report.verification, { tables: 1, rows: log.length });
    assert.ok(report.timeline.some((s) => s.name === 'drop-scratch' && s.status === 'completed'));
    const databases = (await source.db.query<{ datname: string }>('SELECT datname FROM pg_database')).map((r) => r.datname);
    assert.deepEqual(databases.filter((name) => name.startsWith('lifeboat_')), [], 'the scratch database was dropped');
  });

  test('a target holding dumps and base backups: restore with method "dump" takes the newest dump, whatever was backed up after it', async () => {
    const dump = await lifeboat.run('backup', { target, method: 'dump' });
    await lifeboat.run('backup', { target, method: 'base' });
    const restored = await lifeboat.run('restore', { target, method: 'dump' });
    assert.equal(restored.backupId, dump.backupId);
    assert.equal(restored.backupKind, 'postgres-dump');
    await source.db.query(`DROP DATABASE ${JSON.stringify(restored.restoredTo)}`);
  });

  test('restore of a base backup through the CLI (the target\'s method): a new data directory, verified, that starts as of the backup; an occupied one is refused', async () => {
    const relative = `restored-${Date.now()}`;
    const cli = await lifeboat.cli(['restore', target, '--backup', second.backupId, '--into', relative, '--wait', '--json'], { cwd: source.recoveryDir });
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as RestoreResult;
    const dataDir = join(source.recoveryDir, relative);
    assert.deepEqual([result.backupId, result.backupKind, result.restoredTo, result.safetyCopy], [second.backupId, 'postgres-base', dataDir, null], 'the relative --into is where the operator typed it');
    assert.deepEqual(result.timeline.map((step) => [step.name, step.status]), [['resolve-target', 'completed'], ['locate-backup', 'completed'], ['restore-base-backup', 'completed']]);
    assert.match(await readFile(join(dataDir, 'backup_label'), 'utf8'), new RegExp(`^LABEL: lifeboat ${second.backupId}$`, 'm'));
    assert.equal(existsSync(`${dataDir}.lifeboat-partial`), false);

    const manifest = await source.repository.readManifest(target, second.backupId);
    assert.equal(manifest.kind, 'postgres-base');
    const recovered = await recoverToTarget({ dataDir, manifest: manifest as PostgresBaseManifest, recoveryTarget: { kind: 'immediate' }, restoreCommand: 'false' });
    try {
      assert.deepEqual(await recoveredIds(recovered.cluster), log.slice(0, 40).map((c) => c.id), 'the rows committed before the backup');
    } finally {
      await removeRecoveredCluster(recovered.cluster);
    }

    const occupied = join(source.recoveryDir, `occupied-${Date.now()}`);
    try {
      await mkdir(occupied);
      await writeFile(join(occupied, 'keep.txt'), 'precious');
      const refused = await lifeboat.cli(['restore', target, '--method', 'base', '--into', occupied, '--wait']);
      assert.equal(refused.exitCode, 2, refused.all);
      assert.match(refused.stderr, /InvalidInput.*not empty/s);
      assert.deepEqual(await readdir(occupied), ['keep.txt']);
      assert.equal(existsSync(`${occupied}.lifeboat-partial`), false);
    } finally {
      await Promise.all([dataDir, occupied].map((dir) => rm(dir, { recursive: true, force: true })));
    }
  });

  test('pitr --cutover: rejected, the recovered cluster is removed and the live one is not touched', async () => {
    const handle = await lifeboat.start('pitr', { target, recoveryTarget: { kind: 'time', time: timeBetween(log[9]!, log[10]!) }, cutover: true });
    await waitForStep(lifeboat, handle.workflowId, 'await-approval');
    const answer = await lifeboat.cli(['approve', handle.workflowId, '--reject', '--by', 'test']);
    assert.equal(answer.exitCode, 0, answer.all);
    const failure = await handle.result().then(() => assert.fail('a rejected cutover fails'), (e: unknown) => runbookFailure(e));
    assert.equal(failure.type, 'NotApproved', failure.message);
    assert.deepEqual(await recoveredDirs(), []);
    assert.deepEqual((await source.db.query<{ id: number }>('SELECT id FROM ledger ORDER BY id')).map((r) => r.id), log.map((c) => c.id), 'the live cluster is untouched');
  });

  test('pitr --cutover, nobody answers within approvalTimeoutSeconds: the run ends (NotApproved), the recovered cluster is removed, the live one is not touched', async () => {
    // The worker reads the config at every run: this run waits 2 s instead of 60.
    const impatient = structuredClone(config);
    (impatient.targets as Record<string, { recovery: { cutover: { approvalTimeoutSeconds: number } } }>)[target]!.recovery.cutover.approvalTimeoutSeconds = 2;
    await lifeboat.writeConfig(impatient);
    try {
      const handle = await lifeboat.start('pitr', { target, recoveryTarget: { kind: 'latest' }, cutover: true });
      const failure = await handle.result().then(() => assert.fail('an unanswered cutover fails'), (e: unknown) => runbookFailure(e));
      assert.equal(failure.type, 'NotApproved', failure.message);
      assert.match(failure.message, /needs an approval, and none came within 2 s/);
      const steps = await handle.query<Array<{ name: string; status: string }>>('timeline');
      assert.deepEqual(steps.map((s) => [s.name, s.status]).slice(-3), [['await-approval', 'failed'], ['remove-recovered', 'completed'], ['record-audit', 'completed']]);
    } finally {
      await lifeboat.writeConfig(config);
    }
    assert.deepEqual(await recoveredDirs(), []);
    assert.deepEqual((await source.db.query<{ id: number }>('SELECT id FROM ledger ORDER BY id')).map((r) => r.id), log.map((c) => c.id), 'the live cluster is untouched');
  });

  test('pitr --cutover, approved with the Approve button in Slack: the recovered cluster replaces the live one, which is kept as a safety copy; the approver\'s Slack identity is in the run, its report and its audit record', async () => {
    // lifeboat serve answers the button (chatops): Alice may approve on this target in #dba.
    const secret = randomBytes(16).toString('hex');
    const who = { team: 'T0ACME', user: { id: 'U0ALICE', name: 'alice' }, channel: { id: 'C0DBA', name: 'dba' } };
    const withChatops = { ...config, chatops: { slack: { signingSecretEnv: 'LIFEBOAT_TEST_SLACK_SIGNING_SECRET' }, allow: [{ commands: ['approve'], targets: [target], channels: [who.channel.id], users: [who.user.id] }] } };
    await lifeboat.writeConfig(withChatops);
    const receiver = await startReceiver();
    const serve = await startServe({
      config: loadConfig(lifeboat.configPath),
      settings: lifeboat.settings,
      listen: '127.0.0.1:0',
      env: { ...process.env, LIFEBOAT_TEST_SLACK_SIGNING_SECRET: secret },
      logger: createLogger('serve', 'silent'),
    });
    try {
      const k = 45 + Math.floor(Math.random() * 30);
      const handle = await lifeboat.start('pitr', { target, recoveryTarget: { kind: 'time', time: timeBetween(log[k - 1]!, log[k]!) }, cutover: true });
      await waitForStep(lifeboat, handle.workflowId, 'await-approval');
      // The cutover stops the live cluster: the file's long-lived session to it ends there.
      source.db.client.on('error', () => undefined);
      const body = buttonPressBody(who, { action: 'lifeboat_approve', workflowId: handle.workflowId, responseUrl: `${receiver.url}/actions/T0ACME/1/approve` });
      const pressed = await fetch(`${serve.url}/slack/interactions`, { method: 'POST', headers: slackHeaders(secret, body), body });
      assert.equal(pressed.status, 200, await pressed.text());
      const result = (await handle.result()) as PitrResult;
      const [answer] = await receiver.waitForAccepted(1);
      assert.match(JSON.parse(answer!.body).text, new RegExp(`^Approved by <@U0ALICE>: ${handle.workflowId} \\(${target}\\)$`));
      const by = 'slack:U0ALICE (@alice)';
      const approval = result.timeline.find((step) => step.name === 'await-approval');
      assert.equal(approval?.detail, `approved by ${by}`);
      assert.deepEqual(result.reportKeys, [`local:${target}/reports/${handle.workflowId}.json`]);
      const report = JSON.parse(await readFile(join(source.repositoryPath, target, 'reports', `${handle.workflowId}.json`), 'utf8')) as { approvals: Array<{ decision: string; by: string }> };
      assert.deepEqual(report.approvals.map(({ decision, by }) => ({ decision, by })), [{ decision: 'approved', by }], 'the PITR report says who approved');
      const audit = JSON.parse((await lifeboat.cli(['audit', target, '--json'])).stdout) as Array<{ workflowId: string; approvals: Array<{ decision: string; by: string }> }>;
      assert.deepEqual(audit.find((record) => record.workflowId === handle.workflowId)?.approvals.map(({ decision, by }) => ({ decision, by })), [{ decision: 'approved', by }]);
      await checkCutover(result, k);
    } finally {
      await serve.close();
      await receiver.close();
      await lifeboat.writeConfig(config);
    }
  });

  async function checkCutover(result: PitrResult, k: number): Promise<void> {
    assert.equal(result.backupId, second.backupId);
    assert.equal(result.cutover?.liveDataDir, source.db.dataDir);
    assert.ok(result.cutover && existsSync(join(result.cutover.safetyCopy, 'PG_VERSION')), 'the previous live data directory is kept whole');
    assert.deepEqual(
      result.timeline.map((step) => step.name).slice(-5),
      ['await-approval', 'stop-and-swap', 'start-live', 'health-check', 'store-report'],
    );
    const client = await source.db.cluster.connect();
    try {
      const ids = (await client.query<{ id: number }>('SELECT id FROM ledger ORDER BY id')).rows.map((r) => r.id);
      assert.deepEqual(ids, log.slice(0, k).map((c) => c.id), 'the live cluster now holds exactly the rows at the recovery target');
      const [state] = (await client.query<{ recovering: boolean; wal: string }>('SELECT pg_is_in_recovery() AS recovering, pg_walfile_name(pg_current_wal_lsn()) AS wal')).rows;
      assert.equal(state?.recovering, false);
      assert.notEqual(state?.wal.slice(0, 8), '00000001', 'the live cluster now writes a new timeline');
    } finally {
      await client.end();
    }
    assert.deepEqual(await recoveredDirs(), [], 'the recovered data directory moved into place');
  }
});
