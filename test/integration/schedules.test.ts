/**
 * Schedules, specified against a real Temporal dev server through the real CLI: `lifeboat
 * schedules apply` makes the server match the config and is idempotent; it updates and deletes
 * only Lifeboat's own schedules and keeps an operator's pause; scheduled runs are real runbook
 * runs that carry the same ids, summary and search attributes as manual ones and name their
 * schedule; a run due while the previous one still goes on is skipped.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ScheduleDescription } from '@temporalio/client';
import type { BackupResult } from '../../workflows/backup.js';
import { searchAttributes } from '../../src/client.js';
import { activityRuns, createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { stepOfKilledWorker, waitForStep } from '../helpers/steps.js';

interface ApplyReport {
  dryRun: boolean;
  changes: Array<{ id: string; action: string; differences?: string[]; paused?: boolean; note?: string; reason?: string }>;
}

/** Polls until check returns a value (not undefined); fails after timeoutMs with what it waited for. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 200))) {
    const value = await check();
    if (value !== undefined) return value;
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('schedules declared in the config, on a real Temporal server', () => {
  let lifeboat: Lifeboat;
  // Schedule ids are per namespace: a name of its own keeps this file's schedules apart from any other's.
  const orders = `orders-${randomBytes(3).toString('hex')}`;
  const scheduleId = (name: string) => `lifeboat/${orders}/${name}`;

  /** Writes the config with these schedules on the target (and these other targets). */
  async function declare(schedules: Record<string, Record<string, unknown>>, others: Record<string, Record<string, unknown>> = {}, extra: Record<string, unknown> = {}): Promise<void> {
    await lifeboat.writeConfig(lifeboat.baseConfig({ [orders]: { type: 'sqlite', path: join(lifeboat.dir, 'orders.sqlite'), repositories: ['local', 's3'], schedules }, ...others }, extra));
  }

  async function apply(...flags: string[]): Promise<ApplyReport> {
    const result = await lifeboat.cli(['schedules', 'apply', '--json', ...flags]);
    assert.equal(result.exitCode, 0, result.all);
    return JSON.parse(String(result.stdout)) as ApplyReport;
  }

  const actions = (report: ApplyReport) => Object.fromEntries(report.changes.map((change) => [change.id, change.action]));
  const describeSchedule = (name: string): Promise<ScheduleDescription> => lifeboat.client.schedule.getHandle(scheduleId(name)).describe();

  const nightly = { runbook: 'backup', cron: '0 2 * * *', timezone: 'Europe/Berlin', jitter: '10m' };
  const weekly = { runbook: 'drill', calendar: { hour: 4, dayOfWeek: 'SUN' }, catchupWindow: '1h' };
  const monthly = { runbook: 'verify', cron: '0 5 1 * *', readData: '10%', pauseOnFailure: true };

  before(async () => {
    lifeboat = await createLifeboat('schedules');
    createDatabase(join(lifeboat.dir, 'orders.sqlite'), 1);
  });

  after(async () => {
    // Leave nothing firing on a shared server.
    await declare({}).catch(() => undefined);
    await lifeboat.cli(['schedules', 'apply']).catch(() => undefined);
    await lifeboat.close();
  });

  it('apply --dry-run prints the plan and changes nothing; apply creates every schedule; a second apply leaves them untouched', async () => {
    await declare({ nightly, weekly, monthly });
    const dryRun = await apply('--dry-run');
    assert.equal(dryRun.dryRun, true);
    assert.deepEqual(actions(dryRun), { [scheduleId('monthly')]: 'create', [scheduleId('nightly')]: 'create', [scheduleId('weekly')]: 'create' });
    await assert.rejects(describeSchedule('nightly'), /not found/i, 'a dry run creates nothing');

    assert.deepEqual(actions(await apply()), { [scheduleId('monthly')]: 'create', [scheduleId('nightly')]: 'create', [scheduleId('weekly')]: 'create' });
    const created = await describeSchedule('nightly');
    assert.equal(created.action.workflowType, 'backup');
    assert.equal(created.action.workflowId, `backup-${orders}`);
    assert.equal(created.action.taskQueue, lifeboat.settings.taskQueue);
    assert.deepEqual(created.action.args, [{ target: orders }]);
    assert.equal(created.spec.timezone, 'Europe/Berlin');
    assert.equal(created.spec.jitter, 600_000);
    assert.deepEqual(created.policies, { overlap: 'SKIP', catchupWindow: 86_400_000, pauseOnFailure: false });
    assert.deepEqual((await describeSchedule('monthly')).action.args, [{ target: orders, readData: '10%' }]);
    assert.equal((await describeSchedule('monthly')).policies.pauseOnFailure, true);
    assert.equal((await describeSchedule('weekly')).policies.catchupWindow, 3_600_000);

    const before = await Promise.all(['nightly', 'weekly', 'monthly'].map(async (name) => (await describeSchedule(name)).info.lastUpdatedAt?.getTime()));
    assert.deepEqual(Object.values(actions(await apply())), ['unchanged', 'unchanged', 'unchanged']);
    const afterwards = await Promise.all(['nightly', 'weekly', 'monthly'].map(async (name) => (await describeSchedule(name)).info.lastUpdatedAt?.getTime()));
    assert.deepEqual(afterwards, before, 'the second apply did not touch them');
  });

  it('a changed schedule is updated in place, a removed one deleted, and schedules Lifeboat did not create are left alone', async () => {
    // Someone else's schedule, and one of another Lifeboat installation (another task queue).
    const foreignId = `not-lifeboat-${orders}`;
    await lifeboat.client.schedule.create({
      scheduleId: foreignId,
      spec: { cronExpressions: ['0 3 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'backup', taskQueue: lifeboat.settings.taskQueue, args: [{ target: orders }] },
    });
    const otherInstallationId = scheduleId('other-installation');
    await lifeboat.client.schedule.create({
      scheduleId: otherInstallationId,
      spec: { cronExpressions: ['0 3 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'backup', taskQueue: `${lifeboat.settings.taskQueue}-elsewhere`, args: [{ target: orders }] },
      memo: { lifeboat: { managedBy: 'lifeboat', target: orders, name: 'other-installation' } },
    });
    try {
      const createdAt = (await describeSchedule('nightly')).info.createdAt.getTime();
      await declare({ nightly: { ...nightly, cron: '30 1 * * *', overlap: 'buffer-one' }, weekly });
      const plan = await apply('--dry-run');
      assert.deepEqual(actions(plan), { [scheduleId('nightly')]: 'update', [scheduleId('weekly')]: 'unchanged', [scheduleId('monthly')]: 'delete' });
      const differences = plan.changes.find((change) => change.action === 'update')!.differences!.join('; ');
      assert.match(differences, /overlap skip -> buffer-one/);
      assert.match(differences, /declaration \w+ -> \w+ \(cron "30 1 \* \* \*"/);

      assert.deepEqual(actions(await apply()), actions(plan));
      const updated = await describeSchedule('nightly');
      assert.equal(updated.policies.overlap, 'BUFFER_ONE');
      assert.deepEqual(updated.spec.calendars?.[0]?.minute, [{ start: 30, end: 30, step: 1 }]);
      assert.equal(updated.info.createdAt.getTime(), createdAt, 'updated in place, not re-created');
      await assert.rejects(describeSchedule('monthly'), /not found/i);
      await lifeboat.client.schedule.getHandle(foreignId).describe();
      await lifeboat.client.schedule.getHandle(otherInstallationId).describe();
      assert.deepEqual(Object.values(actions(await apply())), ['unchanged', 'unchanged']);
    } finally {
      await lifeboat.client.schedule.getHandle(foreignId).delete();
      await lifeboat.client.schedule.getHandle(otherInstallationId).delete();
    }
  });

  it("an operator's pause and its note survive an apply that updates the schedule; unpause resumes it", async () => {
    const paused = await lifeboat.cli(['schedules', 'pause', `${orders}/nightly`, '--note', 'storage migration until Friday (ops-1234)']);
    assert.equal(paused.exitCode, 0, paused.all);
    await declare({ nightly: { ...nightly, cron: '45 1 * * *', overlap: 'buffer-one' }, weekly });
    const report = await apply();
    const update = report.changes.find((change) => change.id === scheduleId('nightly'))!;
    assert.deepEqual({ action: update.action, paused: update.paused, note: update.note }, { action: 'update', paused: true, note: 'storage migration until Friday (ops-1234)' });
    const description = await describeSchedule('nightly');
    assert.deepEqual({ paused: description.state.paused, note: description.state.note }, { paused: true, note: 'storage migration until Friday (ops-1234)' });
    assert.deepEqual(description.spec.calendars?.[0]?.minute, [{ start: 45, end: 45, step: 1 }], 'and the update itself went through');

    const listed = await lifeboat.cli(['schedules', 'list', '--json']);
    assert.equal(listed.exitCode, 0, listed.all);
    const row = (JSON.parse(String(listed.stdout)) as Array<{ id: string; paused: boolean; note?: string }>).find((listing) => listing.id === scheduleId('nightly'));
    assert.deepEqual({ paused: row?.paused, note: row?.note }, { paused: true, note: 'storage migration until Friday (ops-1234)' });

    assert.equal((await lifeboat.cli(['schedules', 'unpause', scheduleId('nightly')])).exitCode, 0);
    assert.equal((await describeSchedule('nightly')).state.paused, false);
    assert.deepEqual(Object.values(actions(await apply())), ['unchanged', 'unchanged'], 'unpausing is not a difference from the config');
  });

  it('an id held by a schedule Lifeboat did not create is a conflict: apply changes nothing at all and says what to do', async () => {
    const takenId = scheduleId('taken');
    await lifeboat.client.schedule.create({
      scheduleId: takenId,
      spec: { cronExpressions: ['0 3 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'somethingElse', taskQueue: 'someone-elses-queue' },
    });
    try {
      await declare({ nightly: { ...nightly, cron: '45 1 * * *', overlap: 'buffer-one' }, weekly, taken: nightly, fresh: weekly });
      const result = await lifeboat.cli(['schedules', 'apply']);
      assert.equal(result.exitCode, 2, result.all);
      assert.match(String(result.stderr), /ScheduleConflict: no schedule was changed: lifeboat\/orders-\w+\/taken: a schedule with this id exists on the server and was not created by Lifeboat/);
      assert.match(String(result.stderr), /temporal schedule delete --schedule-id/);
      await assert.rejects(describeSchedule('fresh'), /not found/i, 'nothing of the plan was carried out');
      assert.equal((await lifeboat.client.schedule.getHandle(takenId).describe()).action.workflowType, 'somethingElse');
    } finally {
      await lifeboat.client.schedule.getHandle(takenId).delete();
    }
  });

  it('pausing, unpausing or triggering a schedule that is not Lifeboat\'s is refused, naming the schedules there are', async () => {
    const result = await lifeboat.cli(['schedules', 'trigger', `${orders}/no-such-schedule`]);
    assert.equal(result.exitCode, 2, result.all);
    assert.match(String(result.stderr), new RegExp(`ScheduleNotFound: no schedule "lifeboat/${orders}/no-such-schedule" on the server\\. Lifeboat's schedules on task queue "${lifeboat.settings.taskQueue}": .*lifeboat/${orders}/nightly`));
    const noNote = await lifeboat.cli(['schedules', 'pause', `${orders}/nightly`]);
    assert.equal(noNote.exitCode, 2, 'a pause says why');
    assert.match(String(noNote.stderr), /required option '--note <why>'/);
  });

  it('a config with a wrong schedule is refused before anything is applied, naming the field', async () => {
    await declare({ nightly: { ...nightly, cron: '0 2 * * MON-FUN' } });
    const result = await lifeboat.cli(['schedules', 'apply']);
    assert.equal(result.exitCode, 2, result.all);
    assert.match(String(result.stderr), /InvalidConfig: [\s\S]*targets\.orders-\w+\.schedules\.nightly\.cron: dayOfWeek field: "FUN" is not a number 0-6 or a name such as SUN/);
    assert.equal((await describeSchedule('nightly')).spec.calendars?.[0]?.minute?.[0]?.start, 45, 'the schedule on the server is as it was');
  });

  it('lifeboat worker --apply-schedules applies the config before it polls', async () => {
    await declare({ nightly, weekly, monthly });
    const worker = lifeboat.spawnWorker({}, ['--apply-schedules']);
    try {
      // The plan is carried out in the order of the ids: monthly is created, then nightly updated.
      await eventually('the worker to update lifeboat/.../nightly', async () => ((await describeSchedule('nightly')).spec.calendars?.[0]?.minute?.[0]?.start === 0 ? true : undefined));
      assert.deepEqual((await describeSchedule('monthly')).action.args, [{ target: orders, readData: '10%' }], 'and created the missing one');
    } finally {
      await lifeboat.killSpawnedWorkers();
    }
    const { output } = await worker.exited;
    assert.match(output, /create\s+lifeboat\/orders-\w+\/monthly/);
  });

  describe('scheduled runs', () => {
    const often = { runbook: 'backup', every: '2s' };
    let firstRun: string;

    it('a run due while the previous run of its schedule still goes on is skipped', async () => {
      // No worker polls yet: the first run is started and stays running, so every later firing overlaps it.
      await declare({ often });
      await apply();
      const skipped = await eventually('a skipped firing', async () => {
        const description = await describeSchedule('often');
        return description.info.numActionsSkippedOverlap >= 1 ? description : undefined;
      });
      assert.equal(skipped.info.numActionsTaken, 1, 'one run started');
      assert.equal(skipped.info.runningActions.length, 1);
      firstRun = skipped.info.runningActions[0]!.workflow.workflowId;
      // No more runs while it is examined below.
      assert.equal((await lifeboat.cli(['schedules', 'pause', `${orders}/often`, '--note', 'test: hold'])).exitCode, 0);
    });

    it('starts a real backup, with the id, summary and search attributes of a manual run, saying which schedule started it', async () => {
      await lifeboat.startWorker();
      const handle = lifeboat.client.workflow.getHandle(firstRun);
      const result = (await handle.result()) as BackupResult;
      assert.equal(result.target, orders);
      assert.deepEqual(result.repositories.sort(), ['local', 's3']);
      const listed = await lifeboat.cli(['backups', orders, '--json']);
      assert.ok((JSON.parse(String(listed.stdout)) as Array<{ id: string }>).some((backup) => backup.id === result.backupId), 'the backup is in the repositories');

      assert.match(firstRun, new RegExp(`^backup-${orders}-\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$`), 'the manual id with the time it was due');
      const manual = await lifeboat.start('backup', { target: orders });
      await manual.result();
      const [scheduled, byHand] = await Promise.all([handle.describe(), manual.describe()]);
      assert.equal(await scheduled.staticSummary(), await byHand.staticSummary());
      assert.equal(await scheduled.staticDetails(), `Started by the Temporal Schedule \`${scheduleId('often')}\`.`);
      for (const key of [searchAttributes.target, searchAttributes.kind]) assert.equal(scheduled.typedSearchAttributes.get(key), byHand.typedSearchAttributes.get(key));
      assert.equal(scheduled.typedSearchAttributes.get(searchAttributes.requestedBy), `schedule:${scheduleId('often')}`);
      assert.match(String(byHand.typedSearchAttributes.get(searchAttributes.requestedBy)), /^cli:.+@.+$/);
      const requestedBy = scheduled.memo?.requestedBy as { via: string; schedule: string; declaration: string };
      assert.deepEqual({ via: requestedBy.via, schedule: requestedBy.schedule }, { via: 'schedule', schedule: scheduleId('often') });
      assert.match(requestedBy.declaration, /^[0-9a-f]{12}$/, 'and the version of its config entry');
      assert.deepEqual(byHand.memo?.requestedBy, { via: 'cli', user: userInfo().username, host: hostname() });
      assert.deepEqual(scheduled.searchAttributes.TemporalScheduledById, [scheduleId('often')], "and Temporal's own record of the schedule");
    });

    it('trigger starts a run now, even while the schedule is paused, and it completes', async () => {
      const taken = (await describeSchedule('often')).info.numActionsTaken;
      const triggered = await lifeboat.cli(['schedules', 'trigger', `${orders}/often`]);
      assert.equal(triggered.exitCode, 0, triggered.all);
      const run = await eventually('the triggered run', async () => {
        const description = await describeSchedule('often');
        return description.info.numActionsTaken > taken ? description.info.recentActions.at(-1)!.action.workflow.workflowId : undefined;
      });
      const result = (await lifeboat.client.workflow.getHandle(run).result()) as BackupResult;
      assert.equal(result.target, orders);
    });

    it('pauseOnFailure: a failed run pauses its schedule, and Temporal notes why', async () => {
      // The database of this target does not exist: every backup of it fails (SourceNotFound).
      const broken = `broken-${orders}`;
      await declare({}, { [broken]: { type: 'sqlite', path: join(lifeboat.dir, 'missing.sqlite'), repositories: ['local'], schedules: { often: { runbook: 'backup', every: '2s', pauseOnFailure: true } } } });
      await apply();
      const id = `lifeboat/${broken}/often`;
      const paused = await eventually('the schedule to pause itself', async () => {
        const description = await lifeboat.client.schedule.getHandle(id).describe();
        return description.state.paused ? description : undefined;
      });
      assert.equal(paused.info.numActionsTaken, 1, 'no run after the failed one');
      assert.match(paused.state.note ?? '', /fail/i);
      const failedRun = paused.info.recentActions[0]!.action.workflow.workflowId;
      assert.equal((await lifeboat.client.workflow.getHandle(failedRun).describe()).status.name, 'FAILED');
      const listed = await lifeboat.cli(['schedules', 'list']);
      assert.match(String(listed.stderr), new RegExp(`${id}  backup  PAUSED \\(.*\\)\\n.*\\n\\s+last ${failedRun} FAILED`));
    });

    it('a run whose worker is killed mid-step still runs: the next firing is skipped, and a new worker finishes it without redoing completed steps', async () => {
      await lifeboat.stopWorker();
      const big = `big-${orders}`;
      const bigPath = join(lifeboat.dir, 'big.sqlite');
      createDatabase(bigPath, 8);
      // A high zstd level makes the upload of 8 MiB last long enough to kill its worker during it.
      await declare({}, { [big]: { type: 'sqlite', path: bigPath, repositories: ['local'], schedules: { often: { runbook: 'backup', every: '2s' } } } }, { compression: { level: 15, threads: 2 } });
      const first = lifeboat.spawnWorker();
      await apply();
      const id = `lifeboat/${big}/often`;
      const describeBig = () => lifeboat.client.schedule.getHandle(id).describe();
      const run = await eventually('the first run', async () => (await describeBig()).info.recentActions[0]?.action.workflow.workflowId);
      await waitForStep(lifeboat.client, run, (step) => step.activityType === 'snapshotAndUpload');
      first.kill('SIGKILL');
      await first.exited;
      const skippedAtKill = (await describeBig()).info.numActionsSkippedOverlap;
      await eventually('a firing skipped while the killed worker\'s step is pending', async () => ((await describeBig()).info.numActionsSkippedOverlap > skippedAtKill ? true : undefined));
      assert.equal(await stepOfKilledWorker(lifeboat.client, run), 'snapshotAndUpload', 'the backup was mid-step when the firing was skipped');
      await lifeboat.client.schedule.getHandle(id).pause('test: enough runs');
      assert.equal((await describeBig()).info.numActionsTaken, 1);

      lifeboat.spawnWorker();
      const result = (await lifeboat.client.workflow.getHandle(run).result()) as BackupResult;
      assert.equal(result.target, big);
      const runs = await activityRuns(lifeboat.client, run);
      assert.deepEqual(runs.scheduled, { resolveTarget: 1, snapshotAndUpload: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
      assert.equal(runs.attempts.snapshotAndUpload, 2, 'the interrupted step ran again on the new worker');
      await lifeboat.killSpawnedWorkers();
    });
  });
});
