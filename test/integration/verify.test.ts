/**
 * The verify runbook (`lifeboat verify`) against real backups in a directory and in S3, and the
 * rotating read-data subsets against a repository of many backups.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { runbookFailure } from '../../src/client.js';
import { loadConfig } from '../../src/config/load.js';
import { openWalArchive, pushWal, walArchiveSpec, walObjectKey, walRecordKey } from '../../src/postgres/wal-archive.js';
import { openBackend } from '../../src/repository/open.js';
import { Repository } from '../../src/repository/repository.js';
import { verifyRepository } from '../../src/verify/check.js';
import { readVerifyState } from '../../src/verify/state.js';
import type { VerifyReport } from '../../workflows/verify.js';
import { tamper } from '../helpers/assertions.js';
import { writeFixtureBackups, writeFixtureBaseBackup } from '../helpers/backup-fixture.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

describe('lifeboat verify', () => {
  let lifeboat: Lifeboat;
  let local: Repository;
  let s3: Repository;
  const backupIds: string[] = [];

  before(async () => {
    lifeboat = await createLifeboat('verify');
    const dbPath = join(lifeboat.dir, 'orders.sqlite');
    createDatabase(dbPath, 2);
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        orders: { type: 'sqlite', path: dbPath, repositories: ['local', 's3'] },
        ledger: { type: 'postgres', repositories: ['local'] },
      }),
    );
    const config = loadConfig(lifeboat.configPath);
    local = new Repository('local', openBackend(config.repositories.local!));
    s3 = new Repository('s3', openBackend(config.repositories.s3!, lifeboat.env));
    await lifeboat.startWorker();
    for (let i = 0; i < 3; i++) backupIds.push((await lifeboat.run('backup', { target: 'orders' })).backupId);
  });

  after(async () => {
    await lifeboat?.close();
  });

  /** Every stored file under the fs repository except verification's own bookkeeping and the audit log (every run adds its record). */
  async function storedFiles(): Promise<string[]> {
    const root = join(lifeboat.dir, 'repository');
    return (await readdir(root, { recursive: true })).filter((path) => !/(^|\/)(reports|verify|leases|audit)(\/|$)/.test(path)).sort();
  }

  /** The name of a backup's one stored payload, as its manifest gives it. */
  async function payloadOf(repository: Repository, id: string): Promise<string> {
    return (await repository.readManifest('orders', id)).objects[0]!.name;
  }

  test('without read-data it checks every manifest and every object\'s size, stores its report in every repository, and changes nothing', async () => {
    const before = await storedFiles();
    const report = await lifeboat.run('verify', { target: 'orders' });
    assert.equal(report.valid, true);
    assert.equal(report.readData, 'none');
    assert.deepEqual(report.repositories.map((r) => [r.repository, r.valid, r.backups.length, r.objectsRead]), [['local', true, 3, 0], ['s3', true, 3, 0]]);
    assert.deepEqual(report.repositories[0]!.backups.map((b) => b.backupId), [...backupIds].reverse(), 'newest first');
    assert.ok(report.repositories[0]!.backups.every((b) => b.lastReadInFullAt === null && b.readThisRun === 'none'));
    assert.deepEqual(await storedFiles(), before, 'nothing stored was changed');
    for (const repository of [local, s3]) {
      const stored = JSON.parse((await buffer(await repository.backend.get(`orders/reports/${report.workflowId}.json`))).toString()) as VerifyReport;
      assert.equal(stored.runbook, 'verify');
      assert.equal(stored.valid, true);
      assert.deepEqual(stored.repositories.map((r) => r.repository), ['local', 's3']);
    }
    assert.deepEqual(report.reportKeys, [`local:orders/reports/${report.workflowId}.json`, `s3:orders/reports/${report.workflowId}.json`]);
  });

  test('--read-data reads every object back and the report says when each backup was last read in full', async () => {
    const cli = await lifeboat.cli(['verify', 'orders', '--read-data', '--wait', '--json']);
    assert.equal(cli.exitCode, 0, cli.all);
    const report = JSON.parse(cli.stdout) as VerifyReport;
    assert.equal(report.readData, 'full');
    for (const repository of report.repositories) {
      assert.equal(repository.objectsRead, 3);
      assert.ok(repository.backups.every((b) => b.readThisRun === 'full' && b.lastReadInFullAt !== null && b.lastReadInFullAt >= report.startedAt));
    }
    assert.match(cli.stderr, /verify of orders: VALID \(read data: full\)/);
  });

  test('a flipped byte, a truncated object and a missing object are each named, in the damaged repository only', async () => {
    const [flipped, truncated, missing] = await Promise.all(backupIds.map(async (id) => local.objectKey('orders', id, await payloadOf(local, id))));
    await tamper(local, flipped!);
    const bytes = await buffer(await local.backend.get(truncated!));
    await local.backend.put(truncated!, Readable.from([bytes.subarray(0, bytes.length - 100)]));
    await local.backend.delete(missing!);

    const sizesOnly = await lifeboat.run('verify', { target: 'orders' });
    const localSizes = sizesOnly.repositories.find((r) => r.repository === 'local')!;
    assert.deepEqual(
      localSizes.backups.map((b) => [b.backupId, b.valid, b.problems]),
      [
        [backupIds[2], false, [`${missing}: missing`]],
        [backupIds[1], false, [`${truncated}: ${bytes.length - 100} bytes stored, the manifest says ${bytes.length}`]],
        [backupIds[0], true, []],
      ],
      'without reading, a flipped byte goes unseen; sizes and presence do not',
    );

    const cli = await lifeboat.cli(['verify', 'orders', '--read-data', '--wait', '--json']);
    assert.equal(cli.exitCode, 1, 'invalid: exit 1');
    const report = JSON.parse(cli.stdout) as VerifyReport;
    assert.equal(report.valid, false);
    const [localResult, s3Result] = report.repositories;
    assert.equal(localResult!.valid, false);
    assert.equal(s3Result!.valid, true, 'the S3 copies are intact');
    const flippedResult = localResult!.backups.find((b) => b.backupId === backupIds[0])!;
    assert.equal(flippedResult.valid, false);
    assert.match(flippedResult.problems[0]!, new RegExp(`^${flipped}: read back as sha256 [0-9a-f]{64} \\(\\d+ bytes\\), expected [0-9a-f]{64}`));
    assert.equal(flippedResult.lastReadInFullAt, null, 'a damaged backup is no longer read in full');
    assert.match(cli.stderr, new RegExp(`backup ${backupIds[0]} INVALID: ${flipped}: read back as sha256`));
  });

  test('--withdraw-damaged withdraws a damaged copy that has a valid copy elsewhere, and never the only copy', async () => {
    const report = await lifeboat.run('verify', { target: 'orders', readData: 'full', withdrawDamaged: true });
    assert.deepEqual(report.withdrawn.map((w) => [w.repository, w.backupId]).sort(), backupIds.map((id) => ['local', id]).sort());
    for (const id of backupIds) {
      assert.equal(await local.backend.head(local.manifestKey('orders', id)), undefined, `${id} is no longer listed in local`);
      assert.ok(await s3.backend.head(s3.manifestKey('orders', id)), `${id} stays in S3`);
    }
    // Now S3 holds the only copies: a damaged one there stays listed.
    await tamper(s3, s3.objectKey('orders', backupIds[0]!, await payloadOf(s3, backupIds[0]!)));
    const again = await lifeboat.run('verify', { target: 'orders', readData: 'full', withdrawDamaged: true });
    assert.deepEqual(again.withdrawn, []);
    assert.deepEqual(again.notWithdrawn.map((w) => [w.repository, w.backupId]), [['s3', backupIds[0]]]);
    assert.ok(await s3.backend.head(s3.manifestKey('orders', backupIds[0]!)));
    assert.deepEqual(again.timeline.find((s) => s.name === 'withdraw-damaged')?.status, 'skipped');
  });

  test('bad input: an unknown target, a bad subset, both read options; nothing is started', async () => {
    const unknown = await lifeboat.cli(['verify', 'nope']);
    assert.equal(unknown.exitCode, 2);
    assert.match(unknown.stderr, /TargetNotFound: no target named "nope"/);
    for (const subset of ['3/2', '0/5', 'abc', '0%', '101%', '1/0']) {
      const bad = await lifeboat.cli(['verify', 'orders', '--read-data-subset', subset]);
      assert.equal(bad.exitCode, 2, `${subset}: ${bad.all}`);
      assert.match(bad.stderr, /InvalidInput: read-data subset .* is not "n\/t"/);
    }
    const both = await lifeboat.cli(['verify', 'orders', '--read-data', '--read-data-subset', '1/2']);
    assert.equal(both.exitCode, 2);
    assert.match(both.stderr, /not both/);
    const limit = await lifeboat.cli(['verify', 'orders', '--limit-read', '0']);
    assert.equal(limit.exitCode, 2);
    assert.doesNotMatch(`${unknown.stderr}${both.stderr}`, /started verify/);
    // Started another way (the UI, a schedule): the run fails with the same typed error.
    await assert.rejects(lifeboat.run('verify', { target: 'orders', readData: '7/3' }), (error: unknown) => {
      const failure = runbookFailure(error);
      assert.equal(failure.type, 'InvalidInput');
      assert.match(failure.message, /read-data subset "7\/3" is not "n\/t"/);
      return true;
    });
  });

  test('a missing WAL segment in the middle of the chain is named, and the recoverable window ends before it', async () => {
    const walDir = join(lifeboat.dir, 'fake-wal');
    await mkdir(walDir, { recursive: true });
    const archive = openWalArchive(walArchiveSpec(loadConfig(lifeboat.configPath), 'ledger'), lifeboat.env);
    const segment = (n: number) => `00000001000000000000000${n}`;
    for (let n = 1; n <= 6; n++) {
      await writeFile(join(walDir, segment(n)), `segment ${n}`);
      await pushWal(archive, join(walDir, segment(n)));
    }
    const base = await writeFixtureBaseBackup(local, 'ledger', { time: new Date('2026-03-01T10:00:00Z'), startLsn: '0/1000028', stopLsn: '0/1000138' });
    const whole = await lifeboat.run('verify', { target: 'ledger', readData: 'full' });
    const wal = whole.repositories[0]!.wal!;
    assert.equal(wal.valid, true, wal.problems.join('; '));
    assert.deepEqual(wal.window, { earliest: { backupId: base.id, lsn: '0/1000138', time: '2026-03-01T10:00:00.000000Z' }, latest: { lsn: '0/7000000', segment: segment(6), timeline: 1 } });

    await local.backend.delete(walRecordKey('ledger', segment(3)));
    await local.backend.delete(walObjectKey('ledger', segment(3)));
    const broken = await lifeboat.run('verify', { target: 'ledger' });
    const brokenWal = broken.repositories[0]!.wal!;
    assert.equal(broken.valid, false);
    assert.deepEqual(brokenWal.timelines[0]!.gaps, [{ from: segment(3), to: segment(3), segments: 1 }]);
    assert.deepEqual(brokenWal.gaps, [{ timeline: 1, from: segment(3), to: segment(3), segments: 1 }]);
    assert.deepEqual(brokenWal.problems, [`base backup ${base.id}: WAL segment ${segment(3)} is missing: recovery from it stops at 0/3000000, before the newest archived WAL`]);
    assert.deepEqual(brokenWal.window?.latest, { lsn: '0/3000000', segment: segment(2), timeline: 1 });

    // A record whose payload is gone is named too.
    await local.backend.delete(walObjectKey('ledger', segment(5)));
    const lost = await lifeboat.run('verify', { target: 'ledger' });
    assert.ok(lost.repositories[0]!.wal!.problems.includes(`${walObjectKey('ledger', segment(5))}: missing (its record is there)`));
    await rm(walDir, { recursive: true, force: true });
  });
});

