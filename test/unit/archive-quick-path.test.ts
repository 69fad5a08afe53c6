/**
 * The quick paths PostgreSQL runs once per WAL file (bin/lifeboat-wal-push, bin/lifeboat-wal-fetch):
 * real /bin/sh scripts, run here on files in a temp directory, with a stand-in for the slow command
 * they fall back to (it exits 7 and leaves a trace).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { projectRoot } from '../../src/dev/tools.js';
import { formatIdentity, identityOf, prepareSpool, spoolPaths, writeFailure, writeHeartbeat, writeMark } from '../../src/postgres/archive-spool.js';
import { openSpoolSignal } from '../../src/postgres/spool-signal.js';
import { nextSegment } from '../../src/postgres/wal-prefetch.js';

const segment = '000000010000000A000000FE';

describe('archive_command of archive.mode async (bin/lifeboat-wal-push)', () => {
  let dir: string;
  let spool: string;
  let wal: string;
  let trace: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-quick-push-'));
    spool = join(dir, 'spool', 'main');
    wal = join(dir, segment);
    trace = join(dir, 'slow-path-ran');
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const fresh = async () => {
    await rm(join(dir, 'spool'), { recursive: true, force: true });
    await rm(trace, { force: true });
    await prepareSpool(spool);
    await writeFile(wal, `segment ${Math.random()}`);
  };
  const push = () =>
    execa(join(projectRoot, 'bin', 'lifeboat-wal-push'), [spool, wal, 'sh', '-c', `touch ${trace}; exit 7`], { reject: false });
  const markIt = async (status: 'archived' | 'dropped') =>
    writeMark(spool, segment, { status, identity: formatIdentity((await identityOf(wal))!), sha256: 'a'.repeat(64), archivedAt: new Date().toISOString() });

  test('a mark of this very file: done, without running the command (the identity node computes is what stat(1) prints)', async () => {
    await fresh();
    await markIt('archived');
    const result = await push();
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.equal(existsSync(trace), false);
  });

  test('a mark of the same name whose file changed since (another write, another file): not trusted, the command pushes it', async () => {
    await fresh();
    await markIt('archived');
    await writeFile(wal, 'other content');
    const result = await push();
    assert.equal(result.exitCode, 7);
    assert.match(result.stderr, /no archiver runs/);
    assert.ok(existsSync(trace));
  });

  test('a dropped file: reported archived, with an error in the server log', async () => {
    await fresh();
    await markIt('dropped');
    const result = await push();
    assert.equal(result.exitCode, 0);
    assert.match(result.stderr, /ERROR: WAL DROPPED: 000000010000000A000000FE was not archived/);
    assert.equal(existsSync(trace), false);
  });

  test('while the archiver runs, it waits for the mark', async () => {
    await fresh();
    await writeHeartbeat(spool, 30);
    const pushing = push();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await markIt('archived');
    const result = await pushing;
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(existsSync(trace), false);
  });

  test('with the archiver\'s FIFO, it blocks reading it and is done as soon as the archiver tells of the mark', async () => {
    await fresh();
    await writeHeartbeat(spool, 30);
    const news = openSpoolSignal(spoolPaths(spool).news);
    try {
      const pushing = push();
      await waitUntil(() => readingFifo(spoolPaths(spool).news));
      await markIt('archived');
      news.tell();
      const result = await pushing;
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(existsSync(trace), false);
    } finally {
      news.close();
    }
  });

  test('a FIFO nobody writes to (its archiver was killed): each wait is bounded, and waitSeconds still holds', async () => {
    await fresh();
    await writeHeartbeat(spool, 1);
    await execa('mkfifo', [spoolPaths(spool).news]);
    const result = await push();
    assert.equal(result.exitCode, 7);
    assert.match(result.stderr, /did not archive 000000010000000A000000FE within 1 s; pushing it now/);
  });

  test('the archiver does not finish within its waitSeconds: the command pushes it', async () => {
    await fresh();
    await writeHeartbeat(spool, 1);
    const result = await push();
    assert.equal(result.exitCode, 7);
    assert.match(result.stderr, /did not archive 000000010000000A000000FE within 1 s; pushing it now/);
  });

  test('the archiver failed on it: its reason goes to the server log, and the archiver\'s retry is waited for', async () => {
    await fresh();
    await writeHeartbeat(spool, 30);
    await writeFailure(spool, segment, 'the archiver could not archive it (it retries): EACCES');
    const pushing = push();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await markIt('archived');
    const result = await pushing;
    assert.equal(result.exitCode, 0);
    assert.match(result.stderr, /EACCES; waiting for it up to 30 s/);
    assert.equal(existsSync(trace), false);
  });

  test('a heartbeat older than ten seconds: the archiver is gone, the command pushes it without waiting', async () => {
    await fresh();
    await writeHeartbeat(spool, 600);
    const old = new Date(Date.now() - 20_000);
    await utimes(join(spool, 'archiver.heartbeat'), old, old);
    const result = await push();
    assert.equal(result.exitCode, 7);
    assert.match(result.stderr, /no archiver runs/);
  });
});

describe('restore_command with prefetch (bin/lifeboat-wal-fetch)', () => {
  let dir: string;
  let trace: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-quick-fetch-'));
    trace = join(dir, 'slow-path-ran');
    await writeFile(join(dir, 'target'), 'orders\n');
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const fetch = (name: string, destination: string, target = 'orders') =>
    execa(join(projectRoot, 'bin', 'lifeboat-wal-fetch'), [dir, target, name, destination, 'sh', '-c', `touch ${trace}; exit 7`], { reject: false });

  test('a prefetched segment is moved into place; nothing is fetched', async () => {
    await writeFile(join(dir, segment), 'fetched ahead');
    const result = await fetch(segment, join(dir, 'RECOVERYXLOG'));
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await readFile(join(dir, 'RECOVERYXLOG'), 'utf8'), 'fetched ahead');
    assert.equal(existsSync(join(dir, segment)), false);
    assert.equal(existsSync(trace), false);
  });

  test('a spool of another target is never read: the command fetches the segment itself', async () => {
    await rm(trace, { force: true });
    await writeFile(join(dir, segment), 'fetched ahead for orders');
    const result = await fetch(segment, join(dir, 'RECOVERYXLOG-other'), 'invoices');
    assert.equal(result.exitCode, 7);
    assert.ok(existsSync(trace));
    assert.equal(existsSync(join(dir, 'RECOVERYXLOG-other')), false);
    assert.ok(existsSync(join(dir, segment)), 'the other target\'s file stays where it is');
    await rm(join(dir, segment));
  });

  test('a segment the spool does not hold: the command fetches it (its exit status is PostgreSQL\'s answer)', async () => {
    const result = await fetch('000000020000000A000000FF', join(dir, 'RECOVERYXLOG'));
    assert.equal(result.exitCode, 7);
    assert.ok(existsSync(trace));
  });

  test('a segment being fetched ahead: it waits for it', async () => {
    const name = '000000010000000A000000FF';
    await writeFile(join(dir, `${name}.fetching`), '');
    const fetching = fetch(name, join(dir, 'RECOVERYXLOG'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await writeFile(join(dir, name), 'arrived');
    await rm(join(dir, `${name}.fetching`));
    const result = await fetching;
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await readFile(join(dir, 'RECOVERYXLOG'), 'utf8'), 'arrived');
  });
});

describe('restore_command with prefetch: the segment the prefetcher starts next', () => {
  let dir: string;
  let trace: string;
  const name = '000000010000000B00000001';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-quick-next-'));
    trace = join(dir, 'slow-path-ran');
    await writeFile(join(dir, 'target'), 'orders\n');
    await writeFile(join(dir, 'next'), `${name}\n`);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const fetch = () => execa(join(projectRoot, 'bin', 'lifeboat-wal-fetch'), [dir, 'orders', name, join(dir, 'RECOVERYXLOG'), 'sh', '-c', `touch ${trace}; exit 7`], { reject: false });

  test('while the prefetcher runs, it waits for it instead of fetching beside it', async () => {
    await writeFile(join(dir, 'prefetcher.pid'), `${process.pid}\n`);
    const fetching = fetch();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await writeFile(join(dir, name), 'fetched next');
    const result = await fetching;
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await readFile(join(dir, 'RECOVERYXLOG'), 'utf8'), 'fetched next');
    assert.equal(existsSync(trace), false);
  });

  test('a prefetcher that is gone is not waited for: the command fetches the segment itself', async () => {
    const gone = execa('true');
    await gone;
    await writeFile(join(dir, 'prefetcher.pid'), `${gone.pid}\n`);
    const result = await fetch();
    assert.equal(result.exitCode, 7);
    assert.ok(existsSync(trace));
  });
});

describe('the segment after a segment', () => {
  test('counts within a log, then carries into the next log, on the same timeline', () => {
    assert.equal(nextSegment('000000010000000A000000FE', 16 << 20), '000000010000000A000000FF');
    assert.equal(nextSegment('000000010000000A000000FF', 16 << 20), '000000010000000B00000000');
    assert.equal(nextSegment('000000030000000A0000003F', 64 << 20), '000000030000000B00000000');
    assert.equal(nextSegment('00000001000000000000000A', 16 << 20), '00000001000000000000000B');
  });
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await condition()); await new Promise((resolve) => setTimeout(resolve, 20))) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the condition');
  }
}

/** Whether a process is reading the FIFO at path: the quick path's bounded wait (`timeout 1 head -n 1 -- <path>`). */
async function readingFifo(path: string): Promise<boolean> {
  for (const pid of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args[0]?.endsWith('head') && args.includes(path)) return true;
  }
  return false;
}
