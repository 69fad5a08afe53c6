/**
 * Who may write what in an fs repository (src/repository/fs/access.ts): everything Lifeboat creates
 * inside the root takes the root's owner and group when the writer may set them, and the root's
 * owner and group permissions, never any for others, whatever the writer's umask. Checked with the
 * two deployments docs/postgresql-deployment.md describes, with real OS users:
 *
 * - the worker as root, PostgreSQL's archive_command as `postgres`, the root owned by postgres;
 * - the worker as its own unprivileged user and PostgreSQL as `postgres`, sharing only a group,
 *   the root setgid 2770 (here `nobody` stands for the worker's user).
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { projectRoot } from '../../src/dev/tools.js';
import { accessFromRoot } from '../../src/repository/fs/access.js';
import { FsBackend } from '../../src/repository/fs/backend.js';
import { serverUser } from '../../src/postgres/tools.js';

const nobody = 65534;
/** A group only the two unprivileged users of the second deployment share (it needs no name). */
const sharedGroup = 4242;

async function ownerAndMode(path: string): Promise<{ uid: number; gid: number; mode: string }> {
  const info = await stat(path);
  return { uid: info.uid, gid: info.gid, mode: (info.mode & 0o7777).toString(8).padStart(4, '0') };
}

/** One repository operation in a process of its own, as the given user and group (no supplementary groups). */
async function asUser(user: { uid: number; gid: number }, root: string, op: 'put' | 'get' | 'delete', key: string, content?: string) {
  const result = await execa(process.execPath, ['--import', 'tsx', join(projectRoot, 'test', 'helpers', 'fs-repository-op.ts'), root, op, key, ...(content === undefined ? [] : [content])], {
    cwd: projectRoot,
    uid: user.uid,
    gid: user.gid,
    reject: false,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp' },
  });
  return { ok: result.exitCode === 0, output: String(result.stdout), stderr: String(result.stderr) };
}

