/**
 * Secrets stay secret. The config only NAMES the environment variables that hold S3 credentials;
 * the worker reads the values when it opens a repository. This test puts a unique canary string
 * in the secret access key (and in a deliberately wrong one), runs every runbook through the CLI
 * against a worker in a child process, then searches everything Temporal stored (histories,
 * search attributes, memos), every line the worker and the CLI printed, and every object in the
 * repositories: the canary must appear nowhere.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { startS3Server, type S3Server } from '../../src/dev/s3-server.js';
import { serialize } from '../helpers/assertions.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { testStack, type TestStack } from '../helpers/stack.js';

const env = {
  accessKeyId: 'LIFEBOAT_SECRETS_TEST_ACCESS_KEY_ID',
  secretAccessKey: 'LIFEBOAT_SECRETS_TEST_SECRET_ACCESS_KEY',
  wrongSecret: 'LIFEBOAT_SECRETS_TEST_WRONG_SECRET',
} as const;
const bucket = 'vault';


/** Every spelling of a secret that a careless encoder could produce. */
function spellings(secret: string): string[] {
  const bytes = Buffer.from(secret);
  return [secret, bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('base64url'), encodeURIComponent(secret)];
}

function assertAbsent(haystack: string, secret: string, where: string): void {
  for (const spelling of spellings(secret)) {
    const at = haystack.indexOf(spelling);
    assert.equal(at, -1, `${where} contains the secret (as ${JSON.stringify(spelling)}): ...${haystack.slice(Math.max(0, at - 200), at + 200)}...`);
  }
}

