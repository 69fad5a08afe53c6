import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compactTimestamp, isBackupId, makeBackupId } from '../../src/backup-id.js';
import { exitCodeFor } from '../../src/errors.js';

describe('backup ids', () => {
  test('they start with the UTC time, so sorting them sorts by time', () => {
    const earlier = makeBackupId(new Date('2026-11-21T02:00:00.999Z'), 'ffffff');
    const later = makeBackupId(new Date('2026-11-21T02:00:01.000Z'), '000000');
    assert.equal(earlier, '20261121T020000Z-3e7fff');
    assert.ok(earlier < later);
    assert.ok(isBackupId(earlier));
  });

  test('within one second they sort by the millisecond, whatever the random part', () => {
    const earlier = makeBackupId(new Date('2026-11-21T02:00:00.009Z'), 'ffffff');
    const later = makeBackupId(new Date('2026-11-21T02:00:00.010Z'), '000000');
    assert.deepEqual([earlier, later], ['20261121T020000Z-009fff', '20261121T020000Z-00a000']);
    assert.ok(earlier < later);
  });

  test('the random part is three lowercase hex digits whatever it is made from', () => {
    assert.equal(makeBackupId(new Date('2026-01-01T00:00:00Z'), 'AB-CD-EF-12'), '20260101T000000Z-000abc');
    assert.equal(makeBackupId(new Date('2026-01-01T00:00:00Z'), 'a'), '20260101T000000Z-000a00');
  });

  test('compact timestamps drop separators and milliseconds', () => {
    assert.equal(compactTimestamp(new Date('2026-11-21T02:03:04.567Z')), '20261121T020304Z');
  });
});

describe('CLI exit codes', () => {
  test('input errors exit 2, failures of the runbook or the data exit 1', () => {
    assert.equal(exitCodeFor('TargetNotFound'), 2);
    assert.equal(exitCodeFor('InvalidConfig'), 2);
    assert.equal(exitCodeFor('WrongEncryptionKey'), 2);
    assert.equal(exitCodeFor('ChecksumMismatch'), 1);
    assert.equal(exitCodeFor('HealthCheckFailed'), 1);
    assert.equal(exitCodeFor(undefined), 1);
    assert.equal(exitCodeFor('SomethingElse'), 1);
  });
});
