/**
 * PostgreSQL logical backups, specified against a real PostgreSQL 15 cluster, the real Temporal
 * dev server, versitygw S3 and a worker in a child process, driven through the CLI:
 *
 * - a dump restores into a new database with the same content (row counts and checksums of every
 *   table), in directory format (parallel, spooled) and custom format (streamed);
 * - in directory format every file pg_dump writes (table data, large objects, toc.dat) is stored
 *   whole, while pg_dump is still writing the others;
 * - every backup was verified by a scratch restore before its manifest was written, and the
 *   scratch database is gone;
 * - an existing database is replaced only with --yes or an approval, keeping the old one;
 * - bad input fails at once with a typed error that says what to fix, storing nothing;
 * - pg_restore errors fail the restore with pg_restore's own messages;
 * - the password (a canary) appears in no history, log line, CLI output or repository object.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { workflowMetadataQuery } from '@temporalio/workflow';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { loadConfig } from '../../src/config/load.js';
import { freePort } from '../../src/dev/ports.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { PostgresDumpManifest } from '../../src/repository/manifest.js';
import { timelineQuery } from '../../workflows/queries.js';
import { serialize, tamper } from '../helpers/assertions.js';
import { createLifeboat, type Lifeboat, type WorkerProcess } from '../helpers/lifeboat.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

const passwordEnv = 'LIFEBOAT_TEST_PG_PASSWORD';
const wrongPasswordEnv = 'LIFEBOAT_TEST_PG_WRONG_PASSWORD';
const unsetPasswordEnv = `LIFEBOAT_TEST_PG_UNSET_${randomBytes(4).toString('hex').toUpperCase()}`;

interface TableContent {
  rows: number;
  md5: string;
}

/** Row count and an order-independent-of-storage checksum of every user table of a database. */
async function databaseContent(pg: TestCluster, database: string): Promise<Record<string, TableContent>> {
  const client = await pg.cluster.connect({ database });
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    );
    const content: Record<string, TableContent> = {};
    for (const { name } of tables) {
      const { rows } = await client.query<{ rows: string; md5: string | null }>(
        `SELECT count(*) AS rows, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS md5 FROM ${name} t`,
      );
      content[name] = { rows: Number(rows[0]!.rows), md5: rows[0]!.md5 ?? '' };
    }
    const { rows: sequence } = await client.query<{ last: string }>('SELECT last_value::text AS last FROM public.orders_id_seq');
    content['sequence orders_id_seq'] = { rows: 1, md5: sequence[0]!.last };
    return content;
  } finally {
    await client.end();
  }
}

async function databases(pg: TestCluster): Promise<string[]> {
  return (await pg.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY 1')).map((r) => r.datname);
}

/** Every spelling of a secret that a careless encoder could produce. */
function assertAbsent(haystack: string, secret: string, where: string): void {
  const bytes = Buffer.from(secret);
  for (const spelling of [secret, bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''), encodeURIComponent(secret)]) {
    const at = haystack.indexOf(spelling);
    assert.equal(at, -1, `${where} contains the password (as ${JSON.stringify(spelling)}): ...${haystack.slice(Math.max(0, at - 200), at + 200)}...`);
  }
}