describe('fs repository access: the root decides owners and modes', () => {
  let dir: string;
  let postgres: { uid: number; gid: number };

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'these tests run two OS users, so they run as root (as the test suite does)');
    const user = await serverUser();
    postgres = { uid: user.uid, gid: user.gid };
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-fs-access-'));
    await chmod(dir, 0o755);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('derives modes from the root: never anything for others, group bits and setgid as the root has them', () => {
    assert.deepEqual(accessFromRoot({ uid: 1, gid: 2, mode: 0o40700 }), { uid: 1, gid: 2, dirMode: 0o700, fileMode: 0o600 });
    assert.deepEqual(accessFromRoot({ uid: 1, gid: 2, mode: 0o42770 }), { uid: 1, gid: 2, dirMode: 0o2770, fileMode: 0o640 });
    assert.deepEqual(accessFromRoot({ uid: 1, gid: 2, mode: 0o40755 }), { uid: 1, gid: 2, dirMode: 0o750, fileMode: 0o640 });
    assert.deepEqual(accessFromRoot({ uid: 1, gid: 2, mode: 0o40777 }), { uid: 1, gid: 2, dirMode: 0o770, fileMode: 0o640 });
  });

  it('a root worker writing into a repository owned by postgres leaves everything owned by postgres, 0700/0600, so wal-push (as postgres) can write beside it', async () => {
    const root = join(dir, 'root-worker');
    await mkdir(root, { mode: 0o700 });
    await chown(root, postgres.uid, postgres.gid);
    const worker = new FsBackend({ path: root });
    const previous = process.umask(0o077);
    try {
      await worker.put('main/backups/b1/manifest.json', Readable.from([Buffer.from('{}')]));
    } finally {
      process.umask(previous);
    }
    for (const path of ['main', 'main/backups', 'main/backups/b1']) assert.deepEqual(await ownerAndMode(join(root, path)), { ...postgres, mode: '0700' }, path);
    assert.deepEqual(await ownerAndMode(join(root, 'main/backups/b1/manifest.json')), { ...postgres, mode: '0600' });

    // archive_command, as postgres, creates <target>/wal inside the directory the worker created.
    const pushed = await asUser(postgres, root, 'put', 'main/wal/000000010000000000000001.json', 'wal record');
    assert.ok(pushed.ok, pushed.output + pushed.stderr);
    assert.deepEqual(await ownerAndMode(join(root, 'main/wal/000000010000000000000001.json')), { ...postgres, mode: '0600' });
    // And the worker reads what postgres wrote (a PITR's listing, the archive check).
    assert.equal(await readFile(join(root, 'main/wal/000000010000000000000001.json'), 'utf8'), 'wal record');
  });

  it('a root worker gives back to the root\'s owner the directories an older Lifeboat created as root:root 0700', async () => {
    const root = join(dir, 'repaired');
    await mkdir(root, { mode: 0o700 });
    await chown(root, postgres.uid, postgres.gid);
    // What the defect left: <target>/ created by a root worker before this fix.
    await mkdir(join(root, 'main', 'backups'), { recursive: true, mode: 0o700 });
    const refused = await asUser(postgres, root, 'put', 'main/wal/000000010000000000000001.json', 'x');
    assert.equal(refused.ok, false);
    assert.match(refused.output, /main \(in .*\) is owned by uid 0, gid 0, mode 0700; this process runs as uid \d+ \(postgres\)/);
    assert.match(refused.output, /chown -R --reference=/);

    await new FsBackend({ path: root }).put('main/backups/b2/manifest.json', Readable.from([Buffer.from('{}')]));
    assert.deepEqual(await ownerAndMode(join(root, 'main')), { ...postgres, mode: '0700' });
    assert.deepEqual(await ownerAndMode(join(root, 'main/backups')), { ...postgres, mode: '0700' });
    const pushed = await asUser(postgres, root, 'put', 'main/wal/000000010000000000000001.json', 'x');
    assert.ok(pushed.ok, pushed.output + pushed.stderr);
  });

  it('two unprivileged users sharing a group and a setgid 2770 root: each writes where the other created the parent, reads the other\'s files; nothing is readable by others', async () => {
    const root = join(dir, 'shared-group');
    await mkdir(root);
    await chown(root, nobody, sharedGroup);
    await chmod(root, 0o2770);
    const workerUser = { uid: nobody, gid: sharedGroup };
    const serverInGroup = { uid: postgres.uid, gid: sharedGroup };

    // The base backup first (the worker creates <target>/), then archiving (postgres creates <target>/wal/) ...
    let step = await asUser(workerUser, root, 'put', 'main/backups/b1/base.tar.000.zst', 'part');
    assert.ok(step.ok, step.output + step.stderr);
    step = await asUser(serverInGroup, root, 'put', 'main/wal/000000010000000000000002.zst', 'segment');
    assert.ok(step.ok, step.output + step.stderr);
    // ... and the other order on another target: archiving creates <target>/, the worker writes under it.
    step = await asUser(serverInGroup, root, 'put', 'other/wal/000000010000000000000001.zst', 'segment');
    assert.ok(step.ok, step.output + step.stderr);
    step = await asUser(workerUser, root, 'put', 'other/backups/b1/manifest.json', '{}');
    assert.ok(step.ok, step.output + step.stderr);

    for (const path of ['main', 'main/backups', 'main/backups/b1', 'main/wal', 'other', 'other/wal', 'other/backups/b1']) {
      const { gid, mode } = await ownerAndMode(join(root, path));
      assert.deepEqual({ gid, mode }, { gid: sharedGroup, mode: '2770' }, path);
    }
    for (const path of ['main/backups/b1/base.tar.000.zst', 'main/wal/000000010000000000000002.zst', 'other/backups/b1/manifest.json']) {
      const { gid, mode } = await ownerAndMode(join(root, path));
      assert.deepEqual({ gid, mode }, { gid: sharedGroup, mode: '0640' }, path);
    }
    // wal-fetch (postgres) reads WAL; the worker reads WAL too, and removes what it prunes.
    assert.equal((await asUser(serverInGroup, root, 'get', 'main/wal/000000010000000000000002.zst')).output, 'segment');
    assert.equal((await asUser(workerUser, root, 'get', 'main/wal/000000010000000000000002.zst')).output, 'segment');
    assert.ok((await asUser(workerUser, root, 'delete', 'other/wal/000000010000000000000001.zst')).ok);

    // A user outside the group is refused, and told which directory refused whom.
    const outsider = await asUser(postgres, root, 'get', 'main/wal/000000010000000000000002.zst');
    assert.equal(outsider.ok, false);
    assert.match(outsider.output, /the repository root .* is owned by uid 65534, gid 4242, mode 2770; this process runs as uid \d+ \(postgres\), groups \d+ and may not enter it/);
  });

  it('a permission error names the directory, its owner and mode, and the writer', async () => {
    const root = join(dir, 'refusing');
    await mkdir(join(root, 'main'), { recursive: true, mode: 0o700 });
    await chmod(root, 0o755);
    const refused = await asUser(postgres, root, 'put', 'main/wal/x.json', 'x');
    assert.equal(refused.ok, false);
    assert.match(refused.output, /^cannot put "main\/wal\/x\.json" into fs:.*: EACCES/);
    assert.match(refused.output, /main \(in .*\) is owned by uid 0, gid 0, mode 0700; this process runs as uid \d+ \(postgres\).* and may not enter it/);
    assert.match(refused.output, /docs\/postgresql-deployment\.md/);
  });
});
