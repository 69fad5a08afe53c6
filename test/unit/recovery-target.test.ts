/**
 * The pure parts of point-in-time recovery: recovery targets, the choice of the base backup, the
 * recovery settings, and reading a recovering server's log (src/postgres/recovery-target.ts,
 * src/postgres/recovery-log.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LifeboatError } from '../../src/errors.js';
import { classifyRecoveryFailure, missingSegment, parseRecoveryLog } from '../../src/postgres/recovery-log.js';
import {
  chooseBaseBackup,
  formatLsn,
  isoFromMicros,
  parseLsn,
  parseRecoveryTarget,
  parseTimestamp,
  parseWalSegmentName,
  recoveryTargetSettings,
  walSegmentName,
  type BaseBackupPoint,
  type RecoveryTarget,
} from '../../src/postgres/recovery-target.js';

const MiB = 1024 * 1024;

/** Three backups a day apart, on timeline 1. */
const backups: BaseBackupPoint[] = [
  { id: '20261120T020000Z-aaaaaa', stopLsn: '0/5000100', stopTime: '2026-11-20T02:00:10.000000Z', nextXid: '800', timeline: 1 },
  { id: '20261122T020000Z-cccccc', stopLsn: '1/2000100', stopTime: '2026-11-22T02:00:10.000000Z', nextXid: '3000', timeline: 1 },
  { id: '20261121T020000Z-bbbbbb', stopLsn: '0/9000100', stopTime: '2026-11-21T02:00:10.000000Z', nextXid: '1500', timeline: 1 },
];
const chosen = (target: RecoveryTarget, options: { backupId?: string } = {}): string => chooseBaseBackup(backups, target, options).backup.id;

describe('recovery targets', () => {
  it('accept each kind PostgreSQL has, and say what is wrong with anything else', () => {
    for (const target of [
      { kind: 'latest' },
      { kind: 'immediate' },
      { kind: 'time', time: '2026-11-21T14:05:00.123456Z' },
      { kind: 'time', time: '2026-11-21 15:05:00+01', inclusive: false },
      { kind: 'lsn', lsn: '16/B374D848' },
      { kind: 'xid', xid: '1234' },
      { kind: 'xid', xid: 1234 },
      { kind: 'name', name: 'before-migration' },
      { kind: 'name', name: 'before-migration', lsn: '0/3000028' },
    ]) {
      assert.deepEqual(parseRecoveryTarget(target), target);
    }
    const invalid = (input: unknown, field: RegExp) =>
      assert.throws(
        () => parseRecoveryTarget(input),
        (error: unknown) => error instanceof LifeboatError && error.type === 'InvalidInput' && field.test(error.message),
        JSON.stringify(input),
      );
    invalid({ kind: 'time', time: '2026-11-21 14:05:00' }, /time: expected a timestamp with a UTC offset/);
    invalid({ kind: 'time', time: '2026-02-30T10:00:00Z' }, /not a valid calendar time/);
    invalid({ kind: 'lsn', lsn: '3000028' }, /lsn: expected an LSN like "0\/3000028"/);
    invalid({ kind: 'xid', xid: 'abc' }, /xid/);
    invalid({ kind: 'name', name: '' }, /name/);
    invalid({ kind: 'yesterday' }, /kind/);
    invalid({ kind: 'latest', time: '2026-11-21T14:05:00Z' }, /"kind": "latest"/);
  });

  it('read timestamps to the microsecond, in any offset', () => {
    assert.equal(parseTimestamp('2026-11-21T14:05:00.123456Z').iso, '2026-11-21T14:05:00.123456Z');
    assert.equal(parseTimestamp('2026-11-21 15:05:00.5+01').iso, '2026-11-21T14:05:00.500000Z');
    assert.equal(parseTimestamp('2026-11-21T09:35:00-04:30').iso, '2026-11-21T14:05:00.000000Z');
    assert.equal(parseTimestamp('2026-11-21T14:05:00.000001Z').micros - parseTimestamp('2026-11-21T14:05:00Z').micros, 1n);
    assert.equal(isoFromMicros(parseTimestamp('1969-12-31T23:59:59.999999Z').micros), '1969-12-31T23:59:59.999999Z');
  });

  it('read and write LSNs and WAL file names as PostgreSQL does', () => {
    assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
    assert.equal(formatLsn(parseLsn('00000016/0B374D84')), '16/B374D84');
    assert.deepEqual(parseWalSegmentName('00000002000000160000000B', 16 * MiB), { timeline: 2, segment: 0x16n * 256n + 0xbn });
    assert.equal(walSegmentName(2, 0x16n * 256n + 0xbn, 16 * MiB), '00000002000000160000000B');
    assert.equal(walSegmentName(1, 4096n + 5n, MiB), '000000010000000100000005', '1 MiB segments: 4096 per log file');
    assert.equal(parseWalSegmentName('00000002.history', 16 * MiB), undefined);
  });
});

