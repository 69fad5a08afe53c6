/**
 * archive.mode "async" survives a killed archiver and an unreachable repository, with a real
 * PostgreSQL archiving through the quick archive_command (bin/lifeboat-wal-push):
 *
 * - the archiver SIGKILLed while it stores a segment (its temp file is in the repository): no
 *   spool mark for a segment the repository does not hold; PostgreSQL goes on (archive_command
 *   pushes itself once the heartbeat is stale) and a new archiver finishes the rest;
 * - the repository unwritable for the archiver and archive_command for 30 s (no queueMaxBytes):
 *   nothing is marked or counted archived meanwhile, nothing is dropped, and once it is back the
 *   archive is complete.
 *
 * After each: every segment PostgreSQL counts archived is in the repository, recorded with the
 * sha256 of the file PostgreSQL wrote (nothing stored twice with different content), and no
 * half-written object is visible. The worker never pushes WAL (the archiver and archive_command
 * do), so killing it cannot touch the archive; test/durability/postgres-pitr-kill.test.ts kills
 * it during a recovery that fetches this WAL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { archiveCommandLine } from '../../src/postgres/archive-commands.js';
import { markedNames, readMark, readStatus, spoolDirOf } from '../../src/postgres/archive-spool.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { readWalRecord } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { startArchiver, type RunningArchiver } from '../helpers/archiver.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { writeWalArchiveConfig } from '../helpers/wal-archive-command.js';

const target = 'ledger';
const outageSeconds = 30;

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((resolve) => setTimeout(resolve, 20))) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
  }
}

describe('archive.mode async survives a killed archiver and an unreachable repository', () => {
  let db: TestCluster;
  let repository: Repository;
  let repositoryPath: string;
  let spoolRoot: string;
  let spool: string;
  let archiver: RunningArchiver | undefined;
  let first: string | undefined;

  const writeConfig = async (name: string, level: number) =>
    writeWalArchiveConfig(db.dir, name, { target, repositories: [{ name: 'local', repository: { type: 'fs', path: repositoryPath } }], compression: { level, threads: 1 } }, undefined, {
      archive: { mode: 'async', spoolDir: spoolRoot, waitSeconds: 60, parallel: 2 },
    });
  const switchSegments = async (count: number): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      // About 3 MB of WAL that zstd cannot squeeze to nothing, then the switch.
      await db.query(`INSERT INTO filler SELECT md5(random()::text) || md5(random()::text) FROM generate_series(1, 30000)`);
      names.push((await db.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name'))[0]!.name);
    }
    first ??= names[0];
    return names;
  };
  const lastArchived = async () => (await db.query<{ last: string | null }>('SELECT last_archived_wal AS last FROM pg_stat_archiver'))[0]!.last ?? '';
  const sha256Of = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

  /** Every mark that says archived is backed by the repository's record of the same bytes. */
  const assertMarksDurable = async () => {
    for (const name of await markedNames(spool)) {
      const mark = await readMark(spool, name);
      if (mark?.status !== 'archived') continue;
      const record = await readWalRecord(repository, target, name);
      assert.ok(record, `${name} is marked archived, so the repository holds it`);
      assert.equal(record.original.sha256, mark.sha256);
    }
  };

  /** Every segment from the first to `last` is archived, as PostgreSQL wrote it; nothing half-written is visible. */
  const assertArchiveComplete = async (last: string) => {
    const segments = (await readdir(join(db.dataDir, 'pg_wal'))).filter((name) => /^[0-9A-F]{24}$/.test(name) && name >= first! && name <= last).sort();
    assert.ok(segments.length > 0 && segments.at(-1) === last, `pg_wal still holds ${first} to ${last}`);
    for (const name of segments) {
      const record = await readWalRecord(repository, target, name);
      assert.ok(record, `${name} is archived`);
      assert.equal(record.original.sha256, await sha256Of(join(db.dataDir, 'pg_wal', name)), `${name} is stored as PostgreSQL wrote it`);
    }
    const visible = (await repository.backend.list(`${target}/wal/`)).map((object) => object.key);
    for (const key of visible) assert.match(key, /\/[0-9A-F]{24}\.(zst|json)$/, `only whole objects are visible: ${key}`);
  };

  before(async () => {
    // wal_keep_size keeps every segment in pg_wal, so the archive can be compared with it.
    db = await createTestCluster({ archive: true, settings: { wal_keep_size: '1GB' } });
    repositoryPath = join(db.dir, 'repository');
    spoolRoot = join(db.dir, 'spool');
    spool = spoolDirOf(spoolRoot, target);
    for (const dir of [repositoryPath, join(repositoryPath, target), join(repositoryPath, target, 'wal'), spoolRoot]) {
      await mkdir(dir, { mode: 0o700 });
      await chownToServerUser(dir);
    }
    repository = new Repository('local', openBackend({ type: 'fs', path: repositoryPath }));
    await db.query('CREATE TABLE filler (a text)');
  });

  after(async () => {
    await chmod(join(repositoryPath, target, 'wal'), 0o700).catch(() => undefined);
    await archiver?.stop();
    await db?.close();
  });

  test('SIGKILL while the archiver stores a segment: no mark without the stored segment; a new archiver completes the archive', async () => {
    // zstd level 19: each segment takes seconds to store, time to kill the archiver in the middle.
    const slow = await writeConfig('slow.yaml', 19);
    archiver = await startArchiver({ configFile: slow.configFile, target, dataDir: db.dataDir, logFile: join(db.dir, 'archiver-1.log') });
    await waitFor('the archiver runs', async () => (await readStatus(spool)) !== undefined);
    await db.configure({ archive_command: archiveCommandLine(target, slow.configFile, { mode: 'async', spoolDir: spoolRoot }) });
    const names = await switchSegments(4);
    const wal = join(repositoryPath, target, 'wal');
    await waitFor('a segment is being written into the repository', async () => (await readdir(wal)).some((entry) => entry.includes('.tmp-')));
    archiver.process.kill('SIGKILL');
    await archiver.exited;
    await assertMarksDurable();

    const fast = await writeConfig('fast.yaml', 3);
    archiver = await startArchiver({ configFile: fast.configFile, target, dataDir: db.dataDir, logFile: join(db.dir, 'archiver-2.log') });
    await waitFor(`PostgreSQL archived ${names.at(-1)}`, async () => (await lastArchived()) >= names.at(-1)!);
    await assertMarksDurable();
    await assertArchiveComplete(names.at(-1)!);
  });

  test(`the repository unwritable for ${outageSeconds} s: nothing counted archived meanwhile, nothing dropped; complete once it is back`, async () => {
    const before = await lastArchived();
    const wal = join(repositoryPath, target, 'wal');
    await chmod(wal, 0o500);
    const outageEnds = Date.now() + outageSeconds * 1000;
    const names: string[] = [];
    try {
      names.push(...(await switchSegments(2)));
      while (Date.now() < outageEnds) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.equal(await lastArchived(), before, 'nothing is counted archived while the repository refuses');
        await assertMarksDurable();
        if (names.length < 4 && Date.now() > outageEnds - outageSeconds * 500) names.push(...(await switchSegments(1)));
      }
      const status = await readStatus(spool);
      assert.ok(status && status.failedAttempts > 0, `the archiver tried and failed: ${JSON.stringify(status)}`);
    } finally {
      await chmod(wal, 0o700);
    }
    await waitFor(`PostgreSQL archived ${names.at(-1)}`, async () => (await lastArchived()) >= names.at(-1)!);
    await assertMarksDurable();
    await assertArchiveComplete(names.at(-1)!);
    assert.equal((await readStatus(spool))?.droppedFiles, 0, 'nothing dropped without archive.queueMaxBytes');
  });
});
