import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BasebackupReport } from '../../src/postgres/base-backup.js';

// What pg_basebackup 15 prints with --verbose --progress and LC_MESSAGES=C when stderr is not a terminal.
const stderr = [
  'pg_basebackup: initiating base backup, waiting for checkpoint to complete',
  'pg_basebackup: checkpoint completed',
  'pg_basebackup: write-ahead log start point: 2/92000028 on timeline 1',
  '     0/2121025 kB (0%), 0/1 tablespace (...s137/data/backup_label)',
  ' 860312/2121025 kB (40%), 0/1 tablespace (...s137/data/base/5/16397)',
  '2137421/2137421 kB (100%), 1/1 tablespace',
  'pg_basebackup: write-ahead log end point: 2/92000100',
  'pg_basebackup: syncing data to disk ...',
  'pg_basebackup: base backup completed',
  '',
].join('\n');

test('pg_basebackup\'s stderr gives the progress in bytes and the WAL range, however it is split into chunks', () => {
  const report = new BasebackupReport();
  const moves: number[] = [];
  for (let at = 0; at < stderr.length; at += 7) {
    if (report.take(Buffer.from(stderr.slice(at, at + 7)))) moves.push(report.doneBytes);
  }
  report.end();
  assert.deepEqual(moves, [0, 860312 * 1024, 2137421 * 1024]);
  assert.equal(report.totalBytes, 2137421 * 1024);
  assert.deepEqual(report.walRange(), { startLsn: '2/92000028', timeline: 1, stopLsn: '2/92000100' });
  assert.doesNotMatch(report.messages(), /kB \(/, 'progress lines are not kept as messages');
  assert.match(report.messages(), /base backup completed/);
});

test('a run that never reported its WAL end point is an error naming what is missing', () => {
  const report = new BasebackupReport();
  report.take('pg_basebackup: write-ahead log start point: 0/2000028 on timeline 3\npg_basebackup: error: could not send replication command');
  report.end();
  assert.throws(() => report.walRange(), /without reporting its write-ahead log end point[\s\S]*could not send replication command/);
});
