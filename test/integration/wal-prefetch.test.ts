/**
 * Prefetch during recovery (recovery.prefetchSegments), through the very restore_command a PITR
 * gives PostgreSQL (walFetchCommand with a prefetch spool: bin/lifeboat-wal-fetch in front of
 * `lifeboat wal-fetch --prefetch`), called the way PostgreSQL calls it: one segment after the
 * other, each into RECOVERYXLOG. An fs repository holds a small archive (1 MiB segments, a
 * wal_segment_size initdb accepts), pushed with the ordinary wal-push code.
 *
 * - the first call fetches its segment and starts a prefetcher, which fills the spool with the
 *   following segments, verified, never more than prefetchSegments; later calls move them into
 *   place, byte for byte what was archived;
 * - a segment missing from the archive ends the prefetch cleanly (the prefetcher exits; the call
 *   for it exits 1, the end of the archive);
 * - a damaged segment is never put into the spool, and the call for it is refused with 126;
 * - a spool belongs to one target: another target's restore_command never takes a file from it;
 * - a call for a segment being fetched blocks on the spool's FIFO until the prefetcher says it
 *   landed, and every call says in the spool's calls.log whether the prefetcher served it.
 * (A whole PITR with prefetch, as the server user: test/integration/postgres-runbooks.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { walFetchCommand } from '../../src/postgres/archive-commands.js';
import { openWalArchive, pushWal, walObjectKey, type WalArchiveSpec } from '../../src/postgres/wal-archive.js';
import { createPrefetchSpool, nextSegment, removePrefetchSpool } from '../../src/postgres/wal-prefetch.js';
import { writeWalArchiveConfig } from '../helpers/wal-archive-command.js';

const target = 'orders';
const segmentBytes = 1 << 20;
const prefetchSegments = 3;

async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
  }
}

describe('wal-fetch with prefetch', () => {
  let dir: string;
  let repositoryPath: string;
  let configFile: string;
  let otherConfigFile: string;
  const segments: string[] = [];
  const spools: string[] = [];
  const contents = new Map<string, Buffer>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-prefetch-'));
    repositoryPath = join(dir, 'repository');
    const spec: WalArchiveSpec = { target, repositories: [{ name: 'local', repository: { type: 'fs', path: repositoryPath } }], compression: { level: 1, threads: 1 } };
    ({ configFile } = await writeWalArchiveConfig(dir, 'lifeboat.yaml', spec, undefined, { recovery: { prefetchSegments } }));
    ({ configFile: otherConfigFile } = await writeWalArchiveConfig(dir, 'other.yaml', { ...spec, target: 'invoices' }, undefined, { recovery: { prefetchSegments } }));
    const archive = openWalArchive(spec);
    await mkdir(join(dir, 'pg_wal'));
    // Ten segments across a log boundary of a 1 MiB archive (4096 segments per log).
    let name = '000000010000000000000FFA';
    for (let i = 0; i < 10; i++) {
      const content = randomBytes(segmentBytes);
      await writeFile(join(dir, 'pg_wal', name), content);
      await pushWal(archive, join(dir, 'pg_wal', name));
      segments.push(name);
      contents.set(name, content);
      name = nextSegment(name, segmentBytes);
    }
  });
  after(async () => {
    for (const spool of spools) await removePrefetchSpool(spool);
    await rm(dir, { recursive: true, force: true });
  });

  /** A new recovery: its data directory, its spool (created as the recovery creates it) and the restore_command PostgreSQL would run. */
  async function recovery(label: string, configPath = configFile, owner = target) {
    const dataDir = join(dir, label);
    await mkdir(join(dataDir, 'pg_wal'), { recursive: true });
    const spool = `${dataDir}.wal-prefetch`;
    await createPrefetchSpool(spool, owner);
    spools.push(spool);
    const command = walFetchCommand({ configPath, target: configPath === configFile ? target : 'invoices', prefetchSpool: spool });
    /** restore_command for %f, as PostgreSQL runs it (through /bin/sh, from the data directory, into pg_wal/RECOVERYXLOG). */
    const fetch = async (name: string) => {
      const line = command.replace(/%f/g, name).replace(/%p/g, 'pg_wal/RECOVERYXLOG');
      const result = await execa('/bin/sh', ['-c', line], { cwd: dataDir, reject: false });
      const fetched = result.exitCode === 0 ? await readFile(join(dataDir, 'pg_wal', 'RECOVERYXLOG')) : undefined;
      await rm(join(dataDir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
      return { exitCode: result.exitCode, stderr: result.stderr, fetched };
    };
    const held = async () => (await readdir(spool).catch(() => [] as string[])).filter((entry) => /^[0-9A-F]{24}$/.test(entry)).sort();
    const prefetcherGone = () => !existsSync(join(spool, 'prefetcher.pid'));
    return { spool, fetch, held, prefetcherGone };
  }

  test('later calls move verified, prefetched segments into place, never more than prefetchSegments ahead, until the end of the archive', async () => {
    const { fetch, held, prefetcherGone, spool } = await recovery('recovered-1');
    const first = await fetch(segments[0]!);
    assert.equal(first.exitCode, 0, first.stderr);
    assert.ok(first.fetched?.equals(contents.get(segments[0]!)!));
    await waitFor('the prefetcher holds the next segments', async () => (await held()).length === prefetchSegments);
    assert.deepEqual(await held(), segments.slice(1, 1 + prefetchSegments), 'the following segments, across the log boundary');

    const served: string[] = [];
    for (const name of segments.slice(1)) {
      const wasHeld = (await held()).includes(name);
      if (wasHeld) served.push(name);
      const result = await fetch(name);
      assert.equal(result.exitCode, 0, `${name}: ${result.stderr}`);
      assert.ok(result.fetched?.equals(contents.get(name)!), `${name} is the archived file`);
      if (wasHeld) assert.equal(existsSync(join(spool, name)), false, `${name} moved out of the spool`);
      assert.ok((await held()).length <= prefetchSegments);
    }
    // The end of the archive: the next segment does not exist.
    const end = await fetch(nextSegment(segments.at(-1)!, segmentBytes));
    assert.equal(end.exitCode, 1, end.stderr);
    await waitFor('the prefetcher exits at the end of the archive', prefetcherGone);
    assert.deepEqual(await held(), []);

    // One line per call: the first and the last fetched by wal-fetch itself, the held ones taken from the spool.
    const calls = (await readFile(join(spool, 'calls.log'), 'utf8')).trimEnd().split('\n').map((line) => line.split(' '));
    assert.equal(calls.length, segments.length + 1);
    assert.deepEqual(calls[0], [segments[0], 'fallback']);
    assert.deepEqual(calls.at(-1), [nextSegment(segments.at(-1)!, segmentBytes), 'fallback']);
    for (const [name, how] of calls) assert.ok(how === 'spool' || how === 'waited' || how === 'fallback', `${name} ${how}`);
    for (const name of served) assert.deepEqual(calls.find(([called]) => called === name), [name, 'spool']);
  });

  test('a damaged segment never enters the spool, and the call for it is refused with 126', async () => {
    const damaged = segments[5]!;
    const object = join(repositoryPath, walObjectKey(target, damaged));
    const intact = await readFile(object);
    try {
      const bytes = Buffer.from(intact);
      const middle = bytes.length >> 1;
      bytes[middle] = bytes[middle]! ^ 0xff;
      await writeFile(object, bytes);
      const { fetch, held, prefetcherGone } = await recovery('recovered-2');
      assert.equal((await fetch(segments[3]!)).exitCode, 0);
      await waitFor('the prefetcher holds the segment before the damaged one', async () => (await held()).includes(segments[4]!));
      const fourth = await fetch(segments[4]!);
      assert.equal(fourth.exitCode, 0, fourth.stderr);
      await waitFor('the prefetcher stops at the damaged segment', prefetcherGone);
      assert.ok(!(await held()).includes(damaged));
      const refused = await fetch(damaged);
      assert.equal(refused.exitCode, 126, refused.stderr);
      assert.equal(refused.fetched, undefined);
    } finally {
      await writeFile(object, intact);
    }
  });

  test('a spool holds one target\'s files: another target\'s restore_command never takes them', async () => {
    const { fetch, held, spool } = await recovery('recovered-3');
    assert.equal((await fetch(segments[0]!)).exitCode, 0);
    await waitFor('the prefetcher holds the next segment', async () => (await held()).includes(segments[1]!));
    // The same spool named in the restore_command of a recovery of "invoices" (whose archive is empty).
    const line = walFetchCommand({ configPath: otherConfigFile, target: 'invoices', prefetchSpool: spool }).replace(/%f/g, segments[1]!).replace(/%p/g, join(dir, 'RECOVERYXLOG-invoices'));
    const other = await execa('/bin/sh', ['-c', line], { reject: false });
    assert.equal(other.exitCode, 1, `not in the archive of "invoices": ${other.stderr}`);
    assert.equal(existsSync(join(dir, 'RECOVERYXLOG-invoices')), false);
    assert.ok(existsSync(join(spool, segments[1]!)), 'the file stays for its own recovery');
  });

  test('a call for a segment being fetched blocks on the spool\'s FIFO and takes the segment once the prefetcher says it landed', async () => {
    const { fetch, spool } = await recovery('recovered-5');
    // The prefetcher's part, played by this test: its pid, its FIFO held open, a segment being fetched.
    const landed = join(spool, 'landed');
    await writeFile(join(spool, 'prefetcher.pid'), `${process.pid}\n`);
    await execa('mkfifo', ['-m', '600', landed]);
    const fifo = openSync(landed, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      const name = segments[2]!;
      await writeFile(join(spool, `${name}.fetching`), '');
      const call = fetch(name);
      await waitFor('the call blocks reading the FIFO', () => readingFifo(landed));
      await writeFile(join(spool, `${name}.lifeboat-test`), contents.get(name)!);
      await rename(join(spool, `${name}.lifeboat-test`), join(spool, name));
      await unlink(join(spool, `${name}.fetching`));
      writeSync(fifo, '\n');
      const result = await call;
      assert.equal(result.exitCode, 0, result.stderr);
      assert.ok(result.fetched?.equals(contents.get(name)!));
      assert.equal(await readFile(join(spool, 'calls.log'), 'utf8'), `${name} waited\n`);
    } finally {
      closeSync(fifo);
    }
  });

  test('the end of a recovery stops its prefetcher and removes its spool', async () => {
    const { fetch, held, spool } = await recovery('recovered-4');
    assert.equal((await fetch(segments[0]!)).exitCode, 0);
    await waitFor('the prefetcher is fetching', async () => (await readdir(spool)).some((entry) => entry.endsWith('.fetching')) || (await held()).length > 0);
    const pid = Number((await readFile(join(spool, 'prefetcher.pid'), 'utf8')).trim());
    await removePrefetchSpool(spool);
    assert.equal(existsSync(spool), false);
    await waitFor('the prefetcher is gone', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
  });
});

/** Whether a process is reading the FIFO at path: the quick restore_command's bounded wait (`timeout 1 head -n 1 -- <path>`). */
async function readingFifo(path: string): Promise<boolean> {
  for (const pid of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args[0]?.endsWith('head') && args.includes(path)) return true;
  }
  return false;
}