describe('PostgreSQL logical backups (pg_dump) as durable runbooks', () => {
  const canary = `canary-${randomBytes(10).toString('hex')}`;
  const password = `pw-${canary}`;
  const wrongPassword = `wrong-${canary}`;
  let stack: TestStack;
  let lifeboat: Lifeboat;
  let pg: TestCluster;
  let worker: WorkerProcess;
  const outputs: Array<{ what: string; text: string }> = [];
  let source: Record<string, TableContent>;
  let directoryBackup: { backupId: string };

  async function cli(args: string[]) {
    const result = await lifeboat.cli(args);
    if (process.env.DEBUG_PGDUMP) console.error(args.join(' '), result.stderr);
    outputs.push({ what: `lifeboat ${args.join(' ')}`, text: result.all ?? '' });
    return result;
  }

  async function manifestOf(repositoryName: string, target: string, backupId: string): Promise<PostgresDumpManifest> {
    const config = loadConfig(lifeboat.configPath);
    const manifest = await new Repository(repositoryName, openBackend(config.repositories[repositoryName]!)).readManifest(target, backupId);
    assert.equal(manifest.kind, 'postgres-dump');
    return manifest as PostgresDumpManifest;
  }

  const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;
  let receiver: Receiver;

  before(async () => {
    receiver = await startReceiver({ secret: webhookSecret });
    stack = await testStack();
    [lifeboat, pg] = await Promise.all([createLifeboat('pgdump', { stack }), createTestCluster()]);
    await pg.query(`ALTER ROLE postgres PASSWORD ${pg.client.escapeLiteral(password)}`);
    await pg.query('CREATE DATABASE shop');
    const shop = await pg.cluster.connect({ database: 'shop' });
    try {
      await shop.query(`
        CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), note text, placed timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
        INSERT INTO orders (customer, amount, note)
          SELECT 'customer ' || (i % 97), (i * 1.25)::numeric(12,2), CASE WHEN i % 10 = 0 THEN E'multi\\nline\\ttab \\\\ backslash é' ELSE repeat('x', i % 50) END
          FROM generate_series(1, 20000) i;
        CREATE TABLE "Line Items" (order_id int REFERENCES orders, sku text, qty int, gone text, total int GENERATED ALWAYS AS (qty * 2) STORED);
        INSERT INTO "Line Items" (order_id, sku, qty, gone) SELECT 1 + i % 20000, 'sku-' || i, i % 7, 'x' FROM generate_series(1, 30000) i;
        ALTER TABLE "Line Items" DROP COLUMN gone;
        CREATE TABLE empty_table (x int);
        CREATE INDEX ON "Line Items" (sku);
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
      `);
    } finally {
      await shop.end();
    }
    source = await databaseContent(pg, 'shop');

    // Many tables (pg_dump -j2 writes them two at a time while Lifeboat stores the finished ones) and large objects (blobs.toc, blob_<oid>.dat).
    await pg.query('CREATE DATABASE archive');
    const archive = await pg.cluster.connect({ database: 'archive' });
    try {
      const tables = Array.from({ length: 40 }, (_, i) => `CREATE TABLE part_${i} (id int, v text); INSERT INTO part_${i} SELECT g, md5(g::text) FROM generate_series(1, ${i * 250}) g;`);
      await archive.query(`${tables.join('\n')}
        CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, 200000) g;
        SELECT lo_from_bytea(1000 + g, convert_to(repeat('large object ' || g || ' ', 5000), 'UTF8')) FROM generate_series(1, 3) g;`);
    } finally {
      await archive.end();
    }

    const keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, randomBytes(32));
    const connection = { host: '127.0.0.1', port: pg.cluster.port, database: 'shop', user: 'postgres', passwordEnv };
    await lifeboat.writeConfig(
      lifeboat.baseConfig(
        {
          shop: { type: 'postgres', repositories: ['local', 's3'], connection, dump: { jobs: 2, verify: true } },
          'shop-custom': { type: 'postgres', repositories: ['s3'], connection, dump: { jobs: 1, verify: true } },
          archive: { type: 'postgres', repositories: ['local'], connection: { ...connection, database: 'archive' }, dump: { jobs: 2, verify: true } },
          'shop-wait': { type: 'postgres', repositories: ['local'], connection, dump: { jobs: 2, verify: false, approvalTimeoutSeconds: 3 } },
          'shop-unset': { type: 'postgres', repositories: ['local'], connection: { ...connection, passwordEnv: unsetPasswordEnv } },
          'shop-wrong': { type: 'postgres', repositories: ['local'], connection: { ...connection, passwordEnv: wrongPasswordEnv } },
          'shop-down': { type: 'postgres', repositories: ['local'], connection: { ...connection, port: await freePort() } },
        },
        {
          encryption: { keyFile },
          // Whoever can approve a restore is told it waits (a receiver that checks the signatures).
          notifications: { channels: { approvers: { type: 'webhook', url: `${receiver.url}/lifeboat`, secretEnv: 'LIFEBOAT_TEST_WEBHOOK_SECRET', events: ['approval.waiting'], targets: ['shop'] } } },
        },
      ),
    );
    // One worker in a child process for the whole file, logging all it can, with the passwords in its environment.
    worker = lifeboat.spawnWorker({ [passwordEnv]: password, [wrongPasswordEnv]: wrongPassword, LIFEBOAT_LOG_LEVEL: 'debug', LIFEBOAT_TEST_WEBHOOK_SECRET: webhookSecret });
  });

  after(async () => {
    await lifeboat?.close();
    await pg?.close();
    await stack?.close();
    await receiver?.close();
  });

  test('round trip, directory format (2 jobs, encrypted, fs + S3): verified by a scratch restore, restored into a new database with identical content', async () => {
    const backup = await cli(['backup', 'shop', '--wait', '--json']);
    assert.equal(backup.exitCode, 0, backup.all);
    const result = JSON.parse(backup.stdout) as { backupId: string; kind: string; dump: { format: string; tables: number; rows: number; verified: boolean }; timeline: Array<{ name: string; status: string }> };
    directoryBackup = result;
    assert.equal(result.kind, 'postgres-dump');
    assert.deepEqual(result.dump, { format: 'directory', tables: 3, rows: 50000, verified: true });
    assert.deepEqual(
      result.timeline.map((s) => [s.name, s.status]),
      [['resolve-target', 'completed'], ['dump-and-upload', 'completed'], ['verify-restore', 'completed'], ['drop-scratch', 'completed'], ['write-manifest', 'completed'], ['verify-stored', 'completed']],
    );
    assert.deepEqual((await databases(pg)).filter((name) => name.startsWith('lifeboat_')), [], 'the scratch database was dropped');

    const manifest = await manifestOf('local', 'shop', result.backupId);
    assert.equal(manifest.dump.format, 'directory');
    assert.ok(manifest.dump.verification, 'the manifest records the verification');
    assert.equal(manifest.encryption?.algorithm, 'aes-256-gcm-chunked');
    const tables = Object.fromEntries(manifest.dump.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));
    assert.deepEqual(tables, { 'public.orders': 20000, 'public.Line Items': 30000, 'public.empty_table': 0 });
    assert.equal(manifest.dump.tables.find((t) => t.name === 'Line Items')?.copy, 'COPY public."Line Items" (order_id, sku, qty) FROM stdin;\n');
    for (const name of ['local', 's3']) {
      const repository = new Repository(name, openBackend(loadConfig(lifeboat.configPath).repositories[name]!));
      const stored = (await repository.backend.list(`${repository.backupDir('shop', result.backupId)}/`)).map((o) => o.key.split(`${result.backupId}/`)[1]).sort();
      assert.deepEqual(stored, [...manifest.objects.map((o) => o.name), 'manifest.json'].sort(), `repository ${name} holds exactly the manifest's objects`);
      assert.ok(stored.every((key) => key === 'manifest.json' || /^attempt-1\/dump\/(toc|\d+)\.dat\.zst\.enc$/.test(key!)), stored.join(', '));
    }

    const restore = await cli(['restore', 'shop', '--wait', '--json']);
    assert.equal(restore.exitCode, 0, restore.all);
    const restored = JSON.parse(restore.stdout) as { restoredTo: string; safetyCopy: string | null; backupId: string };
    assert.equal(restored.backupId, result.backupId, 'the newest backup');
    assert.match(restored.restoredTo, /^shop_restored_\d{8}_\d{6}$/);
    assert.equal(restored.safetyCopy, null);
    assert.deepEqual(await databaseContent(pg, restored.restoredTo), source, 'same tables, rows and checksums');
    assert.deepEqual((await databases(pg)).filter((name) => name.startsWith('lifeboat_')), [], 'no staging database left');
  });

  test('a damaged copy in the first repository: the restore reads the dump from the next one (s3), whole', async () => {
    const local = new Repository('local', openBackend(loadConfig(lifeboat.configPath).repositories.local!));
    const manifest = await manifestOf('local', 'shop', directoryBackup.backupId);
    const key = local.objectKey('shop', directoryBackup.backupId, manifest.objects.at(-1)!.name);
    const good = await buffer(await local.backend.get(key));
    await tamper(local, key);
    try {
      const restored = await lifeboat.run('restore', { target: 'shop', backupId: directoryBackup.backupId, into: 'shop from s3' });
      assert.equal(restored.restoredTo, 'shop from s3');
      assert.match(restored.timeline.map((step) => step.detail ?? '').join('\n'), /from s3, sha256 ok/);
      assert.deepEqual(await databaseContent(pg, 'shop from s3'), source);
    } finally {
      await local.backend.put(key, Readable.from([good]));
    }
  });

  test('round trip, custom format (1 job, streamed to S3 with no local spool): same table fingerprints, restored with --into a new database', async () => {
    const { backupId } = await lifeboat.run('backup', { target: 'shop-custom' });
    const manifest = await manifestOf('s3', 'shop-custom', backupId);
    assert.equal(manifest.dump.format, 'custom');
    assert.deepEqual(manifest.objects.map((o) => o.name), ['attempt-1/dump/archive.pgdump.zst.enc']);
    const directory = await manifestOf('local', 'shop', directoryBackup.backupId);
    const fingerprints = (m: PostgresDumpManifest) => m.dump.tables.map((t) => [t.schema, t.name, t.rows, t.sha256]).sort();
    assert.deepEqual(fingerprints(manifest), fingerprints(directory), 'both formats hold the same COPY text of every table');

    const restore = await cli(['restore', 'shop-custom', '--into', 'shop copy', '--wait', '--json']);
    assert.equal(restore.exitCode, 0, restore.all);
    assert.equal((JSON.parse(restore.stdout) as { restoredTo: string }).restoredTo, 'shop copy');
    assert.deepEqual(await databaseContent(pg, 'shop copy'), source);
  });

  test('many tables and large objects, directory format: every file pg_dump writes is stored whole, each table fingerprinted; the restore has the large objects', async () => {
    const { backupId } = (await lifeboat.run('backup', { target: 'archive' })) as { backupId: string };
    const manifest = await manifestOf('local', 'archive', backupId);
    assert.equal(manifest.dump.tables.length, 41);
    assert.equal(manifest.dump.tables.find((t) => t.name === 'big')?.rows, 200000);
    assert.equal(manifest.dump.tables.find((t) => t.name === 'part_39')?.rows, 39 * 250);
    const names = manifest.dump.files.map((f) => f.name);
    assert.ok(names.includes('toc.dat') && names.includes('blobs.toc'), names.join(', '));
    assert.deepEqual(names.filter((name) => name.startsWith('blob_')), ['blob_1001.dat', 'blob_1002.dat', 'blob_1003.dat']);
    assert.deepEqual(manifest.objects.map((o) => o.name), manifest.dump.files.map((f) => f.object), 'one object per file, in the same order');
    assert.deepEqual(names, [...names].sort(), 'files in name order');

    const restored = (await lifeboat.run('restore', { target: 'archive', into: 'archive_copy' })) as { restoredTo: string };
    const copy = await pg.cluster.connect({ database: restored.restoredTo });
    try {
      const { rows } = await copy.query<{ oid: number; text: string }>("SELECT oid::int AS oid, convert_from(lo_get(oid), 'UTF8') AS text FROM pg_largeobject_metadata ORDER BY oid");
      assert.deepEqual(
        rows.map((r) => [r.oid, r.text]),
        [1, 2, 3].map((g) => [1000 + g, `large object ${g} `.repeat(5000)]),
      );
    } finally {
      await copy.end();
    }
  });

  test('an existing database is replaced only with an approval or --yes; without one nothing changes', async () => {
    const mark = async (database: string, value: string) => {
      const client = await pg.cluster.connect({ database });
      await client.query(`CREATE TABLE IF NOT EXISTS marker (v text); DELETE FROM marker; INSERT INTO marker VALUES ('${value}')`);
      await client.end();
    };
    const markOf = async (database: string) => {
      const client = await pg.cluster.connect({ database });
      try {
        return (await client.query<{ v: string }>('SELECT v FROM marker')).rows[0]?.v;
      } finally {
        await client.end();
      }
    };
    await pg.query('CREATE DATABASE live');
    await mark('live', 'old');
    await lifeboat.run('backup', { target: 'shop-wait' });

    // No --yes, nobody approves within approvalTimeoutSeconds (3 s): the run ends, live untouched.
    const refused = await cli(['restore', 'shop-wait', '--into', 'live', '--wait']);
    assert.equal(refused.exitCode, 2, refused.all);
    assert.match(refused.stderr, /\(NotApproved\).*needs an approval/);
    assert.equal(await markOf('live'), 'old', 'the existing database was not touched');
    assert.deepEqual((await databases(pg)).filter((name) => name.startsWith('lifeboat_') || name.includes('safety')), [], 'the restored copy was dropped');

    // An approval (the Update the CLI sends) lets it replace live, keeping the old one.
    const handle = await lifeboat.start('restore', { target: 'shop', into: 'live' });
    for (const deadline = Date.now() + 30_000; ; ) {
      const steps = await handle.query(timelineQuery);
      if (steps.some((s) => s.name === 'await-approval' && s.status === 'running')) break;
      assert.ok(Date.now() < deadline, `no approval was awaited: ${JSON.stringify(steps)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The approvers were told, with how to answer; the run's current details say the same.
    const [told] = (await receiver.waitForAccepted(1)).map((r) => JSON.parse(r.body) as { type: string; data: { run: { workflowId: string }; action: string; answer: { approve: string; reject: string } } });
    assert.equal(told!.type, 'approval.waiting');
    assert.equal(told!.data.run.workflowId, handle.workflowId);
    assert.match(told!.data.action, /^replace database live by the restored backup /);
    assert.deepEqual([told!.data.answer.approve, told!.data.answer.reject], [`lifeboat approve ${handle.workflowId}`, `lifeboat approve ${handle.workflowId} --reject`]);
    assert.match((await handle.query(workflowMetadataQuery)).currentDetails ?? '', /\*\*Waiting for an approval\*\* to replace database live .*`lifeboat approve /);
    const approve = await cli(['approve', handle.workflowId, '--by', 'the test']);
    assert.equal(approve.exitCode, 0, approve.all);
    const result = (await handle.result()) as { restoredTo: string; safetyCopy: string };
    assert.equal(result.restoredTo, 'live');
    assert.match(result.safetyCopy, /^live_lifeboat_safety_\d{8}_\d{6}$/);
    assert.deepEqual(await databaseContent(pg, 'live'), source);
    await pg.query(`ALTER DATABASE ${result.safetyCopy} WITH ALLOW_CONNECTIONS true`);
    assert.equal(await markOf(result.safetyCopy), 'old', 'the replaced database is kept whole');
    const timeline = (await handle.query(timelineQuery)).find((s) => s.name === 'await-approval');
    assert.equal(timeline?.detail, 'approved by the test');
    const audit = JSON.parse((await cli(['audit', 'shop', '--json'])).stdout) as Array<{ workflowId: string; approvals: Array<{ decision: string; by: string }> }>;
    assert.deepEqual(audit.find((record) => record.workflowId === handle.workflowId)?.approvals.map(({ decision, by }) => ({ decision, by })), [{ decision: 'approved', by: 'the test' }], 'the audit record says who approved');

    // --yes replaces without waiting.
    await mark('live', 'newer');
    const yes = await cli(['restore', 'shop', '--into', 'live', '--yes', '--wait', '--json']);
    assert.equal(yes.exitCode, 0, yes.all);
    const replaced = JSON.parse(yes.stdout) as { safetyCopy: string };
    assert.ok(replaced.safetyCopy);
    assert.deepEqual(await databaseContent(pg, 'live'), source);
  });

  test('bad input: unset password variable, wrong password, unreachable server, unknown backup id: typed, quick, nothing stored', async () => {
    const unset = await cli(['backup', 'shop-unset', '--wait']);
    assert.equal(unset.exitCode, 2, unset.all);
    assert.match(unset.stderr, new RegExp(`\\(CredentialsUnavailable\\).*${unsetPasswordEnv}`));

    const wrong = await cli(['backup', 'shop-wrong', '--wait']);
    assert.equal(wrong.exitCode, 2, wrong.all);
    assert.match(wrong.stderr, /\(PostgresAuthFailed\).*127\.0\.0\.1:\d+/);
    assert.match(wrong.stderr, new RegExp(`\\$${wrongPasswordEnv}`), 'names the variable to fix');

    const down = await cli(['backup', 'shop-down', '--wait']);
    assert.equal(down.exitCode, 2, down.all);
    assert.match(down.stderr, /\(PostgresConnectionFailed\): cannot reach PostgreSQL at 127\.0\.0\.1:\d+/);

    const missing = await cli(['restore', 'shop', '--backup', '20000101T000000Z-000000', '--wait']);
    assert.equal(missing.exitCode, 2, missing.all);
    assert.match(missing.stderr, /\(BackupNotFound\)/);

    const local = join(lifeboat.dir, 'repository');
    for (const target of ['shop-unset', 'shop-wrong', 'shop-down']) {
      assert.deepEqual(await readdir(join(local, target, 'backups')).catch(() => []), [], `nothing stored for ${target}`);
    }
  });

  test('pg_restore errors fail the restore with pg_restore\'s messages, and the half-restored database is dropped', async () => {
    // A table owned by a role that is gone by the time the backup is restored.
    await pg.query('CREATE ROLE shop_owner');
    const shop = await pg.cluster.connect({ database: 'shop' });
    await shop.query('CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO shop_owner');
    await lifeboat.run('backup', { target: 'shop' });
    await shop.query('DROP TABLE owned');
    await shop.end();
    await pg.query('DROP ROLE shop_owner');

    const before = await databases(pg);
    const failed = await cli(['restore', 'shop', '--into', 'never_restored', '--wait']);
    assert.equal(failed.exitCode, 1, failed.all);
    assert.match(failed.stderr, /\(RestoreFailed\): pg_restore into .* exited with status 1/);
    assert.match(failed.stderr, /role "shop_owner" does not exist/, 'pg_restore\'s own message');
    assert.deepEqual(await databases(pg), before, 'neither the target nor a staging database is left');
  });

  test('the password appears in no history, worker log line, CLI output or repository object', async () => {
    worker.kill('SIGTERM');
    const { output } = await worker.exited;
    outputs.push({ what: 'worker', text: output });
    assert.match(output, /PostgresAuthFailed/, 'the worker logged the authentication failure');
    for (const { what, text } of outputs) assertAbsent(text, canary, `output of ${what}`);

    const infos: WorkflowExecutionInfo[] = [];
    for await (const info of lifeboat.client.workflow.list({ query: `TaskQueue = '${lifeboat.settings.taskQueue}'` })) infos.push(info);
    assert.ok(infos.length >= 10, `this file's runs are listed (${infos.length})`);
    let searched = '';
    for (const info of infos) {
      const handle = lifeboat.client.workflow.getHandle(info.workflowId, info.runId);
      const text = serialize({ history: await handle.fetchHistory(), raw: (await handle.describe()).raw });
      assertAbsent(text, canary, `workflow ${info.workflowId}`);
      searched += text;
    }
    assert.ok(searched.includes(passwordEnv) && searched.includes(wrongPasswordEnv), 'payloads were searched as text (they name the variables)');

    const local = join(lifeboat.dir, 'repository');
    const files = (await readdir(local, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    assert.ok(files.some((f) => f.name === 'manifest.json'));
    for (const file of files) assertAbsent((await readFile(join(file.parentPath, file.name))).toString('latin1'), canary, join(file.parentPath, file.name));
  });
});
