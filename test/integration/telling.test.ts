/**
 * What runbooks tell people, on a real Temporal server with receivers on loopback: notifications
 * after the outcome (a receiver that is down is retried with the same webhook-id and never changes
 * the result; one that refuses is given up), an audit record of every finished run in every
 * repository, and what the Temporal UI shows: a summary on every step, current details while a
 * step runs, byte progress reaching the run.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { workflowMetadataQuery } from '@temporalio/workflow';
import { runbookFailure } from '../../src/client.js';
import type { AuditRecord } from '../../src/audit/record.js';
import type { DrillReport } from '../../workflows/drill.js';
import { timelineQuery } from '../../workflows/queries.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

const secret = `whsec_${randomBytes(32).toString('base64')}`;

describe('runbooks tell people: notifications, audit, the Temporal UI', () => {
  let lifeboat: Lifeboat;
  let receiver: Receiver;
  let dbPath: string;

  before(async () => {
    receiver = await startReceiver({ secret });
    lifeboat = await createLifeboat('telling');
    process.env.LIFEBOAT_TEST_WEBHOOK_SECRET = secret;
    process.env.LIFEBOAT_TEST_SLACK_URL = `${receiver.url}/services/T1/B2/token`;
    dbPath = join(lifeboat.dir, 'shop.sqlite');
    createDatabase(dbPath, 4);
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          shop: {
            type: 'sqlite',
            path: dbPath,
            repositories: ['local', 's3'],
            hooks: { stop: 'sleep 4' },
            drill: { rtoTargetSeconds: 600, rpoTargetSeconds: 3600, smokeChecks: [{ name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 }] },
          },
        },
        {
          notifications: {
            deliveryTimeoutSeconds: 60,
            channels: {
              pager: { type: 'webhook', url: `${receiver.url}/lifeboat`, secretEnv: 'LIFEBOAT_TEST_WEBHOOK_SECRET', events: ['runbook.failed', 'drill.finished'] },
              ops: { type: 'slack', urlEnv: 'LIFEBOAT_TEST_SLACK_URL', events: ['drill.finished'] },
            },
          },
        },
      ),
    );
    await lifeboat.startWorker();
    await lifeboat.run('backup', { target: 'shop' });
  });

  after(async () => {
    await lifeboat?.close();
    await receiver?.close();
  });

  const webhooks = () => receiver.accepted.filter((r) => r.path === '/lifeboat').map((r) => ({ ...r, json: JSON.parse(r.body) as { type: string; timestamp: string; data: Record<string, unknown> } }));

  test('a drill tells both channels how it went, after a receiver that was down came back; the result is the drill\'s', async () => {
    receiver.failNext(2, 503);
    const handle = await lifeboat.start('drill', { target: 'shop' });
    const report = (await handle.result()) as DrillReport;
    assert.equal(report.passed, true);
    const delivered = webhooks().filter((w) => w.json.data.run && (w.json.data.run as { workflowId: string }).workflowId === handle.workflowId);
    assert.equal(delivered.length, 1, 'the pager got the drill once');
    const { json } = delivered[0]!;
    assert.equal(json.type, 'drill.finished');
    assert.equal(delivered[0]!.verification, undefined, 'signature verified');
    assert.deepEqual(json.data.rto, report.rto);
    assert.deepEqual(json.data.rpo, report.rpo);
    assert.deepEqual((json.data.run as { requestedBy: unknown }).requestedBy, (await handle.describe()).memo?.requestedBy);
    const attempts = receiver.requests.filter((r) => r.headers['webhook-id'] === delivered[0]!.headers['webhook-id']);
    assert.ok(attempts.length >= 1);
    assert.ok(!report.timeline.some((s) => s.name.startsWith('notify-') || s.name === 'record-audit'), 'the result is the outcome as decided, before telling anyone');
    const notifySteps = (await handle.query(timelineQuery)).filter((s) => s.name.startsWith('notify-'));
    assert.deepEqual(notifySteps.map((s) => s.status).sort(), ['completed', 'completed']);
    assert.equal(notifySteps.reduce((sum, s) => sum + (s.attempts ?? 1), 0), 4, 'two failed attempts were retried');
    assert.ok(receiver.accepted.some((r) => r.path === '/services/T1/B2/token' && /drill of shop PASSED/.test(r.body)), 'Slack got it too');
  });

  test('every finished run has an audit record in every repository: who asked, what, the backup, sizes, the manifest sha256', async () => {
    const out = await lifeboat.cli(['audit', 'shop', '--since', '1h', '--json']);
    assert.equal(out.exitCode, 0, out.all);
    const entries = JSON.parse(out.stdout) as Array<AuditRecord & { repositories: string[] }>;
    const backup = entries.find((e) => e.runbook === 'backup')!;
    assert.deepEqual(backup.repositories, ['local', 's3']);
    assert.equal(backup.result, 'succeeded');
    assert.equal(backup.requestedBy?.via, 'cli');
    assert.match(backup.manifestSha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok((backup.sizes.sourceBytes ?? 0) > 0 && (backup.sizes.storedBytes ?? 0) > 0);
    const drill = entries.find((e) => e.runbook === 'drill')!;
    assert.equal(drill.passed, true);
    assert.equal(drill.backupId, backup.backupId);
  });

  test('a failed run is told as runbook.failed and recorded as failed; a receiver that refuses does not change it', async () => {
    const handle = await lifeboat.start('restore', { target: 'shop', backupId: '20200101T000000Z-000000' });
    await assert.rejects(handle.result(), (error: unknown) => runbookFailure(error).type === 'BackupNotFound');
    const failed = webhooks().find((w) => (w.json.data.run as { workflowId: string }).workflowId === handle.workflowId)!;
    assert.equal(failed.json.type, 'runbook.failed');
    assert.deepEqual(failed.json.data.failure, { type: 'BackupNotFound', message: (failed.json.data.failure as { message: string }).message });
    assert.equal(failed.json.data.step, 'locate-backup');
    const out = await lifeboat.cli(['audit', 'shop', '--json']);
    const record = (JSON.parse(out.stdout) as AuditRecord[]).find((e) => e.workflowId === handle.workflowId)!;
    assert.equal(record.result, 'failed');
    assert.equal(record.failure?.type, 'BackupNotFound');

    // A receiver that refuses (here: it does not share the secret) is given up at once; the drill still passes.
    process.env.LIFEBOAT_TEST_WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
    try {
      const drill = await lifeboat.start('drill', { target: 'shop' });
      assert.equal(((await drill.result()) as DrillReport).passed, true);
      const pager = (await drill.query(timelineQuery)).find((s) => s.name === 'notify-pager')!;
      assert.equal(pager.status, 'failed');
      assert.equal(pager.attempts, undefined);
      assert.match(pager.detail ?? '', /answered 401/);
    } finally {
      process.env.LIFEBOAT_TEST_WEBHOOK_SECRET = secret;
    }
  });

  test('the Temporal UI: every step is scheduled with a summary, current details name the step in flight, progress reaches the run', async () => {
    const handle = await lifeboat.start('restore', { target: 'shop' });
    // The stop hook sleeps 4 s: long enough to read the run's details while it runs.
    let details = '';
    for (let i = 0; i < 100 && !details.includes('`stop-hook`'); i++) {
      details = (await handle.query(workflowMetadataQuery)).currentDetails ?? '';
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(details, /\*\*restore\*\* of target \*\*shop\*\*, \d+ steps done/);
    assert.match(details, /Step in flight: `stop-hook` since \d{4}-/);
    await handle.result();
    const summaries: string[] = [];
    let progressSignals = 0;
    for (const event of (await handle.fetchHistory()).events ?? []) {
      if (event.activityTaskScheduledEventAttributes) {
        const payload = event.userMetadata?.summary;
        summaries.push(payload?.data ? JSON.parse(Buffer.from(payload.data).toString()) : '(none)');
      }
      if (event.workflowExecutionSignaledEventAttributes?.signalName === 'progress') progressSignals++;
    }
    assert.ok(summaries.includes('resolve-target: target shop'), summaries.join(' | '));
    assert.ok(summaries.some((s) => /^fetch-and-verify: target shop, backup \d{8}T\d{6}Z-[0-9a-f]{6}, destination /.test(s)), summaries.join(' | '));
    assert.ok(summaries.includes('record-audit: target shop'), summaries.join(' | '));
    assert.ok(!summaries.includes('(none)'), 'every step has a summary');
    assert.ok(progressSignals >= 2, `byte progress reached the run (${progressSignals} signals)`);
    const finished = (await handle.query(workflowMetadataQuery)).currentDetails ?? '';
    assert.match(finished, /Finished: succeeded\./);
  });
});
