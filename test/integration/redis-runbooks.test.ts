/**
 * Redis targets against a real Redis 7 (Debian's redis-server, running as `redis`): backups stream
 * a point-in-time RDB over the replication protocol into an fs and an S3 repository (encrypted),
 * checked by redis-check-rdb on the way; restores put it in place between the hooks (with an AOF
 * too) and roll back when the server does not come back right; drills load it in a scratch
 * redis-server and smoke-check it; bad input fails with typed errors and stores nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import type { CheckResult } from '../../src/check/result.js';
import { runbookFailure } from '../../src/client.js';
import { freePort } from '../../src/dev/ports.js';
import { loadConfig } from '../../src/config/load.js';
import { checkRdbFile } from '../../src/redis/rdb.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import type { StateReport } from '../../src/state/model.js';
import type { DrillReport } from '../../workflows/drill.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { createTestRedis, type TestRedis } from '../helpers/redis.js';

async function failureOf(promise: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    return runbookFailure(error);
  }
  assert.fail('the run should have failed');
}

/** Waits until INFO persistence satisfies the predicate (an AOF rewrite has finished...). */
async function untilPersistence(redis: TestRedis, ready: (info: Map<string, string>) => boolean): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
    const client = await redis.connect();
    try {
      if (ready(await client.info('persistence'))) return;
    } finally {
      client.close();
    }
  }
  assert.fail('INFO persistence never got there');
}

/** SIGKILLs the redis-cli --rdb of the server on `port` (the worker's child) once the server counts it as a replica; its pid. */
async function killRdbTransfer(redis: TestRedis): Promise<number> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (!/slave0:/.test(String(await redis.call('INFO', 'replication')))) continue;
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
      if (argv[0] === 'redis-cli' && argv.includes('--rdb') && argv.includes(String(redis.port))) {
        process.kill(Number(entry), 'SIGKILL');
        return Number(entry);
      }
    }
  }
  assert.fail('redis-cli --rdb never started');
}