describe('the base backup a recovery starts from', () => {
  it('is the newest one that stopped before the target', () => {
    assert.equal(chosen({ kind: 'time', time: '2026-11-21T12:00:00Z' }), '20261121T020000Z-bbbbbb');
    assert.equal(chosen({ kind: 'time', time: '2026-11-23T00:00:00Z' }), '20261122T020000Z-cccccc');
    assert.equal(chosen({ kind: 'lsn', lsn: '0/8000000' }), '20261120T020000Z-aaaaaa');
    assert.equal(chosen({ kind: 'lsn', lsn: '1/0' }), '20261121T020000Z-bbbbbb');
    assert.equal(chosen({ kind: 'xid', xid: '2999' }), '20261121T020000Z-bbbbbb');
    assert.equal(chosen({ kind: 'name', name: 'x', lsn: '0/9000100' }), '20261121T020000Z-bbbbbb');
    assert.equal(chosen({ kind: 'name', name: 'x' }), '20261122T020000Z-cccccc', 'without its LSN, a restore point is looked for from the newest backup');
    assert.equal(chosen({ kind: 'latest' }), '20261122T020000Z-cccccc');
    assert.equal(chooseBaseBackup(backups, { kind: 'immediate' }).reason, 'the newest base backup, 20261122T020000Z-cccccc (stopped 2026-11-22T02:00:10.000000Z at 1/2000100)');
  });

  it('may have stopped exactly at an inclusive target, but not at an exclusive one', () => {
    const stop = backups[2]!.stopTime;
    assert.equal(chosen({ kind: 'time', time: stop }), '20261121T020000Z-bbbbbb');
    assert.equal(chosen({ kind: 'time', time: stop, inclusive: false }), '20261120T020000Z-aaaaaa');
    assert.equal(chosen({ kind: 'lsn', lsn: backups[2]!.stopLsn }), '20261121T020000Z-bbbbbb');
  });

  it('is refused when the target is earlier than the oldest backup, saying which backup and when it stopped', () => {
    for (const [target, stop] of [
      [{ kind: 'time', time: '2026-11-20T02:00:09.999999Z' }, /stopped at 2026-11-20T02:00:10.000000Z/],
      [{ kind: 'lsn', lsn: '0/50000FF' }, /stopped at LSN 0\/5000100/],
      [{ kind: 'xid', xid: '799' }, /next transaction id was 800/],
    ] as const) {
      assert.throws(
        () => chooseBaseBackup(backups, target, { targetName: 'orders' }),
        (error: unknown) =>
          error instanceof LifeboatError &&
          error.type === 'RecoveryTargetBeforeBackup' &&
          error.message.includes('earlier than the oldest base backup of target "orders", 20261120T020000Z-aaaaaa') &&
          stop.test(error.message),
      );
    }
  });

  it('can be pinned by id, which must exist and precede the target', () => {
    assert.equal(chosen({ kind: 'latest' }, { backupId: '20261120T020000Z-aaaaaa' }), '20261120T020000Z-aaaaaa');
    assert.throws(() => chosen({ kind: 'latest' }, { backupId: 'nope' }), (error: unknown) => error instanceof LifeboatError && error.type === 'BackupNotFound');
    assert.throws(
      () => chosen({ kind: 'time', time: '2026-11-21T12:00:00Z' }, { backupId: '20261122T020000Z-cccccc' }),
      (error: unknown) => error instanceof LifeboatError && error.type === 'RecoveryTargetBeforeBackup' && /the chosen base backup 20261122T020000Z-cccccc/.test(error.message),
    );
  });

  it('does not exist when there is no base backup', () => {
    assert.throws(() => chooseBaseBackup([], { kind: 'latest' }), (error: unknown) => error instanceof LifeboatError && error.type === 'BackupNotFound');
  });
});

