import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analyseWal, parseHistoryFile, walRemoval, type BaseBackupWal } from '../../src/postgres/wal-window.js';

const segmentSizeBytes = 16 * 1024 * 1024;
/** Segment file name of timeline tl, segment number n (16 MiB segments: log 0). */
const seg = (tl: number, n: number) => `${tl.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
const range = (tl: number, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => seg(tl, from + i));

const b1: BaseBackupWal = { id: 'b1', timeline: 1, startLsn: '0/1000028', stopLsn: '0/1000138', stopTime: '2026-03-01T10:00:00.000000Z' };
const b2: BaseBackupWal = { id: 'b2', timeline: 1, startLsn: '0/4000028', stopLsn: '0/4000100', stopTime: '2026-03-01T11:00:00.000000Z' };

describe('WAL window', () => {
  test('an unbroken archive: every base backup consistent, the window from the oldest stop to the end of the newest segment', () => {
    const analysis = analyseWal({ names: [...range(1, 1, 6), `${seg(1, 1)}.00000028.backup`], histories: [], bases: [b1, b2], segmentSizeBytes });
    assert.deepEqual(analysis.timelines, [{ timeline: 1, first: seg(1, 1), last: seg(1, 6), segments: 6, gaps: [] }]);
    assert.deepEqual(analysis.bases, [
      { id: 'b1', consistent: true, missing: null, reaches: { lsn: '0/7000000', segment: seg(1, 6), timeline: 1 }, breaksAt: null },
      { id: 'b2', consistent: true, missing: null, reaches: { lsn: '0/7000000', segment: seg(1, 6), timeline: 1 }, breaksAt: null },
    ]);
    assert.deepEqual(analysis.head, { lsn: '0/7000000', segment: seg(1, 6), timeline: 1 });
    assert.deepEqual(analysis.window, { earliest: { backupId: 'b1', lsn: '0/1000138', time: b1.stopTime }, latest: { lsn: '0/7000000', segment: seg(1, 6), timeline: 1 } });
  });

  test('a missing segment in the middle is a named gap; the window starts after it', () => {
    const analysis = analyseWal({ names: [...range(1, 1, 2), ...range(1, 4, 6)], histories: [], bases: [b1, b2], segmentSizeBytes });
    assert.deepEqual(analysis.timelines[0]!.gaps, [{ from: seg(1, 3), to: seg(1, 3), segments: 1 }]);
    assert.deepEqual(analysis.bases[0], { id: 'b1', consistent: true, missing: null, reaches: { lsn: '0/3000000', segment: seg(1, 2), timeline: 1 }, breaksAt: seg(1, 3) });
    assert.equal(analysis.bases[1]!.breaksAt, null);
    assert.deepEqual(analysis.window?.earliest.backupId, 'b2', 'points before the gap cannot be joined to the head');
  });

  test('a base backup whose start-stop WAL is missing is not consistent and names the segment', () => {
    const analysis = analyseWal({ names: [...range(1, 1, 3), ...range(1, 5, 6)], histories: [], bases: [b1, b2], segmentSizeBytes });
    assert.deepEqual(analysis.bases[1], { id: 'b2', consistent: false, missing: seg(1, 4), reaches: null, breaksAt: seg(1, 4) });
    assert.equal(analysis.window?.earliest.backupId, 'b1');
    assert.equal(analysis.window?.latest.lsn, '0/4000000');
  });

  test('the chain follows a timeline switch the way recovery to "latest" does; the old timeline after the switch is a dead branch', () => {
    const history = parseHistoryFile(2, '1\t0/3000090\tno recovery target specified\n');
    assert.deepEqual(history, { timeline: 2, parents: [{ timeline: 1, switchLsn: '0/3000090' }] });
    const names = [...range(1, 1, 4), '00000002.history', ...range(2, 3, 5)];
    const analysis = analyseWal({ names, histories: [history], bases: [b1], segmentSizeBytes });
    assert.deepEqual(analysis.bases[0]!.reaches, { lsn: '0/6000000', segment: seg(2, 5), timeline: 2 });
    assert.deepEqual(analysis.head, { lsn: '0/6000000', segment: seg(2, 5), timeline: 2 });
    assert.deepEqual(analysis.timelines.map((t) => [t.timeline, t.first, t.last]), [[1, seg(1, 1), seg(1, 4)], [2, seg(2, 3), seg(2, 5)]]);
  });

  test('no base backup: no window, but the head and the gaps are still told', () => {
    const analysis = analyseWal({ names: range(1, 1, 3), histories: [], bases: [], segmentSizeBytes });
    assert.equal(analysis.window, null);
    assert.deepEqual(analysis.head, { lsn: '0/4000000', segment: seg(1, 3), timeline: 1 });
  });

  test('retention removes what precedes the oldest kept base backup, and the history files of older timelines only', () => {
    const names = [...range(1, 1, 6), `${seg(1, 1)}.00000028.backup`, `${seg(1, 4)}.00000028.backup`, `${seg(1, 2)}.partial`, '00000002.history', '00000003.history'];
    const kept = walRemoval(names, [b2], segmentSizeBytes);
    assert.deepEqual(kept.cutoff, { segment: seg(1, 4), backupId: 'b2' });
    assert.deepEqual(kept.remove.sort(), [seg(1, 1), `${seg(1, 1)}.00000028.backup`, seg(1, 2), `${seg(1, 2)}.partial`, seg(1, 3)].sort());
    const onTimeline3 = walRemoval(names, [{ ...b2, timeline: 3 }], segmentSizeBytes);
    assert.ok(onTimeline3.remove.includes('00000002.history') && !onTimeline3.remove.includes('00000003.history'));
    assert.deepEqual(walRemoval(names, [], segmentSizeBytes), { cutoff: null, oldestTimeline: null, remove: [], keep: names.length }, 'no kept base backup: nothing goes');
  });

  test('after retention the window starts at the oldest kept base backup', () => {
    const names = range(1, 1, 6);
    const { remove } = walRemoval(names, [b2], segmentSizeBytes);
    const after = analyseWal({ names: names.filter((n) => !remove.includes(n)), histories: [], bases: [b2], segmentSizeBytes });
    assert.deepEqual(after.window?.earliest, { backupId: 'b2', lsn: b2.stopLsn, time: b2.stopTime });
    assert.equal(after.window?.latest.lsn, '0/7000000');
  });
});