describe('rotating read-data subsets', () => {
  let root: string;
  let repository: Repository;
  const target = 'many';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'lifeboat-verify-subsets-'));
    repository = new Repository('local', openBackend({ type: 'fs', path: root }));
    await writeFixtureBackups(repository, target, { count: 40, objectsPerBackup: 2, newest: new Date('2026-03-01T00:00:00Z') });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Runs one verification as run `runId` at the given time; returns the keys it read back. */
  async function runAt(runId: string, day: number, readData: Parameters<typeof verifyRepository>[0]['readData']): Promise<Set<string>> {
    const at = new Date(Date.UTC(2030, 0, day));
    const result = await verifyRepository({ repository, target, readData, runId, now: () => at });
    assert.equal(result.valid, true);
    const state = await readVerifyState(repository, target);
    const read = new Set<string>();
    for (const [id, entry] of Object.entries(state.backups)) {
      for (const [name, readAt] of Object.entries(entry.objectsReadAt)) if (readAt === at.toISOString()) read.add(`${id}/${name}`);
    }
    assert.equal(read.size, result.objectsRead);
    return read;
  }

  test('t runs of 1/t read every object exactly once, whatever happens between runs', async () => {
    const all = new Set(Object.entries((await verifyRepository({ repository, target, readData: { mode: 'none' }, runId: 'list' })).backups).flatMap(([, b]) => [`${b.backupId}/db.sqlite.zst`, `${b.backupId}/part-0001`]));
    assert.equal(all.size, 80);
    const subset = { mode: 'subset' as const, n: 1, t: 5 };
    const runs: Array<Set<string>> = [];
    runs.push(await runAt('run-1', 1, subset));
    runs.push(await runAt('run-2', 2, subset));
    // Between runs: new backups, a full read, a subset run of another size, and a failed... retried run (same id, same slices).
    const added = await writeFixtureBackups(repository, target, { count: 5, objectsPerBackup: 2, newest: new Date('2026-03-02T00:00:00Z') });
    await runAt('full', 10, { mode: 'full' });
    await runAt('other-t', 11, { mode: 'subset', n: 1, t: 3 });
    runs.push(await runAt('run-3', 3, subset));
    const retried = await runAt('run-3', 4, subset);
    assert.deepEqual([...retried].sort(), [...runs[2]!].sort(), 'a retried run reads the same slice again');
    runs.push(await runAt('run-4', 5, subset));
    runs.push(await runAt('run-5', 6, subset));
    for (const key of all) assert.equal(runs.filter((run) => run.has(key)).length, 1, `${key} was read exactly once in the 5 runs`);
    const newKeys = added.flatMap((m) => m.objects.map((o) => `${m.id}/${o.name}`));
    const later = [await runAt('run-6', 7, subset), await runAt('run-7', 8, subset)];
    for (const key of newKeys) assert.ok([...runs.slice(2), ...later].some((run) => run.has(key)), `${key}, added after run 2, was read within the next 5 runs`);
    assert.deepEqual([...later[0]!].filter((key) => all.has(key)).sort(), [...runs[0]!].sort(), 'run 6 reads the slice of run 1 again');
    const state = await readVerifyState(repository, target);
    assert.equal(state.cursors['5'], 2);
    assert.equal(state.cursors['3'], 1);
  });

  test('n/t reads n slices per run: 2/6 covers everything in 3 runs, each object once', async () => {
    const runs: Array<Set<string>> = [];
    for (let run = 0; run < 3; run++) runs.push(await runAt(`pair-${run}`, 20 + run, { mode: 'subset', n: 2, t: 6 }));
    const all = new Set(runs.flatMap((run) => [...run]));
    assert.equal(all.size, 90);
    assert.equal(runs.reduce((sum, run) => sum + run.size, 0), 90);
  });
});
