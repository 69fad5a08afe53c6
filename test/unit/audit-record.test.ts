import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auditKey, auditMonthPrefixes, parseSince } from '../../src/audit/record.js';

describe('audit records: where they are kept and which months a period reads', () => {
  test('a record is kept under its target, year and month, named by when it finished and its workflow id', () => {
    assert.equal(
      auditKey({ target: 'orders', finishedAt: '2026-12-06T10:15:42.123Z', workflowId: 'drill-orders-20261206T101500Z' }),
      'orders/audit/2026/12/20261206T101542.123Z-drill-orders-20261206T101500Z.json',
    );
    assert.throws(() => auditKey({ target: 'orders', finishedAt: 'yesterday', workflowId: 'x' }), /not a time/);
  });

  test('reading since a time lists the months from then to now, across a year end, and no others', () => {
    assert.deepEqual(auditMonthPrefixes('orders', new Date('2026-11-20T00:00:00Z'), new Date('2027-01-03T00:00:00Z')), [
      'orders/audit/2026/11/',
      'orders/audit/2026/12/',
      'orders/audit/2027/01/',
    ]);
    assert.deepEqual(auditMonthPrefixes('orders', new Date('2026-12-31T23:59:59Z'), new Date('2026-12-31T23:59:59Z')), ['orders/audit/2026/12/']);
  });

  test('--since takes an ISO date or time, or an age in minutes, hours, days or weeks', () => {
    const now = new Date('2026-12-06T12:00:00Z');
    assert.equal(parseSince('2026-12-01', now)?.toISOString(), '2026-12-01T00:00:00.000Z');
    assert.equal(parseSince('2026-12-01T08:30:00+02:00', now)?.toISOString(), '2026-12-01T06:30:00.000Z');
    assert.equal(parseSince('90m', now)?.toISOString(), '2026-12-06T10:30:00.000Z');
    assert.equal(parseSince('36h', now)?.toISOString(), '2026-12-05T00:00:00.000Z');
    assert.equal(parseSince('7d', now)?.toISOString(), '2026-11-29T12:00:00.000Z');
    assert.equal(parseSince('2w', now)?.toISOString(), '2026-11-22T12:00:00.000Z');
    for (const bad of ['yesterday', '7 days', '2026-13-45', '-3d', '']) assert.equal(parseSince(bad, now), undefined, bad);
  });
});
