import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compactTimestamp, isBackupId, makeBackupId } from '../../src/backup-id.js';
import { manualWorkflowId } from '../../src/client.js';
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

describe('workflow ids of runs started by hand', () => {
  test('they say what ran, on which target and when, then four random hex digits', () => {
    assert.equal(manualWorkflowId('drill', 'orders', new Date('2026-11-21T02:00:00.999Z'), '3f9a'), 'drill-orders-20261121T020000Z-3f9a');
    assert.match(manualWorkflowId('backup', 'orders'), /^backup-orders-\d{8}T\d{6}Z-[0-9a-f]{4}$/);
  });

  test('two ids made in the same second differ (a report stored under the first is not overwritten by the second)', () => {
    const second = new Date('2026-11-21T02:00:00.000Z');
    const first = manualWorkflowId('drill', 'orders', second);
    const next = manualWorkflowId('drill', 'orders', second);
    assert.notEqual(first, next);
    assert.equal(first.slice(0, -5), next.slice(0, -5), 'the readable part is the same');
  });
});
