/**
 * Bad input, specified: every kind of wrong input or damaged backup ends the run at once with a
 * typed, non-retryable failure whose message says what is wrong, and nothing the operator cares
 * about (the live database, an existing file, the repository) is changed. Where the CLI can tell
 * before starting a run, it exits 2 without starting one; a runbook that fails exits 1 (data) or
 * 2 (input), naming the failure on stderr.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { compactTimestamp } from '../../src/backup-id.js';
import { runbookFailure, type RunbookKind, type RunbookTypes } from '../../src/client.js';
import { projectRoot } from '../../src/dev/tools.js';
import type { ErrorType } from '../../src/errors.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { s3RepositorySchema, type S3RepositoryConfig } from '../../src/config/schema.js';
import { activityRuns, createDatabase, createLifeboat, fingerprint, s3AccessKeyEnv, type Lifeboat } from '../helpers/lifeboat.js';

/** Names nobody sets: the config references them, the environment does not have them. */
const unsetSecretEnv = `LIFEBOAT_TEST_UNSET_SECRET_${randomBytes(4).toString('hex').toUpperCase()}`;

/** A typed failure must end the run at once; a retried one would take seconds per attempt. */
const quickFailureSeconds = 20;

function applicationFailureOf(error: unknown): ApplicationFailure | undefined {
  let current: unknown = error instanceof WorkflowFailedError ? error.cause : error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current instanceof ApplicationFailure ? current : undefined;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Every file in a directory with the hash of its bytes: "untouched, and nothing new beside it". */
async function directoryState(dir: string): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) state[name] = sha256(await readFile(join(dir, name)));
  return state;
}

