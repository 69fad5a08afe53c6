/**
 * secrets targets keep their secrets. A file with a unique name and unique content (the canaries)
 * sits in a secrets root; every runbook runs through the CLI against a worker in a child process
 * logging at debug level (a backup, a listing, restores --into and in place, one of them from the
 * second repository because the first holds a damaged copy, a drill whose commands print the
 * secret, one passing and one failing). Then every workflow history of the run, every line the
 * worker and the CLI printed, and every object in both repositories are searched: neither canary
 * appears anywhere. Restored files have their recorded modes; a backup without a key is refused
 * before anything is read.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { runbookFailure } from '../../src/client.js';
import { serialize } from '../helpers/assertions.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

/** Every spelling of a value that a careless encoder could produce. */
function spellings(secret: string): string[] {
  const bytes = Buffer.from(secret);
  return [secret, bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('base64url'), encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)];
}

function assertAbsent(haystack: string, secret: string, where: string): void {
  for (const spelling of spellings(secret)) {
    const at = haystack.indexOf(spelling);
    assert.equal(at, -1, `${where} contains a canary (as ${JSON.stringify(spelling)}): ...${haystack.slice(Math.max(0, at - 200), at + 200)}...`);
  }
}

describe('a secrets target: the name and content of a canary file appear in no history, log, output or repository object', () => {
  const canaryName = `canary-${randomBytes(8).toString('hex')}-name.pem`;
  const canaryContent = `canary-${randomBytes(12).toString('hex')}-content`;
  let lifeboat: Lifeboat;
  let vault: string;
  let keyFile: string;
  let startedAt: Date;
  let targets: Record<string, Record<string, unknown>>;
  const outputs: Array<{ what: string; text: string }> = [];

  async function cli(args: string[]) {
    const result = await lifeboat.cli(args);
    outputs.push({ what: `lifeboat ${args.join(' ')}`, text: result.all ?? '' });
    return result;
  }

  before(async () => {
    lifeboat = await createLifeboat('secrets-canary');
    vault = join(lifeboat.dir, 'live', 'vault');
    await mkdir(join(vault, 'db'), { recursive: true });
    await writeFile(join(vault, canaryName), canaryContent);
    await chmod(join(vault, canaryName), 0o600);
    await writeFile(join(vault, 'db', 'password'), randomBytes(24).toString('base64'));
    await chmod(join(vault, 'db', 'password'), 0o640);
    await chmod(vault, 0o700);
    keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, randomBytes(32));
    targets = {
      vault: {
        type: 'secrets',
        roots: [vault],
        repositories: ['local', 's3'],
        drill: {
          commands: [
            { name: 'reads every secret', run: 'cat vault/*.pem vault/db/password' },
            { name: 'prints a secret and fails', run: 'cat vault/*.pem; ls vault; exit 4' },
          ],
        },
      },
    };
    await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
    startedAt = new Date();
  });

  after(async () => {
    await lifeboat?.close();
  });

  test('every runbook runs through the CLI against a child worker logging at debug level', async () => {
    const worker = lifeboat.spawnWorker({ LIFEBOAT_LOG_LEVEL: 'debug' });
    try {
      const backup = await cli(['backup', 'vault', '--wait', '--json']);
      assert.equal(backup.exitCode, 0, backup.all);
      const { backupId, secrets } = JSON.parse(backup.stdout) as { backupId: string; secrets: { entries: number; changedWhileRead: number } };
      assert.deepEqual(secrets, { entries: 4, parts: 1, changedWhileRead: 0, skipped: 0 } as unknown as typeof secrets);

      const listed = await cli(['backups', 'vault', '--json']);
      assert.equal(listed.exitCode, 0, listed.all);

      const into = join(lifeboat.dir, 'restored');
      const restored = await cli(['restore', 'vault', '--into', into, '--wait', '--json']);
      assert.equal(restored.exitCode, 0, restored.all);
      assert.equal(await readFile(join(into, 'vault', canaryName), 'utf8'), canaryContent);
      assert.equal((await stat(join(into, 'vault', canaryName))).mode & 0o777, 0o600, 'restored with its recorded mode');
      assert.equal((await stat(join(into, 'vault', 'db', 'password'))).mode & 0o777, 0o640);
      assert.equal((await stat(join(into, 'vault'))).mode & 0o777, 0o700);

      // The local copy of the part is damaged: the restore takes the S3 copy, and says so without a name.
      const part = join(lifeboat.dir, 'repository', 'vault', 'backups', backupId, 'attempt-1', 'part-000000.tar.zst.enc');
      const bytes = await readFile(part);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      await writeFile(part, bytes);
      const fromS3 = await cli(['restore', 'vault', '--into', join(lifeboat.dir, 'from-s3'), '--wait', '--json']);
      assert.equal(fromS3.exitCode, 0, fromS3.all);
      assert.match(fromS3.stdout, /via [^"]*s3/);

      await writeFile(join(vault, canaryName), 'changed since the backup');
      const inPlace = await cli(['restore', 'vault', '--backup', backupId, '--yes', '--wait', '--json']);
      assert.equal(inPlace.exitCode, 0, inPlace.all);
      assert.equal(await readFile(join(vault, canaryName), 'utf8'), canaryContent);

      const drill = await cli(['drill', 'vault', '--wait', '--json']);
      assert.equal(drill.exitCode, 1, drill.all);
      const report = JSON.parse(drill.stdout) as { failure: { type: string }; checks: Array<{ name: string; passed: boolean; detail: string }> };
      assert.equal(report.failure.type, 'SmokeCheckFailed');
      assert.deepEqual(report.checks.map((c) => [c.name, c.passed, c.detail]).slice(1), [
        ['reads every secret', true, 'exited with 0'],
        ['prints a secret and fails', false, 'exited with 4'],
      ]);

      const ls = await cli(['ls', 'vault']);
      assert.equal(ls.exitCode, 2, ls.all);
      assert.match(ls.stderr, /are not listed \(they never leave its encrypted payload\): it holds 4 entries, 2 files/);

      const path = await cli(['restore', 'vault', '--into', join(lifeboat.dir, 'never'), '--path', 'vault/db/*']);
      assert.equal(path.exitCode, 2, path.all);
      assert.match(path.stderr, /--path is refused for secrets targets/);
    } finally {
      worker.kill('SIGTERM');
      outputs.push({ what: 'worker', text: (await worker.exited).output });
    }
    assert.match(outputs.find((o) => o.what === 'worker')!.text, /tree packed/, 'the worker\'s debug output was captured');
  });

  test('no workflow history, search attribute or memo of these runs contains either canary', async () => {
    // backup, restore --into, restore --into from S3, restore in place, drill
    const expectedRuns = 5;
    let ours: WorkflowExecutionInfo[] = [];
    for (const deadline = Date.now() + 15_000; ; ) {
      ours = [];
      for await (const info of lifeboat.client.workflow.list()) if (info.taskQueue === lifeboat.settings.taskQueue && info.startTime >= startedAt) ours.push(info);
      if (ours.length >= expectedRuns || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(ours.length, expectedRuns);
    let searched = '';
    for (const info of ours) {
      const handle = lifeboat.client.workflow.getHandle(info.workflowId, info.runId);
      const [history, description] = await Promise.all([handle.fetchHistory(), handle.describe()]);
      const text = serialize({ info: { ...info, typedSearchAttributes: info.typedSearchAttributes.getAll() }, raw: description.raw, history });
      assertAbsent(text, canaryName, `workflow ${info.workflowId}`);
      assertAbsent(text, canaryContent, `workflow ${info.workflowId}`);
      searched += text;
    }
    assert.match(searched, /pack-and-upload/, 'the histories were searched as text');
    assert.match(searched, /prints a secret and fails/, 'the failing drill is among them');
  });

  test('no line the worker or the CLI printed contains either canary', () => {
    assert.ok(outputs.length >= 8, `captured ${outputs.length} outputs`);
    for (const { what, text } of outputs) {
      assertAbsent(text, canaryName, `output of ${what}`);
      assertAbsent(text, canaryContent, `output of ${what}`);
    }
  });

  test('no object in either repository holds a canary, and the manifest holds counts, sizes and hashes, not names', async () => {
    const local = join(lifeboat.dir, 'repository');
    const files = (await readdir(local, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    const manifests = files.filter((f) => f.name === 'manifest.json');
    assert.equal(manifests.length, 1);
    for (const file of files) {
      const text = (await readFile(join(file.parentPath, file.name))).toString('latin1');
      assertAbsent(text, canaryName, file.name);
      assertAbsent(text, canaryContent, file.name);
      assert.ok(!text.includes('password'), `${file.name} names no entry`);
    }
    const manifest = JSON.parse(await readFile(join(manifests[0]!.parentPath, 'manifest.json'), 'utf8')) as { source: Record<string, unknown>; encryption: unknown };
    assert.deepEqual(Object.keys(manifest.source).sort(), ['bytes', 'changedWhileRead', 'directories', 'entries', 'files', 'hardlinks', 'roots', 'skipped', 'symlinks']);
    assert.ok(manifest.encryption);

    const s3 = lifeboat.stack.s3!;
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    try {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${lifeboat.settings.taskQueue}/` }));
      const keys = (listed.Contents ?? []).map((o) => o.Key!);
      assert.ok(keys.some((k) => k.endsWith('/manifest.json')), keys.join(', '));
      for (const key of keys) {
        const body = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToByteArray()).toString('latin1');
        assertAbsent(body, canaryName, key);
        assertAbsent(body, canaryContent, key);
      }
    } finally {
      client.destroy();
    }
  });

  test('a backup of a secrets target without an encryption key is refused before anything is read', async () => {
    await lifeboat.startWorker();
    await lifeboat.writeConfig(lifeboat.baseConfig({ ...targets, unread: { type: 'secrets', roots: [join(lifeboat.dir, 'does-not-exist')], repositories: ['local'] } }));
    try {
      await assert.rejects(lifeboat.run('backup', { target: 'vault' }), (error: unknown) => runbookFailure(error).type === 'EncryptionRequired');
      // Its root does not exist: refused for the key first, before the walk could notice.
      await assert.rejects(lifeboat.run('backup', { target: 'unread' }), (error: unknown) => runbookFailure(error).type === 'EncryptionRequired');
    } finally {
      await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
    }
  });
});
