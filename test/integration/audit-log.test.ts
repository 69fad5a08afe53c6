/**
 * The audit log in real repositories (a directory and S3 on loopback): append-only, one immutable
 * record per finished run, read back by month with its checksum checked, and `lifeboat audit`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { AuditLog } from '../../src/audit/log.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { projectRoot } from '../../src/dev/tools.js';
import { LifeboatError } from '../../src/errors.js';
import type { Backend } from '../../src/repository/backend.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { s3AccessKeyEnv, s3SecretKeyEnv } from '../helpers/lifeboat.js';
import { sharedOrOwnS3, type TestS3 } from '../helpers/stack.js';

function record(overrides: Partial<AuditRecord>): AuditRecord {
  return {
    runbook: 'backup',
    target: 'orders',
    workflowId: 'backup-orders-20261206T020000Z',
    runId: '0b8c6a52-5f0e-4d8e-9a43-3d1c2f0e7a01',
    requestedBy: { via: 'schedule', schedule: 'lifeboat/orders/nightly' },
    startedAt: '2026-12-06T02:00:00.000Z',
    finishedAt: '2026-12-06T02:00:09.500Z',
    result: 'succeeded',
    failure: null,
    backupId: '20261206T020000Z-1f4a2b',
    sizes: { sourceBytes: 8_388_608, storedBytes: 2_210_342 },
    manifestSha256: 'a'.repeat(64),
    approvals: [],
    ...overrides,
  };
}

describe('the audit log, in a directory and in S3', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let dir: string;
  let s3: TestS3;
  let configPath: string;
  let fsRepository: Repository;
  let s3Repository: Repository;
  const env = () => ({ [s3AccessKeyEnv]: s3.accessKeyId, [s3SecretKeyEnv]: s3.secretAccessKey });

  const november = record({ workflowId: 'backup-orders-20261130T020000Z', startedAt: '2026-11-30T02:00:00.000Z', finishedAt: '2026-11-30T02:00:08.000Z', backupId: '20261130T020000Z-aaaaaa' });
  const failed = record({
    runbook: 'restore',
    workflowId: 'restore-orders-20261205T140000Z',
    requestedBy: { via: 'cli', user: 'ops', host: 'db1' },
    startedAt: '2026-12-05T14:00:00.000Z',
    finishedAt: '2026-12-05T14:01:00.000Z',
    result: 'failed',
    failure: { type: 'NotApproved', message: 'replacing database orders was rejected by alice' },
    sizes: { sourceBytes: null, storedBytes: null },
    approvals: [{ decision: 'rejected', by: 'alice', at: '2026-12-05T14:00:50.000Z' }],
  });
  const december = record({});

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-audit-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    s3 = await sharedOrOwnS3(cleanups);
    const prefix = `audit-${Date.now()}/`;
    const repositories = {
      local: { type: 'fs', path: join(dir, 'repository') },
      s3: { type: 's3', endpoint: s3.endpoint, bucket: s3.bucket, prefix, accessKeyIdEnv: s3AccessKeyEnv, secretAccessKeyEnv: s3SecretKeyEnv },
    } as const;
    configPath = join(dir, 'lifeboat.config.yaml');
    await writeFile(
      configPath,
      stringify({
        repositories,
        targets: { orders: { type: 'sqlite', path: join(dir, 'orders.sqlite'), repositories: ['local', 's3'] }, other: { type: 'sqlite', path: join(dir, 'o.sqlite'), repositories: ['local'] } },
      }),
    );
    fsRepository = new Repository('local', openBackend(repositories.local));
    s3Repository = new Repository('s3', openBackend({ ...repositories.s3, region: 'us-east-1', forcePathStyle: true, partSizeMiB: 8 }, env()));
    for (const entry of [november, failed, december]) {
      for (const repository of [fsRepository, s3Repository]) assert.equal((await new AuditLog(repository).append(entry)).written, true);
    }
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test('a record is written once: the same record again is a no-op, another one under its key is refused and the first stays', async () => {
    for (const repository of [fsRepository, s3Repository]) {
      const log = new AuditLog(repository);
      assert.deepEqual(await log.append(december), { key: 'orders/audit/2026/12/20261206T020009.500Z-backup-orders-20261206T020000Z.json', written: false });
      await assert.rejects(log.append({ ...december, result: 'failed' }), (error: Error) => error instanceof LifeboatError && error.type === 'AuditRecordConflict');
      const { records } = await log.list('orders');
      assert.deepEqual(records.map((r) => r.record), [november, failed, december], `${repository.name}: oldest first, the first record kept`);
    }
  });

  test('reading since a time lists only the months from then on', async () => {
    const listed: string[] = [];
    const spy: Backend = { ...s3Repository.backend, location: s3Repository.backend.location, list: (prefix) => (listed.push(prefix), s3Repository.backend.list(prefix)) };
    const log = new AuditLog(new Repository('s3', Object.setPrototypeOf(spy, Object.getPrototypeOf(s3Repository.backend) as object) as Backend));
    const { records } = await log.list('orders', { since: new Date('2026-12-05T00:00:00Z'), now: new Date('2026-12-06T12:00:00Z') });
    assert.deepEqual(listed, ['orders/audit/2026/12/']);
    assert.deepEqual(records.map((r) => r.record.workflowId), [failed.workflowId, december.workflowId]);
  });

  test('lifeboat audit prints one line per run from every repository, filtered by --since; --json gives the records', async () => {
    const cli = (args: string[]) => execa(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', configPath, 'audit', ...args], { reject: false, env: env() });
    const table = await cli(['orders']);
    assert.equal(table.exitCode, 0, table.stderr);
    const lines = table.stderr.trim().split('\n');
    assert.match(lines[0]!, /^FINISHED\s+TARGET\s+RUNBOOK\s+RESULT\s+REQUESTED BY\s+BACKUP\s+APPROVALS\s+WORKFLOW$/);
    assert.equal(lines.length, 4);
    assert.match(lines[2]!, /^2026-12-05T14:01:00Z\s+orders\s+restore\s+FAILED NotApproved\s+cli:ops@db1\s+20261206T020000Z-1f4a2b\s+rejected by alice\s+restore-orders-20261205T140000Z$/);
    assert.match(lines[3]!, /schedule:lifeboat\/orders\/nightly/);

    const json = await cli(['orders', '--since', '2026-12-01', '--json']);
    assert.equal(json.exitCode, 0, json.stderr);
    const entries = JSON.parse(json.stdout) as Array<AuditRecord & { key: string; repositories: string[] }>;
    assert.deepEqual(entries.map((e) => e.workflowId), [failed.workflowId, december.workflowId]);
    assert.deepEqual(entries[1]!.repositories, ['local', 's3'], 'each record is in both repositories');
    const { key, repositories, ...stored } = entries[1]!;
    assert.equal(key, 'orders/audit/2026/12/20261206T020009.500Z-backup-orders-20261206T020000Z.json');
    assert.deepEqual(repositories, ['local', 's3']);
    assert.deepEqual(stored, december);

    const none = await cli(['other']);
    assert.equal(none.exitCode, 0);
    assert.match(none.stderr, /no finished runs of "other" in the audit log/);

    const bad = await cli(['orders', '--since', 'last tuesday']);
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /--since "last tuesday" is neither an ISO 8601 date or time/);
  });

  test('a record changed after it was written is reported as damaged (exit 1), not dropped in silence', async () => {
    const path = join(dir, 'repository', 'orders', 'audit', '2026', '11', '20261130T020008.000Z-backup-orders-20261130T020000Z.json');
    const original = await readFile(path, 'utf8');
    await writeFile(path, original.replace('"succeeded"', '"failed"'));
    try {
      const result = await execa(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', configPath, 'audit', 'orders'], { reject: false, env: env() });
      assert.equal(result.exitCode, 1);
      assert.match(result.stderr, /warning: audit record orders\/audit\/2026\/11\/20261130T020008\.000Z-backup-orders-20261130T020000Z\.json in repository "local" is damaged: its sha256 is [0-9a-f]{64}, the record says [0-9a-f]{64}: it was changed after it was written/);
      assert.match(result.stderr, /backup-orders-20261130T020000Z/, 'the intact copy in S3 is still listed');
    } finally {
      await writeFile(path, original);
    }
  });
});