describe('Redis runbooks on a real Redis 7, local disk and S3', () => {
  let lifeboat: Lifeboat;
  let redis: TestRedis;
  let scratchDir: string;

  const target = (extra: Record<string, unknown> = {}) => ({
    type: 'redis',
    repositories: ['local', 's3'],
    connection: { host: '127.0.0.1', port: redis.port, passwordEnv: redis.passwordEnv },
    hooks: { stop: redis.stopCommand, start: redis.startCommand, timeoutSeconds: 60 },
    drill: {
      scratchDir,
      rpoTargetSeconds: 3600,
      smokeChecks: [
        { name: 'populated', dbsizeAtLeast: 20_000 },
        { name: 'settings exist', keyExists: 'app:settings', db: 1 },
        { name: 'schema version', get: 'app:schema', equals: '42' },
      ],
    },
    ...extra,
  });

  /** Every file the fs repository holds for a target's backups (its audit log records every run, failed ones too). */
  async function storedFiles(name: string): Promise<string[]> {
    const dir = join(lifeboat.dir, 'repository', name, 'backups');
    if (!existsSync(dir)) return [];
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
  }

  async function configure(targets: Record<string, Record<string, unknown>>): Promise<void> {
    const keyFile = join(lifeboat.dir, 'backup.key');
    if (!existsSync(keyFile)) await writeFile(keyFile, randomBytes(32));
    await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
  }

  before(async () => {
    [lifeboat, redis] = await Promise.all([createLifeboat('redis'), createTestRedis()]);
    // Where the scratch server (running as redis) may go: not under the 0700 test directory.
    scratchDir = await mkdtemp(join(tmpdir(), 'lifeboat-redis-scratch-'));
    await chmod(scratchDir, 0o755);
    await redis.call('DEBUG', 'POPULATE', '20000', 'user', '64');
    await redis.call('SET', 'app:schema', '42');
    await redis.call('SET', 'session:short', 'x', 'EX', '3600');
    const one = await redis.connect();
    try {
      await one.command(['SELECT', '1']);
      await one.command(['HSET', 'app:settings', 'theme', 'dark', 'lang', 'en']);
    } finally {
      one.close();
    }
    await configure({ cache: target({ checkOnBackup: true, retention: { keepLast: 1 } }), s3only: target({ repositories: ['s3'] }), plain: target() });
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
    await redis?.close();
    if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
  });

  test('a backup streams a checked point-in-time RDB into every repository and records what it holds', async () => {
    const result = await lifeboat.run('backup', { target: 'cache' });
    assert.equal(result.kind, 'redis');
    assert.deepEqual(result.repositories, ['local', 's3']);
    const manifest = JSON.parse(await readFile(join(lifeboat.dir, 'repository', 'cache', 'backups', result.backupId, 'manifest.json'), 'utf8'));
    assert.equal(manifest.kind, 'redis');
    assert.equal(manifest.source.keys, 20_003, 'every key of every database, read from the RDB by redis-check-rdb');
    assert.equal(manifest.source.expires, 1);
    assert.equal(manifest.source.keyCountFrom, 'redis-check-rdb');
    assert.equal(manifest.source.checkedOnBackup, true);
    assert.equal(manifest.source.transfer, 'diskless');
    assert.equal(manifest.source.rdbVersion, 10);
    assert.match(manifest.source.serverVersion, /^7\./);
    assert.deepEqual(manifest.objects.map((o: { name: string }) => o.name), ['attempt-1/dump.rdb.zst.enc']);
    assert.ok(manifest.encryption, 'stored encrypted');
    assert.ok(Math.abs(Date.parse(manifest.snapshotAt) - Date.now()) < 600_000, 'snapshotAt is the RDB\'s own time');
    assert.deepEqual(manifest.timeline.map((s: { name: string }) => s.name), ['resolve-target', 'stream-rdb-and-upload']);

    // The RDB restored as a file is byte for byte what was streamed, and redis-check-rdb reads it.
    const into = join(lifeboat.dir, 'copy.rdb');
    const restored = await lifeboat.run('restore', { target: 'cache', backupId: result.backupId, into });
    assert.equal(restored.restoredTo, into);
    assert.equal(restored.safetyCopy, null);
    const check = await checkRdbFile(into);
    assert.equal(check.ok, true);
    assert.equal(check.keys, 20_003);
    assert.equal((await stat(into)).size, manifest.source.sizeBytes);
    // The worker read this RDB itself: the manifest has its sha256 (checked on restore) and nothing stored after it,
    // the shape of every Redis backup made before redis-cli wrote straight into zstd.
    assert.match(manifest.source.sha256, /^[0-9a-f]{64}$/);
    assert.equal(manifest.source.eofMarkBytes, undefined);
    const again = await failureOf(lifeboat.run('restore', { target: 'cache', into }));
    assert.equal(again.type, 'InvalidInput', again.message);
  });

  test('without the check, redis-cli writes straight into zstd: the EOF mark is stored after the RDB and dropped on restore', async () => {
    const result = await lifeboat.run('backup', { target: 'plain' });
    const manifest = JSON.parse(await readFile(join(lifeboat.dir, 'repository', 'plain', 'backups', result.backupId, 'manifest.json'), 'utf8'));
    assert.equal(manifest.source.checkedOnBackup, false);
    assert.equal(manifest.source.keyCountFrom, 'info');
    assert.equal(manifest.source.rdbVersion, 10, 'the header read from the first compressed block');
    assert.match(manifest.source.serverVersion, /^7\./);
    assert.ok(Math.abs(Date.parse(manifest.snapshotAt) - Date.now()) < 600_000, 'snapshotAt is the RDB\'s own time');
    assert.equal(manifest.source.sha256, undefined, 'the worker never saw the RDB');
    assert.equal(manifest.source.eofMarkBytes, 40, 'the diskless transfer\'s EOF mark, as redis-cli wrote it to its stdout');
    const into = join(lifeboat.dir, 'plain.rdb');
    await lifeboat.run('restore', { target: 'plain', backupId: result.backupId, into });
    assert.equal((await stat(into)).size, manifest.source.sizeBytes, 'the restored file is the RDB without the mark');
    const check = await checkRdbFile(into);
    assert.equal(check.ok, true, check.output);
    assert.equal(check.keys, 20_003);
    const report = await lifeboat.run('drill', { target: 'plain' });
    assert.equal(report.passed, true, JSON.stringify([report.failure, report.checks]));
  });

  test('a redis-cli killed mid-transfer fails the attempt with its stderr and stores nothing; the step is tried again', async () => {
    const before = await storedFiles('plain');
    // The server waits for more replicas before it forks: redis-cli sits in the transfer meanwhile.
    await redis.call('CONFIG', 'SET', 'repl-diskless-sync-delay', '30');
    try {
      const handle = await lifeboat.start('backup', { target: 'plain' });
      const killed = await killRdbTransfer(redis);
      let failure: string | undefined;
      for (const deadline = Date.now() + 60_000; failure === undefined && Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        failure = pending.find((a) => a.activityType?.name === 'streamRdbAndUpload' && (a.attempt ?? 0) >= 2)?.lastFailure?.message ?? undefined;
      }
      assert.match(failure ?? '', /the RDB transfer `redis-cli .*--rdb -` was killed by SIGKILL:\nsending REPLCONF/, `pid ${killed}: the attempt failed with how redis-cli ended and its stderr`);
      await handle.cancel();
      await assert.rejects(handle.result());
      assert.deepEqual(await storedFiles('plain'), before, 'nothing of the killed transfer (or the cancelled retry) is stored');
    } finally {
      await redis.call('CONFIG', 'SET', 'repl-diskless-sync-delay', '0');
    }
  });

  test('a drill loads the newest backup in a scratch redis-server, runs the smoke checks, and removes it all', async () => {
    const report = (await lifeboat.run('drill', { target: 'cache' })) as DrillReport & { redis?: { keys: number } };
    assert.equal(report.passed, true, JSON.stringify([report.failure, report.checks]));
    assert.deepEqual(report.checks.map((c) => [c.name, c.passed]), [['all keys loaded', true], ['populated', true], ['settings exist', true], ['schema version', true]]);
    assert.match(report.checks[3]!.detail, /returned "42"/);
    assert.deepEqual(
      report.checks.map((c) => [c.expected, c.actual]),
      [['20002 to 20003 keys', '20003 keys'], ['DBSIZE of db 0 at least 20000', '20002'], ['"app:settings" exists in db 1', 'exists'], ['GET "app:schema" in db 0 = "42"', '"42"']],
      'the report says what each check asked for (the key with a TTL may expire before the load) and what the copy answered',
    );
    const page = await readFile(join(lifeboat.dir, 'repository', 'cache', 'reports', `${report.workflowId}.html`), 'utf8');
    assert.match(page, /app:schema/, 'the drill\'s report page is stored beside it');
    assert.equal(report.redis?.keys, 20_003);
    assert.equal(report.rpo?.met, true);
    assert.deepEqual(existsSync(scratchDir) ? await readdir(scratchDir) : [], [], 'the scratch directory is gone');
    const step = report.timeline.find((s) => s.name === 'scratch-server');
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(step?.detail ?? '')?.[1]);
    await assert.rejects(fetch(`http://127.0.0.1:${port}`), 'the scratch server is stopped');
  });

  test('a drill whose smoke check fails reports it, and still removes the scratch server', async () => {
    const original = await readFile(lifeboat.configPath, 'utf8');
    const config = parseYaml(original) as { targets: Record<string, { drill: { smokeChecks: unknown[] } }> };
    config.targets.cache!.drill.smokeChecks = [{ name: 'schema version', get: 'app:schema', equals: '43' }, { name: 'missing key', keyExists: 'nope' }];
    await lifeboat.writeConfig(config);
    try {
      const report = await lifeboat.run('drill', { target: 'cache' });
      assert.equal(report.passed, false);
      assert.equal(report.failure?.type, 'SmokeCheckFailed');
      assert.match(report.failure?.message ?? '', /returned "42", expected "43"/);
      assert.match(report.failure?.message ?? '', /"nope" does not exist/);
      assert.deepEqual(existsSync(scratchDir) ? await readdir(scratchDir) : [], []);
    } finally {
      await writeFile(lifeboat.configPath, original);
    }
  });

  test('a backup in S3 alone backs up and drills', async () => {
    const backup = await lifeboat.run('backup', { target: 's3only' });
    assert.deepEqual(backup.repositories, ['s3']);
    assert.equal((backup as { redis?: { keys: number } }).redis?.keys, 20_003, 'without the check on the stream, INFO keyspace counts the keys');
    const report = await lifeboat.run('drill', { target: 's3only' });
    assert.equal(report.passed, true, JSON.stringify([report.failure, report.checks]));
    assert.equal(report.backupId, backup.backupId);
  });

  test('a restore in place stops the server, puts the RDB in place keeping the old one, starts it and checks its keys', async () => {
    const backup = await lifeboat.run('backup', { target: 'cache' });
    await redis.call('SET', 'app:schema', '43');
    await redis.call('SET', 'after:backup', 'yes');
    const restored = await lifeboat.run('restore', { target: 'cache', backupId: backup.backupId });
    assert.equal(restored.restoredTo, join(redis.dataDir, 'dump.rdb'));
    assert.match(restored.safetyCopy ?? '', /dump\.rdb\.lifeboat-safety-/);
    assert.deepEqual(
      restored.timeline.map((s) => s.name),
      ['resolve-target', 'locate-backup', 'inspect-server', 'fetch-and-check', 'stop-hook', 'swap', 'start-hook', 'key-count'],
    );
    assert.equal(String(await redis.call('GET', 'app:schema')), '42', 'the backup\'s value');
    assert.equal(await redis.call('EXISTS', 'after:backup'), 0, 'what came after the backup is gone');
    assert.equal(Number(await redis.call('DBSIZE')), 20_002);
    // The safety copy is what the server saved when it was stopped: the data from before the restore.
    const safety = await checkRdbFile(restored.safetyCopy!);
    assert.equal(safety.keys, 20_004);
    const leftovers = (await readdir(redis.dataDir)).filter((name) => name.includes('lifeboat-restore'));
    assert.deepEqual(leftovers, [], 'no staged file is left');
  });

  test('with appendonly yes, the restored RDB becomes the base of a new AOF and the old AOF is kept', async () => {
    await redis.call('CONFIG', 'SET', 'appendonly', 'yes');
    // CONFIG REWRITE keeps it across the restart, as an operator's redis.conf would.
    await redis.call('CONFIG', 'REWRITE');
    try {
      await untilPersistence(redis, (info) => info.get('aof_rewrite_in_progress') === '0' && info.get('aof_rewrite_scheduled') === '0');
      const backup = await lifeboat.run('backup', { target: 'cache' });
      await redis.call('SET', 'app:schema', '44');
      const restored = await lifeboat.run('restore', { target: 'cache', backupId: backup.backupId });
      assert.equal(String(await redis.call('GET', 'app:schema')), '42', 'the server loaded the restored data through its AOF');
      assert.match(restored.timeline.find((s) => s.name === 'swap')?.detail ?? '', /previous AOF kept at .*appendonlydir\.lifeboat-safety-/);
      const aofFiles = await readdir(join(redis.dataDir, 'appendonlydir'));
      assert.ok(aofFiles.includes('appendonly.aof.1.base.rdb'), aofFiles.join(', '));
    } finally {
      await redis.call('CONFIG', 'SET', 'appendonly', 'no');
      await redis.call('CONFIG', 'REWRITE');
    }
  });

  test('a restore whose health check fails is rolled back: the server runs on its previous data', async () => {
    const backup = await lifeboat.run('backup', { target: 'cache' });
    await redis.call('SET', 'app:schema', 'before-rollback');
    const original = await readFile(lifeboat.configPath, 'utf8');
    const config = parseYaml(original) as { targets: Record<string, { hooks: Record<string, unknown> }> };
    config.targets.cache!.hooks.healthUrl = `http://127.0.0.1:${await freePort()}/health`;
    config.targets.cache!.hooks.healthTimeoutSeconds = 1;
    await lifeboat.writeConfig(config);
    try {
      const failure = await failureOf(lifeboat.run('restore', { target: 'cache', backupId: backup.backupId }));
      assert.equal(failure.type, 'HealthCheckFailed', failure.message);
      assert.equal(String(await redis.call('GET', 'app:schema')), 'before-rollback', 'the previous data is live again');
      const leftovers = (await readdir(redis.dataDir)).filter((name) => name.includes('lifeboat-restore'));
      assert.deepEqual(leftovers, []);
    } finally {
      await writeFile(lifeboat.configPath, original);
    }
  });

  test('verify reads every stored RDB back in both repositories; retention keeps the newest and removes the rest, objects and all; status reads it all', async () => {
    const newest = await lifeboat.run('backup', { target: 'cache' });
    const report = await lifeboat.run('verify', { target: 'cache', readData: 'full' });
    assert.equal(report.valid, true, JSON.stringify(report.repositories.map((r) => r.backups.filter((b) => !b.valid))));
    for (const repository of report.repositories) {
      assert.ok(repository.backups.length >= 2, `${repository.repository} holds every backup taken so far`);
      assert.equal(repository.objectsRead, repository.backups.length, `${repository.repository}: every RDB read back and hashed`);
    }

    const result = await lifeboat.run('retention', { target: 'cache' });
    assert.equal(result.decision, 'applied');
    const config = loadConfig(lifeboat.configPath);
    for (const name of ['local', 's3']) {
      const repository = new Repository(name, openBackend(config.repositories[name]!, lifeboat.env));
      assert.deepEqual((await repository.listBackups('cache')).manifests.map((m) => m.id), [newest.backupId], `${name} keeps the newest backup only`);
      assert.deepEqual(await repository.listBackupFolders('cache'), [newest.backupId], `${name}: no object of a removed backup is left`);
    }
    const into = join(lifeboat.dir, 'kept.rdb');
    await lifeboat.run('restore', { target: 'cache', into });
    assert.equal((await checkRdbFile(into)).ok, true, 'what retention kept still restores');

    // lifeboat status reads a Redis target like any other: its newest backup and the verify's verdict, per repository.
    const status = await lifeboat.cli(['status', 'cache', '--json'], { env: lifeboat.env });
    const state = (JSON.parse(String(status.stdout)) as StateReport).targets[0]!;
    assert.equal(state.type, 'redis');
    assert.deepEqual(
      state.repositories.map((r) => [r.repository, r.error, r.newestBackup?.id, r.newestBackup?.kind, r.lastVerify?.valid]),
      [['local', null, newest.backupId, 'redis', true], ['s3', null, newest.backupId, 'redis', true]],
    );
  });

  test('bad input fails with a typed error, names what is wrong, and stores nothing', async () => {
    await redis.call('ACL', 'SETUSER', 'nosync', 'on', '>nosync-password', '+ping', '+info', '+config|get');
    process.env.LIFEBOAT_TEST_REDIS_NOSYNC = 'nosync-password';
    process.env.LIFEBOAT_TEST_REDIS_WRONG = 'wrong-password';
    const closedPort = await freePort();
    await configure({
      cache: target({ checkOnBackup: true }),
      down: target({ connection: { host: '127.0.0.1', port: closedPort, passwordEnv: redis.passwordEnv, connectTimeoutSeconds: 2 } }),
      wrong: target({ connection: { host: '127.0.0.1', port: redis.port, passwordEnv: 'LIFEBOAT_TEST_REDIS_WRONG' } }),
      nopass: target({ connection: { host: '127.0.0.1', port: redis.port } }),
      nosync: target({ connection: { host: '127.0.0.1', port: redis.port, user: 'nosync', passwordEnv: 'LIFEBOAT_TEST_REDIS_NOSYNC' } }),
      nohooks: target({ hooks: undefined }),
    });
    const cases: Array<[string, string, RegExp]> = [
      ['down', 'RedisConnectionFailed', new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${closedPort}`)],
      ['wrong', 'RedisAuthFailed', /WRONGPASS/],
      ['nopass', 'RedisAuthFailed', /NOAUTH/],
      ['nosync', 'RedisAuthFailed', /NOPERM|nosync/],
    ];
    for (const [name, type, message] of cases) {
      const failure = await failureOf(lifeboat.run('backup', { target: name }));
      assert.equal(failure.type, type, `${name}: ${failure.message}`);
      assert.match(failure.message, message);
      assert.ok(!failure.message.includes(redis.password) && !failure.message.includes('wrong-password'), 'no password in the message');
      assert.deepEqual(await storedFiles(name), [], `${name}: nothing stored`);
    }
    // `lifeboat check` finds the same before any run: each result says what to change.
    for (const [name, status, detail] of [['cache', 'ok', /^Redis 7\.\d+\.\d+ at redis:\/\/127\.0\.0\.1:\d+: \d+ keys$/], ['down', 'failed', /cannot reach Redis/], ['wrong', 'failed', /WRONGPASS/]] as const) {
      const cli = await lifeboat.cli(['check', name, '--json'], { env: lifeboat.env });
      const results = (JSON.parse(String(cli.stdout)) as { results: CheckResult[] }).results;
      const found = results.find((r) => r.area === 'redis' && r.subject === name);
      assert.equal(found?.status, status, `${name}: ${JSON.stringify(found)}`);
      assert.match(found.detail, detail);
      if (status === 'failed') assert.ok(found.fix, 'a failure says what to change');
      if (name === 'cache') assert.match(results.find((r) => r.subject === 'cache: Redis programs')?.detail ?? '', /^redis-cli 7\.\S+, redis-check-rdb 7\.\S+, redis-server 7\.\S+; drills run redis-server as /);
    }
    await lifeboat.run('backup', { target: 'nohooks' });
    const noHooks = await failureOf(lifeboat.run('restore', { target: 'nohooks' }));
    assert.equal(noHooks.type, 'InvalidConfig');
    assert.match(noHooks.message, /hooks\.stop and hooks\.start/);
    assert.equal(String(await redis.call('GET', 'app:schema')), 'before-rollback', 'nothing live was touched');
  });
});
