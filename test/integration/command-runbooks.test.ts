/**
 * Command targets: anything a command can export. The three recipes of docs/command.md run here
 * for real — a git repository (git bundle, restored by cloning from the bundle), PostgreSQL roles
 * and settings (pg_dumpall --globals-only from a real cluster, restored with psql into another),
 * and a binary export over 1 GiB that passes through a worker process whose memory stays far below
 * it and which writes no temporary file — plus drills, and the ways a command fails.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { loadConfig } from '../../src/config/load.js';
import type { CheckResult } from '../../src/check/result.js';
import { runbookFailure } from '../../src/client.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { serialize } from '../helpers/assertions.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';

async function failureOf(promise: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    return runbookFailure(error);
  }
  assert.fail('the run should have failed');
}

const git = (cwd: string, ...args: string[]) => execa('git', args, { cwd, env: { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' } });

/** More than 1 GiB (1.1 GiB), so that the whole payload could not hide in any buffer the worker has. */
const largeBytes = 1100 * 1024 * 1024;

/** The worker's peak resident memory (VmHWM), in bytes. */
async function peakMemory(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
}

describe('command targets: the three recipes, drills and failures', () => {
  let lifeboat: Lifeboat;
  let source: TestCluster;
  let scratch: TestCluster;
  let repoDir: string;
  let workerTmp: string;
  let workerPid: number;
  const pgPasswordEnv = 'LIFEBOAT_TEST_GLOBALS_PASSWORD';
  const scratchPasswordEnv = 'LIFEBOAT_TEST_GLOBALS_SCRATCH_PASSWORD';
  const secretEnv = 'LIFEBOAT_TEST_COMMAND_SECRET';
  const secret = 'do-not-leak-7c1e5a';
  const env = { [pgPasswordEnv]: 'globals-source-pw', [scratchPasswordEnv]: 'globals-scratch-pw', [secretEnv]: secret };

  /** Every file the fs repository holds for a target, or in one folder of it (its audit log records every run, failed ones too). */
  const storedFiles = async (target: string, folder: 'backups' | '' = 'backups'): Promise<string[]> => {
    const dir = join(lifeboat.dir, 'repository', target, folder);
    if (!existsSync(dir)) return [];
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
  };

  before(async () => {
    [lifeboat, source, scratch] = await Promise.all([createLifeboat('command'), createTestCluster(), createTestCluster()]);
    await source.query(`ALTER ROLE postgres PASSWORD '${env[pgPasswordEnv]}'`);
    await scratch.query(`ALTER ROLE postgres PASSWORD '${env[scratchPasswordEnv]}'`);
    await source.query("CREATE ROLE app_reader LOGIN PASSWORD 'reader-pw' CONNECTION LIMIT 7");
    await source.query("CREATE ROLE app_writer NOLOGIN");
    await source.query('GRANT app_writer TO app_reader');
    await source.query("ALTER ROLE app_reader SET statement_timeout = '42s'");

    repoDir = join(lifeboat.dir, 'app.git');
    await mkdir(repoDir);
    await git(repoDir, 'init', '--quiet', '--initial-branch=main');
    for (const [file, text] of [['README', 'hello'], ['main.c', 'int main(void) { return 0; }'], ['README', 'hello again']] as const) {
      await writeFile(join(repoDir, file), text);
      await git(repoDir, 'add', file);
      await git(repoDir, 'commit', '--quiet', '-m', `change ${file}`);
    }
    await git(repoDir, 'tag', 'v1.0');
    await git(repoDir, 'branch', 'feature');

    const pg = (cluster: TestCluster) => ['-h', '127.0.0.1', '-p', String(cluster.cluster.port), '-U', 'postgres', '--no-password'];
    const restoredRepo = join(lifeboat.dir, 'restored.git');
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        repo: {
          type: 'command',
          repositories: ['local', 's3'],
          payloadName: 'repo.bundle',
          retention: { keepLast: 1 },
          backup: { argv: ['git', 'bundle', 'create', '-', '--all'], cwd: repoDir, timeoutSeconds: 120 },
          restore: {
            // A bundle is read by name: the restore keeps it beside the clone while it clones.
            argv: ['sh', '-c', 'set -e; cat > "$1.bundle"; git clone --quiet --mirror "$1.bundle" "$1"; rm -f "$1.bundle"', 'restore', restoredRepo],
            timeoutSeconds: 120,
          },
          drill: {
            rpoTargetSeconds: 3600,
            checks: [
              { name: 'the bundle clones', argv: ['git', 'clone', '--quiet', '--mirror', '{payload}', '{scratch}/check.git'] },
              { name: 'every object is sound', argv: ['git', '--git-dir', 'check.git', 'fsck', '--strict', '--no-progress'] },
              { name: 'the release tag is there', argv: ['git', '--git-dir', 'check.git', 'rev-parse', '--verify', 'refs/tags/v1.0'] },
            ],
          },
        },
        globals: {
          type: 'command',
          repositories: ['local', 's3'],
          payloadName: 'globals.sql',
          backup: { argv: ['pg_dumpall', '--globals-only', ...pg(source)], envFrom: { PGPASSWORD: pgPasswordEnv }, timeoutSeconds: 60 },
          restore: { argv: ['psql', '--no-psqlrc', '--quiet', ...pg(scratch), '--dbname', 'postgres', '--file', '-'], envFrom: { PGPASSWORD: scratchPasswordEnv }, timeoutSeconds: 60 },
          drill: { checks: [{ name: 'roles are in it', argv: ['grep', '-q', 'CREATE ROLE app_reader', '{payload}'] }] },
        },
        large: {
          type: 'command',
          repositories: ['local', 's3'],
          payloadName: 'export.bin',
          backup: { argv: ['head', '-c', String(largeBytes), '/dev/zero'], timeoutSeconds: 600 },
          restore: { argv: ['sh', '-c', 'sha256sum > "$1"', 'restore', join(lifeboat.dir, 'large.sha256')], timeoutSeconds: 600 },
        },
        secretive: {
          type: 'command',
          repositories: ['local'],
          backup: { argv: ['sh', '-c', 'printf "%s" "$TOKEN" | sha256sum'], envFrom: { TOKEN: secretEnv } },
        },
        fails: { type: 'command', repositories: ['local'], backup: { argv: ['sh', '-c', 'echo partial output; echo "boom: the disk is on fire" >&2; exit 3'] } },
        missing: { type: 'command', repositories: ['local'], backup: { argv: ['no-such-program-lifeboat', '--export'] } },
        slow: { type: 'command', repositories: ['local'], backup: { argv: ['sh', '-c', 'echo started; sleep 30'], timeoutSeconds: 1 } },
        killed: { type: 'command', repositories: ['local'], backup: { argv: ['sh', '-c', 'echo some; kill -9 $$'] } },
        nocwd: { type: 'command', repositories: ['local'], backup: { argv: ['true'], cwd: join(lifeboat.dir, 'no-such-dir') } },
        noref: { type: 'command', repositories: ['local'], backup: { argv: ['true'], envFrom: { TOKEN: 'LIFEBOAT_TEST_UNSET_VARIABLE' } } },
        badrestore: {
          type: 'command',
          repositories: ['local'],
          backup: { argv: ['echo', 'data'] },
          restore: { argv: ['sh', '-c', 'cat >/dev/null; echo "import refused" >&2; exit 1'] },
          drill: { checks: [{ name: 'always fails', argv: ['sh', '-c', 'echo "not what I expected" >&2; exit 2'] }] },
        },
      }),
    );
    // The worker is a process of its own, with a temp dir of its own: its memory and its files can be looked at.
    workerTmp = await mkdtemp(join(tmpdir(), 'lifeboat-command-worker-tmp-'));
    const worker = lifeboat.spawnWorker({ ...env, TMPDIR: workerTmp });
    workerPid = worker.pid!;
  });

  after(async () => {
    await lifeboat?.close();
    await Promise.all([source?.close(), scratch?.close()]);
    if (workerTmp) await rm(workerTmp, { recursive: true, force: true });
  });

  test('a git repository: bundled into every repository, restored by cloning from the bundle, drilled by cloning and fsck', async () => {
    const backup = await lifeboat.run('backup', { target: 'repo' });
    assert.equal(backup.kind, 'command');
    assert.deepEqual(backup.repositories, ['local', 's3']);
    const restored = await lifeboat.run('restore', { target: 'repo', backupId: backup.backupId });
    assert.match(restored.restoredTo, /piped into `sh -c/);
    const refs = async (dir: string) => (await git(dir, 'for-each-ref', '--format=%(objectname) %(refname)')).stdout;
    assert.equal(await refs(join(lifeboat.dir, 'restored.git')), await refs(repoDir), 'every branch and tag, at the same commit');

    const report = await lifeboat.run('drill', { target: 'repo' });
    assert.equal(report.passed, true, JSON.stringify([report.failure, report.checks]));
    assert.deepEqual(report.checks.map((c) => c.name), ['the bundle clones', 'every object is sound', 'the release tag is there']);
    assert.deepEqual(report.checks[2]!.expected, '`git --git-dir check.git rev-parse --verify refs/tags/v1.0` exits with status 0 within 3600 s');
    assert.deepEqual(report.checks.map((c) => c.actual), Array(3).fill('exited with status 0'));
    assert.equal(report.rpo?.met, true);
    assert.deepEqual((await readdir(workerTmp)).filter((name) => name.startsWith('lifeboat-')), [], 'the scratch directory is gone');

    const into = join(lifeboat.dir, 'copy.bundle');
    await lifeboat.run('restore', { target: 'repo', backupId: backup.backupId, into });
    await git(repoDir, 'bundle', 'verify', into);
  });

  test('verify reads every stored bundle back in both repositories; retention keeps the newest and removes the rest', async () => {
    const newest = await lifeboat.run('backup', { target: 'repo' });
    const report = await lifeboat.run('verify', { target: 'repo', readData: 'full' });
    assert.equal(report.valid, true, JSON.stringify(report.repositories.map((r) => r.backups.filter((b) => !b.valid))));
    assert.deepEqual(report.repositories.map((r) => [r.repository, r.backups.length, r.objectsRead]), [['local', 2, 2], ['s3', 2, 2]]);

    const result = await lifeboat.run('retention', { target: 'repo' });
    assert.equal(result.decision, 'applied');
    const config = loadConfig(lifeboat.configPath);
    for (const name of ['local', 's3']) {
      const repository = new Repository(name, openBackend(config.repositories[name]!, lifeboat.env));
      assert.deepEqual((await repository.listBackups('repo')).manifests.map((m) => m.id), [newest.backupId], `${name} keeps the newest backup only`);
      assert.deepEqual(await repository.listBackupFolders('repo'), [newest.backupId], `${name}: no object of a removed backup is left`);
    }
  });

  test('PostgreSQL roles and settings: pg_dumpall --globals-only, restored with psql into another cluster', async () => {
    const backup = await lifeboat.run('backup', { target: 'globals' });
    await lifeboat.run('restore', { target: 'globals', backupId: backup.backupId });
    const roles = await scratch.query<{ rolname: string; rolcanlogin: boolean; rolconnlimit: number }>(
      "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname LIKE 'app_%' ORDER BY rolname",
    );
    assert.deepEqual(roles, [
      { rolname: 'app_reader', rolcanlogin: true, rolconnlimit: 7 },
      { rolname: 'app_writer', rolcanlogin: false, rolconnlimit: -1 },
    ]);
    const settings = await scratch.query<{ setconfig: string[] }>("SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'app_reader'");
    assert.deepEqual(settings.map((s) => s.setconfig), [['statement_timeout=42s']]);
    const members = await scratch.query("SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = 'app_writer'");
    assert.equal(members.length, 1, 'the role membership came along');
    const report = await lifeboat.run('drill', { target: 'globals' });
    assert.equal(report.passed, true, JSON.stringify([report.failure, report.checks]));
  });

  test('an export over 1 GiB streams through the worker: its memory stays far below the payload and it writes no temp file', async (t) => {
    const filesBefore = await readdir(workerTmp, { recursive: true });
    const backup = await lifeboat.run('backup', { target: 'large' });
    assert.equal(backup.sourceBytes, largeBytes);
    const manifest = JSON.parse(await readFile(join(lifeboat.dir, 'repository', 'large', 'backups', backup.backupId, 'manifest.json'), 'utf8'));
    const expected = createHash('sha256');
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < largeBytes / zeros.length; i++) expected.update(zeros);
    const sha256 = expected.digest('hex');
    assert.equal(manifest.source.sha256, sha256);

    await lifeboat.run('restore', { target: 'large', backupId: backup.backupId });
    assert.equal((await readFile(join(lifeboat.dir, 'large.sha256'), 'utf8')).split(' ')[0], sha256, 'the restore command read every byte, in order');

    const peak = await peakMemory(workerPid);
    t.diagnostic(`worker peak memory (VmHWM): ${(peak / 2 ** 20).toFixed(0)} MiB for a ${largeBytes / 2 ** 20} MiB payload`);
    assert.ok(peak < largeBytes / 2, `the worker's peak memory (${(peak / 2 ** 20).toFixed(0)} MiB) stays far below the payload (${largeBytes / 2 ** 20} MiB)`);
    const filesAfter = await readdir(workerTmp, { recursive: true });
    assert.deepEqual(filesAfter.filter((name) => !filesBefore.includes(name)), [], 'the worker wrote nothing to its temp dir');
    for (const file of await storedFiles('large')) assert.ok((await stat(file)).size < 64 << 20, `${file} is the compressed payload, not a copy`);
  });

  test('envFrom: the secret reaches the command, and never the config, the history or the manifest', async () => {
    const handle = await lifeboat.start('backup', { target: 'secretive' });
    const backup = (await handle.result()) as { backupId: string };
    const into = join(lifeboat.dir, 'secretive.out');
    await lifeboat.run('restore', { target: 'secretive', backupId: backup.backupId, into });
    assert.equal((await readFile(into, 'utf8')).split(' ')[0], createHash('sha256').update(secret).digest('hex'), 'the command had the value');
    assert.ok(!serialize(await handle.fetchHistory()).includes(secret), 'the history does not hold the secret');
    for (const file of await storedFiles('secretive', '')) assert.ok(!(await readFile(file)).includes(secret), `${file} does not hold the secret`);
    assert.ok(!(await readFile(lifeboat.configPath, 'utf8')).includes(secret));
  });

  test('a command that fails, is killed, times out or cannot start fails the backup with its stderr, and stores nothing', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['fails', 'CommandFailed', /exited with status 3:\nboom: the disk is on fire/],
      ['missing', 'CommandFailed', /could not start.*ENOENT|could not start/],
      ['slow', 'CommandFailed', /timed out after 1 s/],
      ['killed', 'CommandFailed', /was killed by SIGKILL/],
      ['nocwd', 'CommandFailed', /working directory .*no-such-dir/],
      ['noref', 'CredentialsUnavailable', /LIFEBOAT_TEST_UNSET_VARIABLE/],
    ];
    for (const [target, type, message] of cases) {
      const failure = await failureOf(lifeboat.run('backup', { target }));
      assert.equal(failure.type, type, `${target}: ${failure.message}`);
      assert.match(failure.message, message, target);
      assert.deepEqual(await storedFiles(target), [], `${target}: nothing stored`);
    }

    // `lifeboat check` finds what would keep a program from starting, without running it.
    const checked = async (target: string) => {
      const cli = await lifeboat.cli(['check', target, '--json'], { env: { ...lifeboat.env, ...env } });
      return (JSON.parse(String(cli.stdout)) as { results: CheckResult[] }).results.filter((r) => r.area === 'command').map((r) => [r.subject, r.status, r.detail]);
    };
    assert.deepEqual((await checked('repo')).map(([subject, status]) => [subject, status]), [
      ['repo: backup', 'ok'],
      ['repo: restore', 'ok'],
      ['repo: drill check "the bundle clones"', 'ok'],
      ['repo: drill check "every object is sound"', 'ok'],
      ['repo: drill check "the release tag is there"', 'ok'],
    ]);
    const [missing] = await checked('missing');
    assert.equal(missing?.[1], 'failed');
    assert.match(String(missing?.[2]), /no-such-program-lifeboat is not on its PATH/);
    assert.match(String((await checked('nocwd'))[0]?.[2]), /working directory .*no-such-dir does not exist/);
    assert.match(String((await checked('noref'))[0]?.[2]), /LIFEBOAT_TEST_UNSET_VARIABLE .* is not set/);
  });

  test('a restore command that fails, a failed drill check, and a restore without a restore command', async () => {
    const backup = await lifeboat.run('backup', { target: 'badrestore' });
    const restore = await failureOf(lifeboat.run('restore', { target: 'badrestore', backupId: backup.backupId }));
    assert.equal(restore.type, 'CommandFailed');
    assert.match(restore.message, /exited with status 1:\nimport refused/);
    const report = await lifeboat.run('drill', { target: 'badrestore' });
    assert.equal(report.passed, false);
    assert.equal(report.failure?.type, 'SmokeCheckFailed');
    assert.match(report.failure?.message ?? '', /always fails: .*exited with status 2: not what I expected/);
    await lifeboat.run('backup', { target: 'secretive' });
    const noCommand = await failureOf(lifeboat.run('restore', { target: 'secretive' }));
    assert.equal(noCommand.type, 'InvalidConfig');
    assert.match(noCommand.message, /no restore command/);
  });
});