describe('a canary secret in the S3 credentials never appears in histories, logs, CLI output or repositories', () => {
  const canary = `canary-${randomBytes(12).toString('hex')}`;
  /** Both contain the canary: the right secret and a wrong one that provokes an authentication error. */
  const secretAccessKey = `right-${canary}-key`;
  const wrongSecretAccessKey = `wrong-${canary}-key`;
  const accessKeyId = `lifeboat-secrets-${randomBytes(4).toString('hex')}`;
  const encryptionKey = randomBytes(32);
  const secretEnv = { [env.accessKeyId]: accessKeyId, [env.secretAccessKey]: secretAccessKey, [env.wrongSecret]: wrongSecretAccessKey };

  let stack: TestStack;
  let lifeboat: Lifeboat;
  let s3: S3Server;
  let dbPath: string;
  let startedAt: Date;
  const outputs: Array<{ what: string; text: string }> = [];

  /** Runs the CLI with the credentials in its environment (as an operator would) and keeps everything it printed. */
  async function cli(args: string[]) {
    const result = await lifeboat.cli(args, { env: secretEnv });
    outputs.push({ what: `lifeboat ${args.join(' ')}`, text: result.all ?? '' });
    return result;
  }

  before(async () => {
    assert.equal(process.env[env.secretAccessKey], undefined, 'the test process itself does not hold the secret');
    stack = await testStack({ s3: false });
    lifeboat = await createLifeboat('secrets', { stack });
    s3 = await startS3Server({ dataDir: join(lifeboat.dir, 's3-server'), accessKeyId, secretAccessKey, buckets: [bucket] });
    dbPath = join(lifeboat.dir, 'shop.sqlite');
    createDatabase(dbPath, 1);
    const keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, encryptionKey);
    const vault = { type: 's3', endpoint: s3.endpoint, bucket, prefix: 'lifeboat/', accessKeyIdEnv: env.accessKeyId, secretAccessKeyEnv: env.secretAccessKey, partSizeMiB: 5 };
    await lifeboat.writeConfig({
      repositories: {
        local: { type: 'fs', path: join(lifeboat.dir, 'repository') },
        vault,
        'vault-wrong': { ...vault, secretAccessKeyEnv: env.wrongSecret },
      },
      targets: {
        shop: {
          type: 'sqlite',
          path: dbPath,
          repositories: ['local', 'vault'],
          drill: { smokeChecks: [{ name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 }] },
        },
        'shop-wrong': { type: 'sqlite', path: dbPath, repositories: ['vault-wrong'] },
      },
      encryption: { keyFile },
      temporal: { address: stack.temporalAddress, namespace: 'default', taskQueue: lifeboat.settings.taskQueue },
    });
    startedAt = new Date();
  });

  after(async () => {
    await lifeboat?.close();
    await s3?.stop();
    await stack?.close();
  });

  test('every runbook, a failing one and an authentication failure run through the CLI against a child worker', async () => {
    // The worker logs everything it can (debug), so that the search below covers as much as possible.
    const worker = lifeboat.spawnWorker({ ...secretEnv, LIFEBOAT_LOG_LEVEL: 'debug' });
    try {
      const backup = await cli(['backup', 'shop', '--wait', '--json']);
      assert.equal(backup.exitCode, 0, backup.all);
      const backupId = (JSON.parse(backup.stdout) as { backupId: string }).backupId;

      const listed = await cli(['backups', 'shop', '--json']);
      assert.equal(listed.exitCode, 0, listed.all);
      const rows = JSON.parse(listed.stdout) as Array<{ id: string; repository: string }>;
      assert.deepEqual(rows.filter((r) => r.id === backupId).map((r) => r.repository).sort(), ['local', 'vault']);

      const drill = await cli(['drill', 'shop', '--wait', '--json']);
      assert.equal(drill.exitCode, 0, drill.all);
      assert.equal((JSON.parse(drill.stdout) as { passed: boolean }).passed, true);

      const into = await cli(['restore', 'shop', '--into', join(lifeboat.dir, 'restored.sqlite'), '--wait', '--json']);
      assert.equal(into.exitCode, 0, into.all);
      const inPlace = await cli(['restore', 'shop', '--backup', backupId, '--yes', '--wait', '--json']);
      assert.equal(inPlace.exitCode, 0, inPlace.all);

      const missing = await cli(['restore', 'shop', '--backup', '20000101T000000Z-000000', '--into', join(lifeboat.dir, 'never.sqlite'), '--wait']);
      assert.equal(missing.exitCode, 2, missing.all);
      assert.match(missing.stderr, /\(BackupNotFound\)/);

      // The server rejects the signature: the error names the variables, never their values.
      const wrong = await cli(['backup', 'shop-wrong', '--wait', '--json']);
      assert.equal(wrong.exitCode, 2, wrong.all);
      assert.match(wrong.stderr, /\(CredentialsUnavailable\): S3 rejected the credentials/);
      assert.match(wrong.stderr, new RegExp(`\\$${env.accessKeyId}/\\$${env.wrongSecret}`), 'the message names the variables to check');
      const wrongList = await cli(['backups', 'shop-wrong', '--json']);
      assert.notEqual(wrongList.exitCode, 0, wrongList.all);
      assert.match(wrongList.stderr, /CredentialsUnavailable/);
    } finally {
      worker.kill('SIGTERM');
      const { output } = await worker.exited;
      outputs.push({ what: 'worker', text: output });
    }
    const workerOutput = outputs.find((o) => o.what === 'worker')!.text;
    assert.match(workerOutput, /worker polling task queue/, 'the worker output was captured');
    assert.match(workerOutput, /CredentialsUnavailable/, 'the worker logged the authentication failure');
  });

  test('no workflow history, search attribute or memo in the namespace contains the secret', async () => {
    // backup, drill, restore --into, restore in place, restore of a missing backup, backup with the wrong secret.
    const expectedRuns = 6;
    let infos: WorkflowExecutionInfo[] = [];
    const ours = (info: WorkflowExecutionInfo) => info.taskQueue === lifeboat.settings.taskQueue && info.startTime >= startedAt;
    for (const deadline = Date.now() + 15_000; ; ) {
      infos = [];
      for await (const info of lifeboat.client.workflow.list()) infos.push(info);
      if (infos.filter(ours).length >= expectedRuns || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250)); // visibility is eventually consistent
    }
    assert.equal(infos.filter(ours).length, expectedRuns, `this test's runs are listed in the namespace (of ${infos.length})`);

    let searched = '';
    for (const info of infos) {
      const handle = lifeboat.client.workflow.getHandle(info.workflowId, info.runId);
      const [history, description] = await Promise.all([handle.fetchHistory(), handle.describe()]);
      const text = serialize({ info: { ...info, typedSearchAttributes: info.typedSearchAttributes.getAll() }, raw: description.raw, history });
      assertAbsent(text, canary, `workflow ${info.workflowId} (${info.type})`);
      assertAbsent(text, encryptionKey.toString('hex'), `workflow ${info.workflowId} (encryption key)`);
      if (ours(info)) searched += text;
    }
    // The search would see a leak: payloads are decoded, and they hold the variable NAMES.
    assert.ok(searched.includes(env.secretAccessKey) && searched.includes(env.wrongSecret), 'payloads were searched as text');
    assert.match(searched, /CredentialsUnavailable/, 'the failed run is among those searched');
    assert.match(searched, /LifeboatTarget/, 'search attributes are among those searched');
  });

  test('no line the worker or the CLI printed contains the secret', () => {
    assert.ok(outputs.length >= 9, `captured ${outputs.length} outputs`);
    for (const { what, text } of outputs) assertAbsent(text, canary, `output of ${what}`);
  });

  test('no manifest, report or other object in the repositories contains the secret', async () => {
    const local = join(lifeboat.dir, 'repository');
    const files = (await readdir(local, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    assert.ok(files.some((f) => f.name === 'manifest.json'), 'the fs repository holds a manifest');
    for (const file of files) {
      const path = join(file.parentPath, file.name);
      assertAbsent((await readFile(path)).toString('latin1'), canary, path);
    }

    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    try {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (listed.Contents ?? []).map((o) => o.Key!);
      assert.ok(keys.some((k) => k.endsWith('/manifest.json')), `the S3 repository holds a manifest: ${keys.join(', ')}`);
      assert.ok(keys.some((k) => k.includes('/reports/')), 'and a drill report');
      for (const key of keys) {
        const body = await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray();
        assertAbsent(Buffer.from(body).toString('latin1'), canary, `s3://${bucket}/${key}`);
      }
    } finally {
      client.destroy();
    }
  });
});
