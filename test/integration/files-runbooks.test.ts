/**
 * files targets on a real Temporal server, local disk and S3: a backup of two roots (configuration
 * and certificates) in tar parts and an index, restored --into a new directory, by --path, and in
 * place (what the backup does not cover carried over, the live roots kept as safety copies, hooks,
 * a health check that rolls back), drilled with smoke checks; and the bad input each refuses.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

/** Every entry under dir: type, mode and content hash (what a restore must reproduce). */
async function treeState(dir: string): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    const stats = await lstat(path);
    const what = stats.isDirectory() ? 'dir' : stats.isSymbolicLink() ? `-> ${await readlink(path)}` : createHash('sha256').update(await readFile(path)).digest('hex').slice(0, 16);
    state[name] = `${what} ${(stats.mode & 0o7777).toString(8)}`;
  }
  return state;
}

function failureType(error: unknown): string | undefined {
  return runbookFailure(error).type;
}

describe('files runbooks on a real Temporal server, local disk and S3', () => {
  let lifeboat: Lifeboat;
  let app: string;
  let certs: string;
  let keyFile: string;
  let targets: Record<string, Record<string, unknown>>;

  before(async () => {
    lifeboat = await createLifeboat('files');
    app = join(lifeboat.dir, 'live', 'app');
    certs = join(lifeboat.dir, 'live', 'certs');
    await mkdir(join(app, 'conf', 'sites'), { recursive: true });
    await mkdir(join(app, 'cache'), { recursive: true });
    await mkdir(certs, { recursive: true });
    await writeFile(join(app, 'conf', 'app.yaml'), 'listen: 8080\nworkers: 4\n');
    for (let i = 0; i < 20; i++) await writeFile(join(app, 'conf', 'sites', `site-${i}.conf`), `server_name site${i}.example;\n`.repeat(20));
    await writeFile(join(app, 'data.bin'), randomBytes(1536 << 10));
    await writeFile(join(app, 'cache', 'render.tmp'), 'cache');
    await symlink('conf/app.yaml', join(app, 'current.yaml'));
    await writeFile(join(certs, 'site.pem'), `-----BEGIN CERTIFICATE-----\n${randomBytes(900).toString('base64')}\n-----END CERTIFICATE-----\n`);
    await writeFile(join(certs, 'site.key'), randomBytes(256));
    await chmod(join(certs, 'site.key'), 0o600);
    keyFile = join(lifeboat.dir, 'backup.key');
    await writeFile(keyFile, randomBytes(32));
    targets = {
      config: {
        type: 'files',
        roots: [app, certs],
        exclude: ['cache/**'],
        partSizeMiB: 1,
        repositories: ['local', 's3'],
        drill: {
          rtoTargetSeconds: 300,
          mustExist: ['app/conf/app.yaml', 'certs/site.pem'],
          commands: [{ name: 'the config names its port', run: 'grep -q "listen: 8080" app/conf/app.yaml' }],
        },
      },
      'config-s3': { type: 'files', roots: [certs], repositories: ['s3'] },
    };
    await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  test('a backup stores encrypted tar parts and an index in every repository, manifest last', async () => {
    const result = await lifeboat.run('backup', { target: 'config' });
    assert.deepEqual(result.timeline.map((s) => [s.name, s.status]), [
      ['resolve-target', 'completed'],
      ['pack-and-upload', 'completed'],
      ['write-manifest', 'completed'],
      ['verify-stored', 'completed'],
    ]);
    assert.equal(result.kind, 'files');
    assert.deepEqual(result.files?.changedWhileRead, []);
    const dir = join(lifeboat.dir, 'repository', 'config', 'backups', result.backupId);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    assert.ok(manifest.parts.length >= 2, `1.5 MiB of data and the rest make two 1 MiB parts (${manifest.parts.length})`);
    assert.deepEqual(manifest.objects.map((o: { name: string }) => o.name), [...manifest.parts.map((p: { name: string }) => p.name), 'attempt-1/index.json.zst.enc']);
    assert.equal(manifest.source.files, 24, '20 sites, app.yaml, data.bin, site.pem, site.key (not the cache)');
    assert.equal(manifest.source.symlinks, 1);
    assert.deepEqual(manifest.source.roots.map((r: { name: string }) => r.name), ['app', 'certs']);
    const stored = await readFile(join(dir, manifest.parts[0].name));
    assert.equal(stored.includes(Buffer.from('server_name')), false, 'no plaintext in a stored part');
    assert.equal(JSON.stringify(manifest).includes('site-1.conf'), false, 'the manifest lists counts; the names are in the index');
  });

  test('`lifeboat ls` lists every entry of the newest backup from its index, decrypted with the config\'s key, without a worker', async () => {
    const listed = await lifeboat.cli(['ls', 'config', '--json']);
    assert.equal(listed.exitCode, 0, listed.all);
    const { entries } = JSON.parse(listed.stdout) as { entries: Array<{ path: string; type: string; mode: number; size: number; linkTarget?: string }> };
    assert.equal(entries.length, 29, '2 roots, conf, conf/sites, 20 sites, app.yaml, data.bin, current.yaml, site.pem, site.key (not the cache)');
    assert.deepEqual(entries.find((e) => e.path === 'certs/site.key'), { ...entries.find((e) => e.path === 'certs/site.key'), type: 'file', mode: 0o600, size: 256 });
    assert.equal(entries.find((e) => e.path === 'app/current.yaml')?.linkTarget, 'conf/app.yaml');
    const table = await lifeboat.cli(['ls', 'config']);
    assert.match(table.stdout, /^file\s+0600 \d+:\d+\s+256 \S+  certs\/site.key$/m);
    await lifeboat.writeConfig(lifeboat.baseConfig({ ...targets, db: { type: 'sqlite', path: join(lifeboat.dir, 'x.sqlite'), repositories: ['local'] } }, { encryption: { keyFile } }));
    const one = await lifeboat.cli(['ls', 'db']);
    assert.equal(one.exitCode, 2, one.all);
    assert.match(one.stderr, /its backups are one piece/);
    await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
  });

  test('restore --into writes every entry to a new directory, each file\'s sha256 checked, the live roots untouched', async () => {
    const into = join(lifeboat.dir, 'restored');
    const result = await lifeboat.run('restore', { target: 'config', into });
    assert.equal(result.restoredTo, into);
    assert.equal(result.safetyCopy, null);
    const expected = await treeState(app);
    delete expected.cache;
    delete expected['cache/render.tmp'];
    assert.deepEqual(await treeState(join(into, 'app')), expected);
    assert.deepEqual(await treeState(join(into, 'certs')), await treeState(certs));
    assert.deepEqual((await readdir(lifeboat.dir)).filter((name) => name.includes('.lifeboat-')), [], 'no partial directory left');
    assert.match(result.timeline.find((s) => s.name === 'fetch-and-verify')?.detail ?? '', /every sha256 ok/);
  });

  test('restore --into an existing path is refused before anything is fetched', async () => {
    const into = join(lifeboat.dir, 'occupied');
    await mkdir(into);
    await writeFile(join(into, 'keep.txt'), 'mine');
    await assert.rejects(lifeboat.run('restore', { target: 'config', into }), (error: unknown) => failureType(error) === 'InvalidInput' && /already exists/.test(runbookFailure(error).message));
    assert.deepEqual(await readdir(into), ['keep.txt']);
  });

  test('restore --path restores what it names and the directories above, downloading only the part that holds them', async () => {
    const into = join(lifeboat.dir, 'one-site');
    const result = await lifeboat.run('restore', { target: 'config', into, paths: ['app/conf/sites/site-7.conf'] });
    assert.deepEqual(Object.keys(await treeState(into)), ['app', 'app/conf', 'app/conf/sites', 'app/conf/sites/site-7.conf']);
    assert.match(result.timeline.find((s) => s.name === 'fetch-and-verify')?.detail ?? '', /from 1 of [2-9] parts/);
    const cli = await lifeboat.cli(['restore', 'config', '--into', join(lifeboat.dir, 'nothing'), '--path', 'app/nothing/**', '--wait']);
    assert.equal(cli.exitCode, 2, cli.all);
    assert.match(cli.stderr, /\(InvalidInput\).*matches no entry/);
  });

  test('a backup, restore and drill through S3 alone', async () => {
    await lifeboat.run('backup', { target: 'config-s3' });
    const into = join(lifeboat.dir, 'from-s3');
    const result = await lifeboat.run('restore', { target: 'config-s3', into });
    assert.match(result.timeline.find((s) => s.name === 'fetch-and-verify')?.detail ?? '', /via s3/);
    assert.deepEqual(await treeState(join(into, 'certs')), await treeState(certs));
    const report = await lifeboat.run('drill', { target: 'config-s3' });
    assert.equal(report.passed, true, JSON.stringify(report.failure));
    assert.match(report.timeline.find((s) => s.name === 'fetch-and-verify')?.detail ?? '', /via s3/);
  });

  test('restore in place puts back what the backup holds, keeps what it does not cover, and keeps the live roots as safety copies', async () => {
    const backup = await lifeboat.run('backup', { target: 'config' });
    const atBackup = { app: await treeState(app), certs: await treeState(certs) };
    await writeFile(join(app, 'conf', 'app.yaml'), 'listen: 9999\n');
    await writeFile(join(app, 'conf', 'made-after.yaml'), 'new\n');
    await writeFile(join(app, 'cache', 'fresh.tmp'), 'excluded, so never backed up');
    const fresh = (await treeState(app))['cache/fresh.tmp']!;
    await rm(join(certs, 'site.key'));

    const cli = await lifeboat.cli(['restore', 'config', '--backup', backup.backupId, '--yes', '--wait', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const result = JSON.parse(cli.stdout) as { safetyCopy: string; timeline: Array<{ name: string }> };
    assert.deepEqual(result.timeline.map((s) => s.name), ['resolve-target', 'locate-backup', 'fetch-and-verify', 'stop-hook', 'swap', 'start-hook', 'verify-live']);
    assert.deepEqual(await treeState(app), { ...atBackup.app, 'cache/fresh.tmp': fresh }, 'app is as backed up, plus the excluded cache file carried over');
    assert.deepEqual(await treeState(certs), atBackup.certs);
    const [appSafety, certsSafety] = result.safetyCopy.split(', ');
    assert.equal(await readFile(join(appSafety!, 'conf', 'app.yaml'), 'utf8'), 'listen: 9999\n', 'the safety copy is the tree as it was');
    assert.ok(existsSync(join(appSafety!, 'conf', 'made-after.yaml')));
    assert.ok(!existsSync(join(certsSafety!, 'site.key')));
    await rm(appSafety!, { recursive: true });
    await rm(certsSafety!, { recursive: true });
    assert.deepEqual((await readdir(join(lifeboat.dir, 'live'))).sort(), ['app', 'certs'], 'no staging left beside the roots');
  });

  test('a health check that fails after the swap stops the application, puts the live roots back and starts it again', async () => {
    const server = createServer((_request, response) => response.writeHead(503).end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const hookLog = join(lifeboat.dir, 'hooks.log');
    const { port } = server.address() as AddressInfo;
    try {
      await lifeboat.writeConfig(lifeboat.baseConfig({
        ...targets,
        config: { ...targets.config, hooks: { stop: `echo stop >> ${hookLog}`, start: `echo start >> ${hookLog}`, healthUrl: `http://127.0.0.1:${port}/`, healthTimeoutSeconds: 1 } },
      }, { encryption: { keyFile } }));
      await writeFile(join(app, 'conf', 'app.yaml'), 'listen: 7777\n');
      const before = { app: await treeState(app), certs: await treeState(certs) };
      await assert.rejects(lifeboat.run('restore', { target: 'config' }), (error: unknown) => failureType(error) === 'HealthCheckFailed');
      assert.deepEqual({ app: await treeState(app), certs: await treeState(certs) }, before, 'both roots are as they were before the restore');
      assert.deepEqual((await readFile(hookLog, 'utf8')).trim().split('\n'), ['stop', 'start', 'stop', 'start']);
      assert.deepEqual((await readdir(join(lifeboat.dir, 'live'))).sort(), ['app', 'certs'], 'the restored trees and staging are gone');
    } finally {
      server.close();
      await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
    }
  });

  test('a drill restores into scratch, checks every hash, runs the smoke checks and removes the scratch copy', async () => {
    const report = await lifeboat.run('drill', { target: 'config' });
    assert.equal(report.passed, true, JSON.stringify(report.failure));
    assert.deepEqual(report.checks.map((c) => [c.name, c.passed]), [
      ['every file hashes to its sha256', true],
      ['app/conf/app.yaml exists', true],
      ['certs/site.pem exists', true],
      ['the config names its port', true],
    ]);
    assert.equal(report.files?.files, 24);
    const scratch = report.timeline.find((s) => s.name === 'prepare-scratch')?.detail;
    assert.ok(scratch && !existsSync(scratch), 'scratch removed');
  });

  test('a drill whose file is missing or whose command fails reports which, and still cleans up', async () => {
    await lifeboat.writeConfig(lifeboat.baseConfig({
      ...targets,
      config: { ...targets.config, drill: { mustExist: ['app/conf/absent.yaml'], commands: [{ name: 'fails', run: 'echo checking; exit 3' }] } },
    }, { encryption: { keyFile } }));
    try {
      const report = await lifeboat.run('drill', { target: 'config' });
      assert.equal(report.passed, false);
      assert.equal(report.failure?.type, 'SmokeCheckFailed');
      assert.match(report.failure?.message ?? '', /app\/conf\/absent.yaml exists: missing from the restored copy; fails: exited with 3: checking/);
      const scratch = report.timeline.find((s) => s.name === 'prepare-scratch')?.detail;
      assert.ok(scratch && !existsSync(scratch));
    } finally {
      await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
    }
  });

  test('a root that does not exist fails the backup with SourceNotFound, naming it, and leaves nothing stored', async () => {
    const missing = join(lifeboat.dir, 'no-such-dir');
    await lifeboat.writeConfig(lifeboat.baseConfig({ ...targets, ghost: { type: 'files', roots: [missing], repositories: ['local'] } }, { encryption: { keyFile } }));
    try {
      await assert.rejects(lifeboat.run('backup', { target: 'ghost' }), (error: unknown) => failureType(error) === 'SourceNotFound' && runbookFailure(error).message.includes(missing));
      assert.ok(!existsSync(join(lifeboat.dir, 'repository', 'ghost', 'backups')) || (await readdir(join(lifeboat.dir, 'repository', 'ghost', 'backups'), { recursive: true })).length === 0);
    } finally {
      await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
    }
  });

  test('two roots with one name, and --path for a kind restored whole, are refused before anything runs', async () => {
    await lifeboat.writeConfig(lifeboat.baseConfig({ ...targets, twins: { type: 'files', roots: [app, join(lifeboat.dir, 'elsewhere', 'app')], repositories: ['local'] } }));
    const twins = await lifeboat.cli(['backup', 'twins']);
    assert.equal(twins.exitCode, 2, twins.all);
    assert.match(twins.stderr, /two roots end in "app"/);
    await lifeboat.writeConfig(lifeboat.baseConfig({ ...targets, db: { type: 'sqlite', path: join(lifeboat.dir, 'x.sqlite'), repositories: ['local'] } }, { encryption: { keyFile } }));
    const whole = await lifeboat.cli(['restore', 'db', '--into', join(lifeboat.dir, 'x-copy.sqlite'), '--path', 'x']);
    assert.equal(whole.exitCode, 2, whole.all);
    assert.match(whole.stderr, /--path: target "db" is restored whole/);
    await lifeboat.writeConfig(lifeboat.baseConfig(targets, { encryption: { keyFile } }));
  });
});