describe('the recovery settings', () => {
  const targetSettings = (settings: Record<string, string>) =>
    Object.entries(settings).filter(([name, value]) => ['recovery_target', 'recovery_target_time', 'recovery_target_lsn', 'recovery_target_xid', 'recovery_target_name'].includes(name) && value !== '');

  it('set exactly one recovery target, last, and empty the others', () => {
    const cases: Array<[RecoveryTarget, [string, string] | undefined]> = [
      [{ kind: 'latest' }, undefined],
      [{ kind: 'immediate' }, ['recovery_target', 'immediate']],
      [{ kind: 'time', time: '2026-11-21T15:05:00.25+01:00' }, ['recovery_target_time', '2026-11-21 14:05:00.250000+00']],
      [{ kind: 'lsn', lsn: '0/300a028' }, ['recovery_target_lsn', '0/300A028']],
      [{ kind: 'xid', xid: 1234 }, ['recovery_target_xid', '1234']],
      [{ kind: 'name', name: 'before-migration' }, ['recovery_target_name', 'before-migration']],
    ];
    for (const [target, expected] of cases) {
      const settings = recoveryTargetSettings(target);
      assert.deepEqual(targetSettings(settings), expected ? [expected] : [], target.kind);
      assert.equal(Object.keys(settings).filter((name) => name.startsWith('recovery_target') && !['recovery_target_inclusive', 'recovery_target_timeline', 'recovery_target_action'].includes(name)).length, 5);
      if (expected) assert.equal(Object.keys(settings).at(-1), expected[0], 'the chosen target comes after the emptied ones');
      assert.equal(settings.recovery_target_action, 'promote');
    }
  });

  it('carry inclusiveness and the timeline', () => {
    assert.equal(recoveryTargetSettings({ kind: 'lsn', lsn: '0/1', inclusive: false }).recovery_target_inclusive, 'off');
    assert.equal(recoveryTargetSettings({ kind: 'time', time: '2026-11-21T14:05:00Z' }).recovery_target_inclusive, 'on');
    assert.equal(recoveryTargetSettings({ kind: 'latest' }).recovery_target_timeline, 'latest');
    assert.equal(recoveryTargetSettings({ kind: 'latest' }, 3).recovery_target_timeline, '3');
    assert.throws(() => recoveryTargetSettings({ kind: 'latest' }, 0), (error: unknown) => error instanceof LifeboatError && error.type === 'InvalidInput');
  });
});