function flipOneByte(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const at = Math.floor(copy.length / 2);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

describe('bad input gets a clear, typed, non-retryable error and nothing is lost', () => {
  let lifeboat: Lifeboat;
  let keyA: string;
  let keyB: string;
  /** Each live database sits alone in its own directory, so "nothing left beside it" is a directory listing. */
  const live = (name: string) => join(lifeboat.dir, `live-${name}`, 'db.sqlite');
  let s3Config: S3RepositoryConfig;

  /** Writes the worker's config; every test says which encryption key (if any) is in force. */
  async function configure(encryption: 'none' | 'A' | 'B'): Promise<void> {
    const config = lifeboat.baseConfig(
      {
        shop: { type: 'sqlite', path: live('shop'), repositories: ['local', 's3'] },
        fsonly: { type: 'sqlite', path: live('fsonly'), repositories: ['local'] },
        s3only: { type: 'sqlite', path: live('s3only'), repositories: ['s3'] },
        missing: { type: 'sqlite', path: join(lifeboat.dir, 'no-such-dir', 'gone.sqlite'), repositories: ['local', 's3'] },
        notes: { type: 'sqlite', path: join(lifeboat.dir, 'notes.txt'), repositories: ['local'] },
        damaged: { type: 'sqlite', path: live('damaged'), repositories: ['local', 's3'] },
        nocreds: { type: 'sqlite', path: live('shop'), repositories: ['s3-nocreds'] },
      },
      encryption === 'none' ? {} : { encryption: { keyFile: encryption === 'A' ? keyA : keyB } },
    );
    const repositories = config.repositories as Record<string, Record<string, unknown>>;
    // The access key id is there, the secret's variable is not: the error must name that variable.
    repositories['s3-nocreds'] = { ...repositories.s3, secretAccessKeyEnv: unsetSecretEnv };
    await lifeboat.writeConfig(config);
  }

  /** `lifeboat --config <file> ...` as the operator would type it (no config injected by the helper). */
  function cliWithConfig(configFile: string, args: string[]) {
    return execa(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', configFile, ...args], {
      reject: false,
      all: true,
      env: { ...lifeboat.env, TEMPORAL_ADDRESS: lifeboat.stack.temporalAddress, LIFEBOAT_TASK_QUEUE: lifeboat.settings.taskQueue },
    });
  }

  /**
   * Starts a runbook that must fail with `type`: checks the type, that Temporal was told not to
   * retry it, that every activity ran exactly once (attempt 1) and that the run ended quickly.
   */
  async function expectFailure<K extends RunbookKind>(kind: K, input: RunbookTypes[K]['input'], type: ErrorType, failingActivity: string) {
    const started = performance.now();
    const handle = await lifeboat.start(kind, input);
    const error: unknown = await handle.result().then(
      (result) => assert.fail(`${kind} ${JSON.stringify(input)} succeeded (${JSON.stringify(result).slice(0, 300)}); expected ${type}`),
      (rejection: unknown) => rejection,
    );
    const seconds = (performance.now() - started) / 1000;
    const failure = runbookFailure(error);
    assert.equal(failure.type, type, `${kind} failed with ${failure.type}: ${failure.message}`);
    assert.equal(applicationFailureOf(error)?.nonRetryable, true, `${type} is marked non-retryable`);
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.equal(runs.attempts[failingActivity], 1, `${failingActivity} failed on its first attempt: ${JSON.stringify(runs)}`);
    for (const [activity, attempt] of Object.entries(runs.attempts)) assert.equal(attempt, 1, `${activity} was not retried`);
    assert.ok(seconds < quickFailureSeconds, `${kind} failed after ${seconds.toFixed(1)}s; a typed failure must end the run at once`);
    return { ...failure, workflowId: handle.workflowId, runs };
  }

  /** Workflows of this installation's task queue started since `since` (visibility of the shared server). */
  async function runsStartedSince(since: Date): Promise<string[]> {
    const ids: string[] = [];
    for await (const info of lifeboat.client.workflow.list({ query: `TaskQueue = '${lifeboat.settings.taskQueue}'` })) {
      if (info.startTime >= since) ids.push(info.workflowId);
    }
    return ids;
  }

  function fsObject(target: string, backupId: string, object: string): string {
    return join(lifeboat.dir, 'repository', target, 'backups', backupId, object);
  }

  async function corruptStoredObject(repository: 'local' | 's3', target: string, backupId: string, object: string): Promise<void> {
    if (repository === 'local') {
      const path = fsObject(target, backupId, object);
      await writeFile(path, flipOneByte(await readFile(path)));
      return;
    }
    const s3 = lifeboat.stack.s3!;
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    try {
      const Key = `${s3Config.prefix}${target}/backups/${backupId}/${object}`;
      const stored = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key }))).Body!.transformToByteArray());
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: flipOneByte(stored) }));
      const reread = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key }))).Body!.transformToByteArray());
      assert.equal(reread.length, stored.length);
      assert.notEqual(sha256(reread), sha256(stored), 'the S3 object now differs by one byte');
    } finally {
      client.destroy();
    }
  }

  before(async () => {
    lifeboat = await createLifeboat('bad-input');
    assert.ok(lifeboat.stack.s3, 'the test stack has an S3 server');
    assert.equal(process.env[unsetSecretEnv], undefined);
    keyA = join(lifeboat.dir, 'key-a.bin');
    keyB = join(lifeboat.dir, 'key-b.bin');
    await writeFile(keyA, randomBytes(32));
    await writeFile(keyB, randomBytes(32));
    for (const name of ['shop', 'fsonly', 's3only', 'damaged']) {
      await mkdir(join(lifeboat.dir, `live-${name}`));
      createDatabase(live(name), 1);
    }
    await writeFile(join(lifeboat.dir, 'notes.txt'), 'shopping list\n- milk\n- eggs\n'.repeat(50));
    await configure('none');
    s3Config = s3RepositorySchema.parse((lifeboat.baseConfig({}).repositories as Record<string, unknown>).s3);
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  describe('unknown target', () => {
    for (const kind of ['backup', 'restore', 'drill'] as const) {
      test(`a ${kind} of an unknown target fails with TargetNotFound listing the known targets`, async () => {
        await configure('none');
        const failure = await expectFailure(kind, { target: 'nope' }, 'TargetNotFound', 'resolveTarget');
        assert.match(failure.message, /no target named "nope"/);
        assert.match(failure.message, /Known targets: shop, fsonly, s3only, missing, notes, damaged, nocreds/);
        assert.deepEqual(Object.keys(failure.runs.scheduled), ['resolveTarget'], 'nothing ran after resolving the target');
      });
    }

    test('the CLI exits 2 for an unknown target before starting anything, and names the known targets', async () => {
      await configure('none');
      const since = new Date();
      for (const args of [['backup', 'ghost', '--wait'], ['restore', 'ghost', '--yes', '--wait'], ['drill', 'ghost', '--wait'], ['backups', 'ghost']]) {
        const result = await lifeboat.cli(args);
        assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.all}`);
        assert.match(result.stderr, /TargetNotFound: no target named "ghost"/, args.join(' '));
        assert.match(result.stderr, /Known targets: shop, fsonly/, args.join(' '));
        assert.doesNotMatch(result.stderr, /started/, 'no run was started');
        assert.equal(result.stdout, '');
      }
      assert.deepEqual((await runsStartedSince(since)).filter((id) => id.includes('ghost')), [], 'no workflow was started');
    });
  });

  describe('source database', () => {
    test('a backup of a database file that does not exist fails with SourceNotFound and leaves no backup behind', async () => {
      await configure('none');
      const failure = await expectFailure('backup', { target: 'missing' }, 'SourceNotFound', 'snapshotAndUpload');
      assert.match(failure.message, /gone\.sqlite does not exist/);
      assert.equal(failure.runs.scheduled.writeManifest, undefined, 'no manifest was written');
      // Neither repository holds a backup of it: no directory with a manifest, nothing listed.
      const backupsDir = join(lifeboat.dir, 'repository', 'missing', 'backups');
      if (existsSync(backupsDir)) {
        for (const id of await readdir(backupsDir)) assert.equal(existsSync(join(backupsDir, id, 'manifest.json')), false, `backup ${id} has no manifest`);
      }
      const s3 = new Repository('s3', openBackend(s3Config));
      assert.deepEqual(await s3.listBackupIds('missing'), []);
      const listed = await lifeboat.cli(['backups', 'missing', '--json']);
      assert.equal(listed.exitCode, 0, listed.all);
      assert.deepEqual(JSON.parse(listed.stdout), []);

      const cli = await lifeboat.cli(['backup', 'missing', '--wait']);
      assert.equal(cli.exitCode, 2, cli.all);
      assert.match(cli.stderr, /failed \(SourceNotFound\): database file .*gone\.sqlite does not exist/);
    });

    test('a backup of a file that is not SQLite fails with NotASqliteDatabase and leaves the file alone', async () => {
      await configure('none');
      const before = await readFile(join(lifeboat.dir, 'notes.txt'));
      const failure = await expectFailure('backup', { target: 'notes' }, 'NotASqliteDatabase', 'snapshotAndUpload');
      assert.match(failure.message, /notes\.txt is not a SQLite database/);
      assert.equal(failure.runs.scheduled.writeManifest, undefined);
      assert.ok((await readFile(join(lifeboat.dir, 'notes.txt'))).equals(before), 'the file is untouched');

      const cli = await lifeboat.cli(['backup', 'notes', '--wait']);
      assert.equal(cli.exitCode, 2, cli.all);
      assert.match(cli.stderr, /\(NotASqliteDatabase\): .*notes\.txt is not a SQLite database/);
    });
  });

  describe('a damaged live database', () => {
    /** Overwrites one b-tree page of the live database, as a bad disk or a stray write would. */
    async function damagePage(path: string, page: number): Promise<void> {
      const pageSize = 4096;
      const handle = await open(path, 'r+');
      try {
        await handle.write(Buffer.alloc(pageSize, 0x5a), 0, pageSize, (page - 1) * pageSize);
      } finally {
        await handle.close();
      }
    }

    test('a backup of it fails with IntegrityCheckFailed at once, and no repository keeps anything of it', async () => {
      await configure('none');
      const path = live('damaged');
      await rm(path, { force: true });
      createDatabase(path, 1);
      await damagePage(path, 3);
      const failure = await expectFailure('backup', { target: 'damaged' }, 'IntegrityCheckFailed', 'snapshotAndUpload');
      assert.match(failure.message, /quick_check of .*live-damaged\/db\.sqlite failed/);
      assert.equal(failure.runs.scheduled.writeManifest, undefined, 'no manifest was written');
      const s3 = new Repository('s3', openBackend(s3Config));
      assert.deepEqual(await s3.listBackupIds('damaged'), []);
      const backupsDir = join(lifeboat.dir, 'repository', 'damaged', 'backups');
      const stored = existsSync(backupsDir) ? await readdir(backupsDir, { recursive: true }) : [];
      assert.deepEqual(stored.filter((name) => name.endsWith('.zst')), [], 'no stored object is left');
    });

    test('a restore replaces it, and keeps it byte for byte (with its WAL) as the safety copy', async () => {
      await configure('none');
      const path = live('damaged');
      await rm(path, { force: true });
      createDatabase(path, 1);
      const backup = await lifeboat.run('backup', { target: 'damaged' });
      const good = fingerprint(path);
      // A commit still in the WAL, then damage to the main file's header: SQLite cannot open it.
      const writer = new Database(path);
      writer.pragma('wal_autocheckpoint = 0');
      writer.prepare("INSERT INTO events (kind, note, payload) VALUES ('order', 'in the WAL', x'00')").run();
      const walBytes = await readFile(`${path}-wal`);
      await damagePage(path, 1);
      writer.close();
      await writeFile(`${path}-wal`, walBytes); // as a crash would have left it: closing removed it
      const damaged = await readFile(path);

      const result = await lifeboat.run('restore', { target: 'damaged', backupId: backup.backupId });
      assert.deepEqual(fingerprint(path), good, 'the live database is the backup again');
      assert.ok(result.safetyCopy);
      assert.ok((await readFile(result.safetyCopy)).equals(damaged), 'the safety copy is the damaged file, byte for byte');
      assert.ok((await readFile(`${result.safetyCopy}-wal`)).equals(walBytes), 'with the WAL it had');
      if (existsSync(`${path}-wal`)) assert.equal((await readFile(`${path}-wal`)).equals(walBytes), false, 'no old WAL beside the restored database');
      await rm(result.safetyCopy, { force: true });
      await rm(`${result.safetyCopy}-wal`, { force: true });
    });
  });

  describe('a repository that does not keep what it was sent', () => {
    test('verify-stored fails with ChecksumMismatch and withdraws the damaged copy; the copy that read back right stays', async () => {
      await configure('none');
      // Flip one byte of the local copy as soon as it has its final name: after the upload hashed
      // what it sent, before the manifest is written and the copies are read back (two round trips
      // through the server later).
      const backupsDir = join(lifeboat.dir, 'repository', 'shop', 'backups');
      const before = new Set(existsSync(backupsDir) ? await readdir(backupsDir) : []);
      let flipped: string | undefined;
      const watcher = setInterval(() => {
        if (flipped || !existsSync(backupsDir)) return;
        for (const id of readdirSync(backupsDir)) {
          const object = join(backupsDir, id, 'attempt-1', 'db.sqlite.zst');
          if (before.has(id) || !existsSync(object)) continue;
          writeFileSync(object, flipOneByte(readFileSync(object)));
          flipped = id;
        }
      }, 2);
      let failure: Awaited<ReturnType<typeof expectFailure>>;
      try {
        failure = await expectFailure('backup', { target: 'shop' }, 'ChecksumMismatch', 'verifyStoredBackup');
      } finally {
        clearInterval(watcher);
      }
      assert.ok(flipped, 'the local copy was damaged before it was read back');
      assert.match(failure.message, /read back from repository "local" has sha256/);
      assert.match(failure.message, /the damaged copy was withdrawn from "local" \(the copies that read back right stay\)/);
      assert.equal(existsSync(join(backupsDir, flipped)), false, 'nothing of the damaged copy is left in the local repository');

      const listed = await lifeboat.cli(['backups', 'shop', '--json']);
      assert.equal(listed.exitCode, 0, listed.all);
      const copies = (JSON.parse(listed.stdout) as Array<{ id: string; repository: string }>).filter((row) => row.id === flipped);
      assert.deepEqual(copies.map((row) => row.repository), ['s3'], 'only the S3 copy is listed');
      const into = join(lifeboat.dir, 'from-the-good-copy.sqlite');
      await lifeboat.run('restore', { target: 'shop', backupId: flipped, into });
      assert.deepEqual(fingerprint(into), fingerprint(live('shop')));
    });
  });

  describe('damaged backups', () => {
    for (const encrypted of [false, true]) {
      for (const repository of ['local', 's3'] as const) {
        const target = repository === 'local' ? 'fsonly' : 's3only';
        const object = encrypted ? 'attempt-1/db.sqlite.zst.enc' : 'attempt-1/db.sqlite.zst';
        test(`restore refuses an ${encrypted ? 'encrypted' : 'unencrypted'} backup with one flipped byte in the ${repository} repository (ChecksumMismatch), live database untouched, nothing left beside it`, async () => {
          await configure(encrypted ? 'A' : 'none');
          const backup = await lifeboat.run('backup', { target });
          await corruptStoredObject(repository, target, backup.backupId, object);
          const liveDir = join(lifeboat.dir, `live-${target}`);
          const before = await directoryState(liveDir);

          const inPlace = await expectFailure('restore', { target, backupId: backup.backupId }, 'ChecksumMismatch', 'fetchBackup');
          assert.match(inPlace.message, new RegExp(`${object.replace(/\./g, '\\.')} of backup ${backup.backupId} in repository "${repository}" does not match its manifest`));
          assert.match(inPlace.message, /The target was not touched/);
          assert.equal(inPlace.runs.scheduled.swapIntoPlace, undefined, 'nothing was swapped');
          assert.deepEqual(await directoryState(liveDir), before, 'live database byte-for-byte untouched, no staging or partial file left');

          const into = join(lifeboat.dir, `into-${target}-${encrypted ? 'enc' : 'plain'}.sqlite`);
          await expectFailure('restore', { target, backupId: backup.backupId, into }, 'ChecksumMismatch', 'fetchBackup');
          assert.equal(existsSync(into), false, 'no file at --into');
          assert.equal(existsSync(`${into}.partial`), false, 'no partial file');

          const cli = await lifeboat.cli(['restore', target, '--backup', backup.backupId, '--yes', '--wait']);
          assert.equal(cli.exitCode, 1, `a damaged backup is a runbook failure, not bad input: ${cli.all}`);
          assert.match(cli.stderr, /failed \(ChecksumMismatch\): .* does not match its manifest/);
          assert.deepEqual(await directoryState(liveDir), before);

          // A drill of the damaged (newest) backup completes and reports it.
          const drill = await lifeboat.run('drill', { target });
          assert.equal(drill.passed, false);
          assert.equal(drill.failure?.type, 'ChecksumMismatch');
          assert.deepEqual(await directoryState(liveDir), before);
        });
      }
    }

    test('restore with the wrong encryption key fails with WrongEncryptionKey and touches nothing', async () => {
      await configure('A');
      const backup = await lifeboat.run('backup', { target: 'fsonly' });
      await configure('B');
      const liveDir = join(lifeboat.dir, 'live-fsonly');
      const before = await directoryState(liveDir);

      const inPlace = await expectFailure('restore', { target: 'fsonly', backupId: backup.backupId }, 'WrongEncryptionKey', 'fetchBackup');
      assert.match(inPlace.message, new RegExp(`backup ${backup.backupId} was encrypted with key \\S+, but .*key-b\\.bin holds key \\S+`));
      assert.deepEqual(await directoryState(liveDir), before, 'live database untouched');

      const into = join(lifeboat.dir, 'wrong-key.sqlite');
      await expectFailure('restore', { target: 'fsonly', backupId: backup.backupId, into }, 'WrongEncryptionKey', 'fetchBackup');
      assert.equal(existsSync(into), false);
      assert.equal(existsSync(`${into}.partial`), false);

      const cli = await lifeboat.cli(['restore', 'fsonly', '--backup', backup.backupId, '--yes', '--wait']);
      assert.equal(cli.exitCode, 2, cli.all);
      assert.match(cli.stderr, /failed \(WrongEncryptionKey\): /);
      assert.deepEqual(await directoryState(liveDir), before);

      // With key A back, the same backup restores: nothing was damaged by the refusals.
      await configure('A');
      const restored = await lifeboat.run('restore', { target: 'fsonly', backupId: backup.backupId, into });
      assert.equal(restored.restoredTo, into);
    });
  });

  describe('broken config', () => {
    /** Each broken config, and what stderr must say: the field path, what was expected, what was found. */
    const cases: Array<{ name: string; yaml: (good: Record<string, unknown>) => string; says: RegExp[] }> = [
      {
        name: 'a YAML syntax error',
        yaml: (good) => `${stringify(good)}\ntargets: {x: [unclosed\n`,
        says: [/InvalidConfig: .*\.yaml is not valid YAML at line \d+/],
      },
      {
        name: 'an unknown field',
        yaml: (good) => stringify(withTarget(good, { type: 'sqlite', path: '/data/x.sqlite', repositories: ['local'], pathh: '/data/y.sqlite' })),
        says: [/targets\.x: Unrecognized key: "pathh"/, /expected one of: type, path, repositories, [a-zA-Z, ]*checks/],
      },
      {
        name: 'a wrong type',
        yaml: (good) => stringify(withTarget(good, { type: 'sqlite', path: 42, repositories: ['local'] })),
        says: [/targets\.x\.path: .*expected string/, /found number 42/],
      },
      {
        name: 'a target referencing an undefined repository',
        yaml: (good) => stringify(withTarget(good, { type: 'sqlite', path: '/data/x.sqlite', repositories: ['nowhere'] })),
        says: [/targets\.x\.repositories\.0: unknown repository "nowhere"/, /use one of: local, s3/, /found string "nowhere"/],
      },
      {
        name: 'an s3 repository without accessKeyIdEnv',
        yaml: (good) => {
          const config = withTarget(good, { type: 'sqlite', path: '/data/x.sqlite', repositories: ['s3'] });
          delete (config.repositories as Record<string, Record<string, unknown>>).s3!.accessKeyIdEnv;
          return stringify(config);
        },
        says: [/repositories\.s3\.accessKeyIdEnv: .*expected string/, /found nothing/],
      },
    ];

    function withTarget(good: Record<string, unknown>, target: Record<string, unknown>): Record<string, unknown> {
      const config = structuredClone(good);
      config.targets = { x: target };
      return config;
    }

    for (const { name, yaml, says } of cases) {
      test(`the CLI rejects a config with ${name}: exit 2, stderr names the field, the expectation and what it found`, async () => {
        const good = lifeboat.baseConfig({ x: { type: 'sqlite', path: '/data/x.sqlite', repositories: ['local'] } });
        const file = join(lifeboat.dir, `bad-${name.replace(/^an? /, '').replace(/\W+/g, '-')}.yaml`);
        await writeFile(file, yaml(good));
        const since = new Date();
        for (const args of [['backups', 'x'], ['backup', 'x', '--wait']]) {
          const result = await cliWithConfig(file, args);
          assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.all}`);
          assert.match(result.stderr, /lifeboat: InvalidConfig: /);
          assert.ok(result.stderr.includes(file), `stderr names the file: ${result.stderr}`);
          for (const pattern of says) assert.match(result.stderr, pattern, `${args.join(' ')}: ${result.stderr}`);
          assert.doesNotMatch(result.stderr, /started|    at /, 'no run started, no stack trace');
        }
        assert.deepEqual(await runsStartedSince(since), [], 'no workflow was started');
      });
    }

    test('a worker whose config is broken fails runs with InvalidConfig at once (not retried)', async () => {
      await configure('none');
      const good = await readFile(lifeboat.configPath, 'utf8');
      try {
        await writeFile(lifeboat.configPath, `${good}\n  broken: [indentation\n`);
        const failure = await expectFailure('backup', { target: 'shop' }, 'InvalidConfig', 'resolveTarget');
        assert.match(failure.message, /is not valid YAML at line \d+/);
        await writeFile(lifeboat.configPath, good.replace(`path: ${live('shop')}`, 'path: 42'));
        const typed = await expectFailure('drill', { target: 'shop' }, 'InvalidConfig', 'resolveTarget');
        assert.match(typed.message, /targets\.shop\.path: .*expected string.*found number 42/);
      } finally {
        await writeFile(lifeboat.configPath, good);
      }
    });

    test('an S3 credential variable that is not set fails with CredentialsUnavailable naming the variable, not a value', async () => {
      await configure('none');
      const failure = await expectFailure('backup', { target: 'nocreds' }, 'CredentialsUnavailable', 'snapshotAndUpload');
      assert.match(failure.message, new RegExp(`environment variable ${unsetSecretEnv}, which is not set`));
      assert.ok(!failure.message.includes(lifeboat.env[s3AccessKeyEnv]!), 'the access key id value is not in the message');

      const cli = await lifeboat.cli(['backup', 'nocreds', '--wait']);
      assert.equal(cli.exitCode, 2, cli.all);
      assert.match(cli.stderr, new RegExp(`failed \\(CredentialsUnavailable\\): .*${unsetSecretEnv}, which is not set`));

      // Listing cannot read the only repository: that is an error, not "no backups".
      const listed = await lifeboat.cli(['backups', 'nocreds', '--json']);
      assert.equal(listed.exitCode, 2, listed.all);
      assert.match(listed.stderr, new RegExp(`CredentialsUnavailable: .*${unsetSecretEnv}, which is not set`));
      assert.equal(listed.stdout, '');
    });
  });

  describe('restore safeguards', () => {
    test('the CLI says which Temporal address it cannot reach, in one line without a stack trace, and exits 1', async () => {
      await configure('none');
      const result = await lifeboat.cli(['backup', 'shop', '--wait'], { env: { TEMPORAL_ADDRESS: '127.0.0.1:1' } });
      assert.equal(result.exitCode, 1, result.all);
      assert.match(result.stderr, /^lifeboat: TemporalUnavailable: cannot reach the Temporal server at 127\.0\.0\.1:1 \(namespace [^)]+\): .*Set TEMPORAL_ADDRESS/m);
      assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
      assert.equal(result.stdout, '');
    });

    test('restore without --yes or --into from a non-interactive CLI exits 2, says to pass one of them, and starts nothing', async () => {
      await configure('none');
      const before = await directoryState(join(lifeboat.dir, 'live-shop'));
      const since = new Date();
      const result = await lifeboat.cli(['restore', 'shop', '--wait']);
      assert.equal(result.exitCode, 2, result.all);
      assert.match(result.stderr, /pass --yes to confirm, or --into <path> to restore beside it/);
      assert.doesNotMatch(result.stderr, /started/);
      assert.deepEqual(await runsStartedSince(since), [], 'no workflow was started');
      assert.deepEqual(await directoryState(join(lifeboat.dir, 'live-shop')), before);
    });

    test('restore --into an existing path fails with InvalidInput and leaves that file untouched', async () => {
      await configure('none');
      await lifeboat.run('backup', { target: 'shop' });
      const existing = join(lifeboat.dir, 'precious.sqlite');
      const bytes = randomBytes(50_000);
      await writeFile(existing, bytes);

      const failure = await expectFailure('restore', { target: 'shop', into: existing }, 'InvalidInput', 'fetchBackup');
      assert.match(failure.message, /precious\.sqlite already exists/);
      assert.ok((await readFile(existing)).equals(bytes), 'the existing file is untouched');
      assert.equal(existsSync(`${existing}.partial`), false);

      const cli = await lifeboat.cli(['restore', 'shop', '--into', existing, '--wait']);
      assert.equal(cli.exitCode, 2, cli.all);
      assert.match(cli.stderr, /failed \(InvalidInput\): .*precious\.sqlite already exists/);
      assert.ok((await readFile(existing)).equals(bytes), 'the existing file is untouched');
    });

    test('restore --into a path with a journal file of another database fails with InvalidInput and leaves it alone', async () => {
      await configure('none');
      await lifeboat.run('backup', { target: 'shop' });
      for (const journal of ['-wal', '-journal']) {
        const into = join(lifeboat.dir, `orphan${journal}-copy.sqlite`);
        const stale = randomBytes(4096);
        await writeFile(`${into}${journal}`, stale);
        const failure = await expectFailure('restore', { target: 'shop', into }, 'InvalidInput', 'fetchBackup');
        assert.match(failure.message, new RegExp(`copy\\.sqlite${journal} exists: it belongs to another database`));
        assert.equal(existsSync(into), false, 'nothing was restored there');
        assert.ok((await readFile(`${into}${journal}`)).equals(stale), 'the journal file is untouched');
      }
    });

    test('restore --into the live database itself, or a relative path, fails with InvalidInput and touches nothing', async () => {
      await configure('none');
      await lifeboat.run('backup', { target: 'shop' });
      const before = await directoryState(join(lifeboat.dir, 'live-shop'));
      const itself = await expectFailure('restore', { target: 'shop', into: live('shop') }, 'InvalidInput', 'fetchBackup');
      assert.match(itself.message, /is the live database of target "shop"/);
      const relative = await expectFailure('restore', { target: 'shop', into: 'copy.sqlite' }, 'InvalidInput', 'fetchBackup');
      assert.match(relative.message, /--into copy\.sqlite is not an absolute path/);
      assert.deepEqual(await directoryState(join(lifeboat.dir, 'live-shop')), before);
    });

    test('the CLI makes a relative --into absolute where the operator typed it', async () => {
      await configure('none');
      await lifeboat.run('backup', { target: 'shop' });
      const typedIn = join(lifeboat.dir, 'typed-here');
      await mkdir(typedIn, { recursive: true });
      const result = await lifeboat.cli(['restore', 'shop', '--into', 'copy.sqlite', '--wait', '--json'], { cwd: typedIn });
      assert.equal(result.exitCode, 0, result.all);
      assert.equal((JSON.parse(result.stdout) as { restoredTo: string }).restoredTo, join(typedIn, 'copy.sqlite'));
      assert.ok(existsSync(join(typedIn, 'copy.sqlite')));
    });

    test('a manifest that cannot be read hides only its own backup: listing and restore still find the others', async () => {
      await configure('none');
      const good = await lifeboat.run('backup', { target: 'fsonly' });
      const foreignDir = join(lifeboat.dir, 'repository', 'fsonly', 'backups', '99991231T235959Z-ffffffff');
      await mkdir(foreignDir, { recursive: true });
      await writeFile(join(foreignDir, 'manifest.json'), '{"format": 99}\n');
      try {
        const listed = await lifeboat.cli(['backups', 'fsonly', '--json']);
        assert.equal(listed.exitCode, 0, listed.all);
        const ids = (JSON.parse(listed.stdout) as Array<{ id: string }>).map((row) => row.id);
        assert.ok(ids.includes(good.backupId), `the readable backup is listed: ${ids.join(', ')}`);
        assert.equal(ids.includes('99991231T235959Z-ffffffff'), false);
        assert.match(listed.stderr, /warning: backup 99991231T235959Z-ffffffff in repository "local" is not listed/);

        const into = join(lifeboat.dir, 'beside-unreadable.sqlite');
        const restored = await lifeboat.run('restore', { target: 'fsonly', into });
        assert.equal(restored.backupId, good.backupId, 'the newest readable backup is restored');
        assert.deepEqual(fingerprint(into), fingerprint(live('fsonly')));
      } finally {
        await rm(foreignDir, { recursive: true, force: true });
      }
    });

    test('a restore in place never reuses a safety copy an earlier restore left under the same name: the database it replaces is kept', async () => {
      await configure('none');
      const backup = await lifeboat.run('backup', { target: 'shop' });
      const db = new Database(live('shop'));
      db.prepare("INSERT INTO events (kind, note, payload) VALUES ('order', 'written after the backup', x'00')").run();
      db.close();
      const replaced = fingerprint(live('shop'));
      // The safety path is per second: two restores in one second would share it. Plant an
      // earlier restore's safety copy under the name of every second this restore may start in.
      const earlier = randomBytes(4096);
      const planted: string[] = [];
      for (let second = -1; second < 30; second++) {
        planted.push(`${live('shop')}.lifeboat-safety-${compactTimestamp(new Date(Date.now() + second * 1000))}`);
        await writeFile(planted.at(-1)!, earlier);
      }
      try {
        const result = await lifeboat.run('restore', { target: 'shop', backupId: backup.backupId });
        assert.ok(result.safetyCopy && !planted.includes(result.safetyCopy), `a safety copy of its own: ${result.safetyCopy}`);
        assert.deepEqual(fingerprint(result.safetyCopy), replaced, 'the safety copy is the database the restore replaced');
        for (const path of planted) assert.ok((await readFile(path)).equals(earlier), `the earlier safety copy ${path} is untouched`);
      } finally {
        await Promise.all(planted.map((path) => rm(path, { force: true })));
      }
    });
  });
});
