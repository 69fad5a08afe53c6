/**
 * The retention runbook (`lifeboat forget`) against many backups in a directory and in S3: the
 * plan and its reasons, what is removed and in which order, and each safety rule.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { loadConfig } from '../../src/config/load.js';
import { applyRetention, deletionIntentKey } from '../../src/retention/apply.js';
import { leaseFormat, leaseKey, writeLease, type Lease } from '../../src/retention/leases.js';
import type { Backend } from '../../src/repository/backend.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { RetentionResult } from '../../workflows/retention.js';
import { retentionPlanQuery } from '../../workflows/retention-plan.js';
import { writeFixtureBackups } from '../helpers/backup-fixture.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

const day = 86_400_000;
/** 02:00 UTC yesterday: the newest fixture backup. */
const newest = new Date(Math.floor(Date.now() / day) * day - day + 2 * 3_600_000);

describe('lifeboat forget', () => {
  let lifeboat: Lifeboat;
  let local: Repository;
  let s3: Repository;
  let config: Record<string, unknown>;

  before(async () => {
    lifeboat = await createLifeboat('retention');
    config = lifeboat.baseConfig({
      orders: {
        type: 'sqlite',
        path: join(lifeboat.dir, 'orders.sqlite'),
        repositories: ['local', 's3'],
        retention: { keepDaily: 7, repositories: { s3: { keepDaily: 3 } } },
      },
      guarded: { type: 'sqlite', path: join(lifeboat.dir, 'guarded.sqlite'), repositories: ['local'], retention: { keepLast: 1, minimumRedundancy: 2 } },
      unruled: { type: 'sqlite', path: join(lifeboat.dir, 'unruled.sqlite'), repositories: ['local'] },
    });
    await lifeboat.writeConfig(config);
    const loaded = loadConfig(lifeboat.configPath);
    local = new Repository('local', openBackend(loaded.repositories.local!));
    s3 = new Repository('s3', openBackend(loaded.repositories.s3!, lifeboat.env));
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  async function ids(repository: Repository, target: string): Promise<string[]> {
    return (await repository.listBackups(target)).manifests.map((m) => m.id);
  }

  test('--dry-run shows every backup with keep or remove and every reason, per repository, and removes nothing', async () => {
    const localBackups = await writeFixtureBackups(local, 'orders', { count: 12, newest, intervalMs: day, objectsPerBackup: 2 });
    await writeFixtureBackups(s3, 'orders', { count: 5, newest, intervalMs: day });
    const before = (await readdir(join(lifeboat.dir, 'repository', 'orders', 'backups'), { recursive: true })).sort();
    const cli = await lifeboat.cli(['forget', 'orders', '--dry-run', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as RetentionResult;
    assert.equal(result.decision, 'dry-run');
    const [localPlan, s3Plan] = result.plan.repositories;
    assert.equal(localPlan!.description, 'keep 7 daily; minimum redundancy 1; UTC');
    assert.equal(s3Plan!.description, 'keep 3 daily; minimum redundancy 1; UTC', 'the S3 override');
    assert.deepEqual(
      localPlan!.backups.map((b) => [b.id, b.action, b.reasons]),
      localBackups.map((m, i) => [m.id, i < 7 ? 'keep' : 'remove', i < 7 ? [`daily ${i + 1}/7`, ...(i === 0 ? ['minimum redundancy'] : [])] : ['matches no rule']]),
    );
    assert.equal(s3Plan!.backups.filter((b) => b.action === 'keep').length, 3);
    assert.deepEqual((await readdir(join(lifeboat.dir, 'repository', 'orders', 'backups'), { recursive: true })).sort(), before, 'nothing removed');
    assert.match(cli.stderr, /REMOVE \S+ +\S+ +sqlite +matches no rule/);
    assert.match(cli.stderr, /dry run: nothing was removed/);
  });

  test('--yes removes exactly what the plan says, manifest and objects, in every repository, and stores the report', async () => {
    const keptLocal = (await ids(local, 'orders')).slice(0, 7);
    const keptS3 = (await ids(s3, 'orders')).slice(0, 3);
    const cli = await lifeboat.cli(['forget', 'orders', '--yes', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as RetentionResult;
    assert.equal(result.decision, 'applied');
    assert.deepEqual(await ids(local, 'orders'), keptLocal);
    assert.deepEqual(await ids(s3, 'orders'), keptS3);
    assert.deepEqual(await local.listBackupFolders('orders'), keptLocal, 'no object of a removed backup is left');
    assert.deepEqual(result.outcome.map((o) => [o.repository, o.removed.length]), [['local', 5], ['s3', 2]]);
    assert.deepEqual((await local.backend.listFolder('orders/retention/deleting/')).objects, [], 'no deletion is left half done');
    const report = JSON.parse(await readFile(join(lifeboat.dir, 'repository', 'orders', 'reports', `${result.workflowId}.json`), 'utf8')) as RetentionResult;
    assert.equal(report.plan.repositories[0]!.backups.length, 12, 'the report holds the whole plan');
    // Run again: nothing more to remove.
    const again = await lifeboat.run('retention', { target: 'orders' });
    assert.equal(again.decision, 'nothing-to-remove');
  });

  test('asked for an approval, the run shows its plan and removes nothing until approved; rejected, nothing at all', async () => {
    const target = 'asked';
    const repository = local;
    await writeFixtureBackups(repository, target, { count: 3, newest, intervalMs: day });
    const config2 = structuredClone(config) as { targets: Record<string, Record<string, unknown>> };
    config2.targets[target] = { type: 'sqlite', path: join(lifeboat.dir, 'asked.sqlite'), repositories: ['local'], retention: { keepLast: 1 } };
    await lifeboat.writeConfig(config2);
    const planOf = async (workflowId: string) => {
      for (;;) {
        const plan = await lifeboat.client.workflow.getHandle(workflowId).query(retentionPlanQuery);
        if (plan) return plan;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const rejected = await lifeboat.start('retention', { target, approval: true });
    assert.equal((await planOf(rejected.workflowId)).repositories[0]!.backups.filter((b) => b.action === 'remove').length, 2);
    const no = await lifeboat.cli(['approve', rejected.workflowId, '--reject', '--by', 'tester']);
    assert.equal(no.exitCode, 0, no.all);
    await assert.rejects(rejected.result(), (error: unknown) => {
      const failure = runbookFailure(error);
      assert.equal(failure.type, 'NotApproved');
      assert.match(failure.message, /was rejected by tester; nothing was removed/);
      return true;
    });
    assert.equal((await ids(repository, target)).length, 3, 'nothing removed');

    const approved = await lifeboat.start('retention', { target, approval: true });
    await planOf(approved.workflowId);
    assert.equal((await ids(repository, target)).length, 3, 'nothing removed before the answer');
    const yes = await lifeboat.cli(['approve', approved.workflowId]);
    assert.equal(yes.exitCode, 0, yes.all);
    const result = (await approved.result()) as RetentionResult;
    assert.equal(result.decision, 'applied');
    assert.equal((await ids(repository, target)).length, 1);
    await lifeboat.writeConfig(config);
  });

  test('an empty policy is refused, and so is a target without one; nothing is removed', async () => {
    const broken = structuredClone(config) as { targets: Record<string, Record<string, unknown>> };
    broken.targets.orders!.retention = { minimumRedundancy: 2 };
    const brokenPath = join(lifeboat.dir, 'broken.yaml');
    await writeFile(brokenPath, JSON.stringify(broken));
    const refused = await lifeboat.cli(['--config', brokenPath, 'forget', 'orders', '--yes']);
    assert.equal(refused.exitCode, 2);
    assert.match(refused.stderr, /InvalidConfig: .*targets\.orders\.retention: the policy for repository "local" has no rule that keeps a backup/s);

    const none = await lifeboat.cli(['forget', 'unruled', '--yes']);
    assert.equal(none.exitCode, 2);
    assert.match(none.stderr, /InvalidConfig: target "unruled" has no retention policy/);
    const unknown = await lifeboat.cli(['forget', 'nope', '--dry-run']);
    assert.equal(unknown.exitCode, 2);
    assert.match(unknown.stderr, /TargetNotFound/);
    const both = await lifeboat.cli(['forget', 'orders', '--dry-run', '--yes']);
    assert.equal(both.exitCode, 2);
    const noTerminal = await lifeboat.cli(['forget', 'orders']);
    assert.equal(noTerminal.exitCode, 2, 'without a terminal to ask on, --yes or --dry-run is needed');
    assert.match(noTerminal.stderr, /pass --yes/);

    await writeFixtureBackups(local, 'unruled', { count: 3, newest, intervalMs: day });
    await assert.rejects(lifeboat.run('retention', { target: 'unruled' }), (error: unknown) => {
      assert.equal(runbookFailure(error).type, 'InvalidConfig');
      return true;
    });
    assert.equal((await ids(local, 'unruled')).length, 3);
  });

  test('only complete backups count; a dead upload older than the grace period goes, a young one stays', async () => {
    const complete = await writeFixtureBackups(local, 'guarded', { count: 3, newest, intervalMs: day });
    const [deadId, youngId] = ['20200101T000000Z-000aaa', `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}Z-000bbb`];
    for (const id of [deadId, youngId]) await local.backend.put(local.objectKey('guarded', id, 'db.sqlite.zst'), Readable.from([Buffer.from('partial')]));
    const result = await lifeboat.run('retention', { target: 'guarded', dryRun: true });
    const plan = result.plan.repositories[0]!;
    assert.deepEqual(plan.backups.map((b) => b.id), complete.map((m) => m.id), 'folders without a manifest are not backups');
    assert.deepEqual(plan.deadUploads.map((d) => [d.id, d.action]), [[youngId, 'keep'], [deadId, 'remove']].sort((a, b) => (a[0]! < b[0]! ? 1 : -1)));
    await lifeboat.run('retention', { target: 'guarded' });
    const folders = await local.listBackupFolders('guarded');
    assert.ok(!folders.includes(deadId) && folders.includes(youngId));
  });

  test('the newest minimumRedundancy backups and the newest verified backup are never removed', async () => {
    const target = 'guarded';
    const all = (await local.listBackups(target)).manifests;
    assert.equal(all.length, 2, 'keepLast 1, minimum redundancy 2');
    const more = await writeFixtureBackups(local, target, { count: 4, newest: new Date(newest.getTime() + 3_600_000), intervalMs: 60_000 });
    // Verified: every backup read back right; then the two newest are damaged and found so.
    await lifeboat.run('verify', { target, readData: 'full' });
    for (const manifest of more.slice(0, 2)) await local.backend.delete(local.objectKey(target, manifest.id, 'db.sqlite.zst'));
    const verify = await lifeboat.run('verify', { target });
    assert.equal(verify.valid, false);
    const result = await lifeboat.run('retention', { target });
    const reasons = Object.fromEntries(result.plan.repositories[0]!.backups.map((b) => [b.id, b.reasons.join(', ')]));
    assert.equal(reasons[more[0]!.id], 'last 1/1, minimum redundancy');
    assert.equal(reasons[more[1]!.id], 'minimum redundancy');
    assert.equal(reasons[more[2]!.id], 'newest verified');
    assert.deepEqual(await ids(local, target), more.slice(0, 3).map((m) => m.id));
  });

  test('a backup in use by a running run is kept; a dead lease is cleaned up; a lease from elsewhere counts until it expires', async () => {
    const target = 'guarded';
    const olds = (await writeFixtureBackups(local, target, { count: 3, newest: new Date(newest.getTime() - 30 * day), intervalMs: day })).map((m) => m.id);
    // A run that stays open: a retention run waiting for its approval.
    const waiting = await lifeboat.start('retention', { target, approval: true });
    const lease = (holder: string, backupId: string, extra: Partial<Lease> = {}): Lease => ({
      format: leaseFormat,
      target,
      backupId,
      holder,
      runbook: 'restore',
      namespace: 'default',
      createdAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      ...extra,
    });
    // With its run id, as a run's own lease has: a later run may get the same workflow id (ids are
    // per second) once this one has ended, and must not be taken for it.
    await writeLease(local, lease(waiting.workflowId, olds[0]!, { runId: (await waiting.describe()).runId }));
    await writeLease(local, lease('restore-guarded-finished-long-ago', olds[1]!));
    await writeLease(local, lease('copy-on-the-dr-site', olds[2]!, { namespace: 'dr-site' }));
    const result = await lifeboat.run('retention', { target });
    const plan = result.plan.repositories[0]!;
    const reasonsOf = (id: string) => plan.backups.find((b) => b.id === id)?.reasons;
    assert.deepEqual(reasonsOf(olds[0]!), [`in use by ${waiting.workflowId}`]);
    assert.deepEqual(reasonsOf(olds[1]!), ['matches no rule'], 'the lease of a run that does not exist is dead');
    assert.deepEqual(reasonsOf(olds[2]!), ['in use by copy-on-the-dr-site'], 'another namespace: counts until its expiry');
    const remaining = await ids(local, target);
    assert.ok(remaining.includes(olds[0]!) && !remaining.includes(olds[1]!) && remaining.includes(olds[2]!));
    assert.equal(await local.backend.head(leaseKey(target, olds[1]!, 'restore-guarded-finished-long-ago')), undefined, 'dead leases are removed');
    await lifeboat.client.workflow.getHandle(waiting.workflowId).terminate('test done');
    const after = await lifeboat.run('retention', { target });
    assert.equal(after.plan.repositories[0]!.backups.find((b) => b.id === olds[0])?.action, 'remove', 'once its run ended, the lease no longer counts');
  });

  test('a reader that leases a backup after it was planned for removal keeps its objects; a later run finishes the removal', async () => {
    const target = 'raced';
    const root = join(lifeboat.dir, 'raced');
    const plain = openBackend({ type: 'fs', path: root });
    let racedId = '';
    // The reader leases right after retention withdrew the manifest, and before retention looks for leases.
    const racing: Backend = Object.assign(Object.create(plain) as Backend, {
      async delete(key: string) {
        await plain.delete(key);
        if (key === `${target}/backups/${racedId}/manifest.json`) {
          await writeLease(repository, { format: leaseFormat, target, backupId: racedId, holder: 'drill-raced', runbook: 'drill', createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() });
        }
      },
    });
    const repository = new Repository('local', racing);
    const manifests: Manifest[] = await writeFixtureBackups(repository, target, { count: 3, newest, intervalMs: day, objectsPerBackup: 2 });
    racedId = manifests[2]!.id;
    const policy = { keepLast: 1 };
    const unknown = async () => undefined; // Temporal cannot be asked: expiries decide
    const first = await applyRetention(repository, target, policy, { remove: [manifests[1]!.id, racedId], deadUploads: [] }, { now: new Date(), deadUploadAfterHours: 48, isOpen: unknown });
    assert.deepEqual(first.removed, [manifests[1]!.id]);
    assert.deepEqual(first.deferred, [{ id: racedId, holders: ['drill-raced'] }]);
    assert.equal(await repository.readManifestIfAny(target, racedId), undefined, 'no longer listed');
    assert.equal((await plain.list(`${target}/backups/${racedId}/`)).length, 2, 'its objects are left for the reader');
    assert.ok(await plain.head(deletionIntentKey(target, racedId)));
    const later = await applyRetention(repository, target, policy, { remove: [], deadUploads: [] }, { now: new Date(Date.now() + 120_000), deadUploadAfterHours: 48, isOpen: unknown });
    assert.deepEqual(later.finishedEarlier, [racedId]);
    assert.deepEqual(await plain.list(`${target}/backups/${racedId}/`), []);
    assert.equal(await plain.head(deletionIntentKey(target, racedId)), undefined);
  });
});