describe("a recovering server's log", () => {
  const line = (level: string, message: string) => `2026-11-22 03:21:52.432 UTC [22699] ${level}:  ${message}`;
  const promotedLog = [
    line('LOG', 'starting point-in-time recovery to 2026-11-22 03:21:44.615312+00'),
    line('LOG', 'restored log file "000000010000000000000005" from archive'),
    line('LOG', 'redo starts at 0/5000028'),
    line('LOG', 'consistent recovery state reached at 0/5000100'),
    line('LOG', 'restored log file "000000010000000000000006" from archive'),
    line('LOG', 'recovery stopping before commit of transaction 745, time 2026-11-22 03:21:44.615400+00'),
    line('LOG', 'redo done at 0/6000A10 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.63 s'),
    line('LOG', 'last completed transaction was at log time 2026-11-22 03:21:44.615203+00'),
    line('LOG', 'selected new timeline ID: 2'),
    line('LOG', 'archive recovery complete'),
  ].join('\n');
  const context = { target: { kind: 'time', time: '2026-11-22T03:21:44.615312Z' } as RecoveryTarget, backupId: 'b1', walSegmentSizeBytes: 16 * MiB, logFile: '/x/log' };

  it('says where replay stopped, on which new timeline, and which WAL it restored', () => {
    const log = parseRecoveryLog(promotedLog);
    assert.deepEqual(log.stop, {
      message: 'recovery stopping before commit of transaction 745, time 2026-11-22 03:21:44.615400+00',
      relation: 'before',
      record: 'commit',
      transaction: '745',
      time: '2026-11-22 03:21:44.615400+00',
    });
    assert.equal(log.redoDoneAt, '0/6000A10');
    assert.equal(log.lastTransactionTime, '2026-11-22 03:21:44.615203+00');
    assert.equal(log.consistentAt, '0/5000100');
    assert.deepEqual(log.restoredFiles, ['000000010000000000000005', '000000010000000000000006']);
    assert.equal(log.newTimeline, 2);
    assert.equal(log.promoted, true);
    assert.deepEqual(log.fatals, []);
    assert.deepEqual(parseRecoveryLog(line('LOG', 'recovery stopping at restore point "before-x", time 2026-11-22 03:21:44+00')).stop?.restorePoint, 'before-x');
    assert.deepEqual(parseRecoveryLog(line('LOG', 'recovery stopping after WAL location (LSN) "0/6000A10"')).stop?.lsn, '0/6000A10');
    assert.deepEqual(parseRecoveryLog(line('LOG', 'recovery stopping after reaching consistency')).stop?.record, 'consistency');
  });

  // Connections refused before the copy is consistent are FATALs in the log too, before the startup process's own.
  const failing = (fatal: string, detail?: string, extra: string[] = []) =>
    parseRecoveryLog(
      [
        line('FATAL', 'the database system is not yet accepting connections'),
        line('DETAIL', 'Consistent recovery state has not been yet reached.'),
        line('LOG', 'restored log file "000000010000000000000005" from archive'),
        ...extra,
        line('FATAL', fatal),
        ...(detail ? [line('DETAIL', detail)] : []),
      ].join('\n'),
    );
  const typeOf = (log: ReturnType<typeof parseRecoveryLog>, archivedSegments?: string[]) => classifyRecoveryFailure(log, { ...context, archivedSegments });

  it('tells a target beyond the archive from a segment missing in the middle of it', () => {
    const ended = failing('recovery ended before configured recovery target was reached', undefined, [line('LOG', 'last completed transaction was at log time 2026-11-22 03:00:00+00')]);
    const unreachable = typeOf(ended, ['000000010000000000000004', '000000010000000000000005']);
    assert.equal(unreachable?.type, 'RecoveryTargetUnreachable');
    assert.match(unreachable?.message ?? '', /time 2026-11-22T03:21:44.615312Z is not in the archived WAL.*last WAL file 000000010000000000000005.*committed at 2026-11-22 03:00:00\+00/);

    const gap = typeOf(ended, ['000000010000000000000005', '000000010000000000000007', '000000010000000000000008']);
    assert.equal(gap?.type, 'WalSegmentMissing');
    assert.match(gap?.message ?? '', /WAL segment 000000010000000000000006 is missing from the archive.*from 000000010000000000000007/);
    assert.equal(typeOf(ended, ['000000020000000000000007'])?.type, 'RecoveryTargetUnreachable', "another timeline's segments are no gap");
    assert.equal(missingSegment(parseRecoveryLog(promotedLog), { archivedSegments: ['000000010000000000000006'], walSegmentSizeBytes: 16 * MiB, backupId: 'b1' }), undefined);
  });

  it('says when the archive holds nothing after the base backup\'s stop point, with its newest segment and the source\'s archiver', () => {
    const ended = failing('recovery ended before configured recovery target was reached');
    // The backup stopped in segment 5 (its stop LSN 0/5000100); the archive ends there.
    const stopped = { ...context, backupStop: { timeline: 1, stopLsn: '0/5000100', stopTime: '2026-11-22T03:00:00.000000Z' }, archiveTarget: 'main' };
    const silent = classifyRecoveryFailure(ended, {
      ...stopped,
      archivedSegments: ['000000010000000000000004', '000000010000000000000005'],
      newestArchived: { name: '000000010000000000000005', archivedAt: '2026-11-22T03:00:01.000Z' },
      sourceArchiver: 'pg_stat_archiver on db:5432: last archived 000000010000000000000005 at 2026-11-22T03:00:01.000Z; 12 failed attempts, the last for 000000010000000000000006 at 2026-11-22T03:20:00.000Z (archiving is failing now)',
    });
    assert.equal(silent?.type, 'WalSegmentMissing');
    assert.match(
      silent?.message ?? '',
      /the WAL archive of target "main" holds no WAL after base backup b1's stop point \(LSN 0\/5000100, in segment 000000010000000000000005, at 2026-11-22T03:00:00.000000Z\), so WAL archiving has not worked since that backup; its newest segment is 000000010000000000000005, archived 2026-11-22T03:00:01.000Z; pg_stat_archiver on db:5432: .* the last for 000000010000000000000006/,
    );
    const empty = classifyRecoveryFailure(ended, { ...stopped, archivedSegments: [], newestArchived: null });
    assert.match(empty?.message ?? '', /it holds no WAL segment at all/);
    // A stop LSN at a segment boundary belongs to the segment before it.
    assert.equal(classifyRecoveryFailure(ended, { ...stopped, backupStop: { ...stopped.backupStop, stopLsn: '0/6000000' }, archivedSegments: ['000000010000000000000005'] })?.type, 'WalSegmentMissing');
    // Later WAL in the archive (or on a later timeline): the target is beyond it, not the archive silent.
    assert.equal(classifyRecoveryFailure(ended, { ...stopped, archivedSegments: ['000000010000000000000005', '000000010000000000000006'] })?.type, 'RecoveryTargetUnreachable');
    assert.equal(classifyRecoveryFailure(ended, { ...stopped, archivedSegments: ['000000020000000000000005'] })?.type, 'RecoveryTargetUnreachable');
  });

  it('reports a repository that refuses the server\'s OS user as a configuration problem, not as missing WAL', () => {
    const denied = typeOf(
      failing('could not restore file "00000002.history" from archive: child process exited with exit code 126', undefined, [
        'lifeboat wal-fetch: cannot tell whether 00000002.history is archived for target "t": no repository answered: "local": cannot read "t/wal/00000002.history.json" from fs:/r: EACCES: permission denied',
      ]),
    );
    assert.equal(denied?.type, 'InvalidConfig');
    assert.match(denied?.message ?? '', /restore_command \(lifeboat wal-fetch, run by PostgreSQL as its OS user\) was refused access when asked for 00000002\.history: .*EACCES/);
  });

  it('names timelines the archive does not have, or that do not descend from the backup', () => {
    assert.match(typeOf(failing('recovery target timeline 7 does not exist'))?.message ?? '', /timeline 7 does not exist in the WAL archive \(no 00000007\.history\)/);
    const notChild = typeOf(failing("requested timeline 3 is not a child of this server's history", 'Latest checkpoint is at 0/5000060 on timeline 1, but in the history of the requested timeline, the server forked off from that timeline at 0/4000000.'));
    assert.equal(notChild?.type, 'TimelineNotFound');
    assert.match(notChild?.message ?? '', /timeline 3 does not descend from the timeline of base backup b1: Latest checkpoint/);
  });

  it('reports a target inside the backup, a damaged archived file, and anything else as the log says it', () => {
    assert.equal(typeOf(failing('requested recovery stop point is before consistent recovery point'))?.type, 'RecoveryTargetBeforeBackup');
    const damaged = typeOf(
      failing('could not restore file "000000010000000000000006" from archive: command not executable', undefined, [
        'lifeboat wal-fetch: ChecksumMismatch: no intact copy of 000000010000000000000006 in the WAL archive of target "t"',
      ]),
    );
    assert.equal(damaged?.type, 'ChecksumMismatch');
    assert.match(damaged?.message ?? '', /could not deliver 000000010000000000000006: ChecksumMismatch/);
    assert.equal(typeOf(failing('could not locate required checkpoint record'))?.type, 'BackupCorrupt');
    assert.equal(typeOf(failing('the database system is shutting down')), undefined);
    assert.equal(typeOf(parseRecoveryLog(promotedLog)), undefined);
  });
});
