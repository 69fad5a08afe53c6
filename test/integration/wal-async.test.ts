/**
 * archive.mode "async" with a real PostgreSQL 15: `lifeboat archiver` runs beside the cluster as
 * the server's OS user, archive_command is the quick bin/lifeboat-wal-push in front of the
 * ordinary `lifeboat wal-push`.
 *
 * - the archiver pushes what PostgreSQL marks ready; archive_command only finds each file done
 *   (it never falls back, so the server log holds nothing from it), and every archived record is
 *   the file PostgreSQL wrote;
 * - without an archiver, archive_command pushes the file itself (and says so in the server log);
 * - archive.queueMaxBytes: with the repository unwritable for the archiver and more WAL waiting
 *   than the limit, the waiting files are dropped loudly (server log, the archiver's log and
 *   metric), PostgreSQL counts them archived and the repository holds none of them; once the
 *   repository is back, new WAL is archived again.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { archiveCommandLine } from '../../src/postgres/archive-commands.js';
import { readStatus, spoolDirOf } from '../../src/postgres/archive-spool.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { readWalRecord } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { startArchiver, type RunningArchiver } from '../helpers/archiver.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';
import { writeWalArchiveConfig } from '../helpers/wal-archive-command.js';

const target = 'orders';

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('WAL archiving, archive.mode async', () => {
  let db: TestCluster;
  let repository: Repository;
  let repositoryPath: string;
  let spoolRoot: string;
  let archiver: RunningArchiver | undefined;

  const configFor = async (name: string, archive: Record<string, unknown>) =>
    writeWalArchiveConfig(db.dir, name, { target, repositories: [{ name: 'local', repository: { type: 'fs', path: repositoryPath } }], compression: { level: 3, threads: 1 } }, undefined, {
      archive: { mode: 'async', spoolDir: spoolRoot, waitSeconds: 60, ...archive },
    });
  const serverLog = async () => readFile(db.logFile, 'utf8');
  /** Completes `count` segments (a row first, so each switch has something to complete). */
  const switchSegments = async (count: number): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      await db.query('INSERT INTO ticks VALUES (now())');
      names.push((await db.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name'))[0]!.name);
    }
    return names;
  };
  const archivedUpTo = (name: string) => async () => ((await db.query<{ last: string | null }>('SELECT last_archived_wal AS last FROM pg_stat_archiver'))[0]!.last ?? '') >= name;
  const sha256Of = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

  before(async () => {
    // wal_keep_size keeps every segment in pg_wal, so the test can compare the archive with it.
    db = await createTestCluster({ archive: true, settings: { wal_keep_size: '1GB' } });
    repositoryPath = join(db.dir, 'repository');
    spoolRoot = join(db.dir, 'spool');
    for (const dir of [repositoryPath, spoolRoot]) {
      await mkdir(dir, { mode: 0o700 });
      await chownToServerUser(dir);
    }
    repository = new Repository('local', openBackend({ type: 'fs', path: repositoryPath }));
    await db.query('CREATE TABLE ticks (at timestamptz)');
  });

  after(async () => {
    await archiver?.stop();
    await db?.close();
  });

  test('the archiver pushes ready WAL ahead of archive_command, which finds every file done', async () => {
    const archive = await configFor('async.yaml', {});
    archiver = await startArchiver({ configFile: archive.configFile, target, dataDir: db.dataDir, logFile: join(db.dir, 'archiver.log') });
    const spool = spoolDirOf(spoolRoot, target);
    await waitFor('the archiver runs', async () => (await readStatus(spool)) !== undefined);
    await db.configure({ archive_command: archiveCommandLine(target, archive.configFile, { mode: 'async', spoolDir: spoolRoot }) });

    const names = await switchSegments(5);
    await waitFor(`PostgreSQL archived ${names.at(-1)}`, archivedUpTo(names.at(-1)!));
    for (const name of names) {
      const record = await readWalRecord(repository, target, name);
      assert.ok(record, `${name} is in the repository`);
      assert.equal(record.original.sha256, await sha256Of(join(db.dataDir, 'pg_wal', name)), `${name} as PostgreSQL wrote it`);
    }
    assert.doesNotMatch(await serverLog(), /lifeboat wal-push/, 'archive_command never pushed a file itself');
    const status = await readStatus(spool);
    assert.ok(status && status.archivedFiles >= names.length, JSON.stringify(status));
    assert.equal(status.droppedFiles, 0);
  });

  test('without a running archiver, archive_command pushes the file itself and says so', async () => {
    await archiver!.stop();
    archiver = undefined;
    const [name] = await switchSegments(1);
    await waitFor(`PostgreSQL archived ${name}`, archivedUpTo(name!));
    assert.ok(await readWalRecord(repository, target, name!));
    assert.match(await serverLog(), new RegExp(`no archiver runs for .* pushing ${name} now`));
  });

  test('archive.queueMaxBytes: more WAL than the limit waiting for an unwritable repository is dropped, loudly; the archive works again once it is back', async () => {
    const metricsPort = await freePort();
    const archive = await configFor('dropping.yaml', { queueMaxBytes: 40 << 20 });
    const wal = join(repositoryPath, target, 'wal');
    // The archiver runs as the server's user: without write permission the repository refuses it.
    await chmod(wal, 0o500);
    try {
      archiver = await startArchiverWithMetrics(archive.configFile, metricsPort);
      const spool = spoolDirOf(spoolRoot, target);
      // 64 MiB of WAL against a 40 MiB limit: whatever waits once the limit is passed (three
      // segments or all four, as the archiver's scans fall) is dropped; what becomes ready after
      // the drop waits below the limit for the archive to come back.
      const names = await switchSegments(4);
      let dropped: string[] = [];
      await waitFor('the archiver dropped the waiting WAL and PostgreSQL counts it archived', async () => {
        dropped = (await readStatus(spool))?.lastDropped?.names ?? [];
        return dropped.length > 0 && (await archivedUpTo(dropped.at(-1)!)());
      });
      assert.ok(dropped.length >= 3, `more than 40 MiB waited: ${dropped.join(', ')}`);
      assert.deepEqual(dropped, names.slice(0, dropped.length), 'the oldest first, the one PostgreSQL was retrying included');
      for (const name of dropped) assert.equal(await readWalRecord(repository, target, name), undefined, `${name} was not stored`);
      assert.match(await serverLog(), /ERROR: WAL DROPPED: [0-9A-F]{24} was not archived/);
      assert.match(await archiver.log(), /WAL DROPPED/);
      const status = await readStatus(spool);
      assert.ok(status && status.droppedFiles >= dropped.length, JSON.stringify(status));
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const counted = Number(/lifeboat_archiver_dropped_segments_total\{target="orders"\} (\d+)/.exec(metrics)?.[1]);
      assert.ok(counted >= dropped.length, metrics);
    } finally {
      await chmod(wal, 0o700);
    }
    const [after] = await switchSegments(1);
    await waitFor(`PostgreSQL archived ${after}`, archivedUpTo(after!));
    assert.ok(await readWalRecord(repository, target, after!), 'archived for real once the repository is writable');
  });

  async function startArchiverWithMetrics(configFile: string, port: number): Promise<RunningArchiver> {
    const running = await startArchiver({ configFile, target, dataDir: db.dataDir, logFile: join(db.dir, 'archiver-dropping.log'), extraArgs: ['--metrics-listen', `127.0.0.1:${port}`] });
    await waitFor('the archiver serves metrics', async () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.ok, () => false));
    return running;
  }
});
