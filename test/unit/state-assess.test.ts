/** What counts as outside a target's objectives (src/state/model.ts assess): pure, judged at a given time. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assess, formatDuration, objectivesOf, type ArchiverFacts, type RepositoryState, type TargetState } from '../../src/state/model.js';

const now = Date.parse('2026-11-21T12:00:00Z');
const ago = (seconds: number) => new Date(now - seconds * 1000).toISOString();

function repo(overrides: Partial<RepositoryState> = {}): RepositoryState {
  return {
    repository: 'local',
    location: 'fs:/backups',
    error: null,
    newestBackup: { id: '20261121T110000Z-000aaa', kind: 'sqlite', snapshotAt: ago(600), completedAt: ago(590), storedBytes: 10, sourceBytes: 20, durationSeconds: 10 },
    newestVerifiedBackup: null,
    lastVerify: null,
    lastPassedVerify: null,
    lastDrill: null,
    lastPassedDrill: null,
    wal: null,
    retention: null,
    ...overrides,
  };
}

function state(overrides: Partial<Omit<TargetState, 'problems'>> = {}): Omit<TargetState, 'problems'> {
  return {
    target: 'orders',
    type: 'sqlite',
    observedAt: new Date(now).toISOString(),
    objectives: { rpoSeconds: 3600, rtoSeconds: 60, drillEverySeconds: null, verifyEverySeconds: null },
    repositories: [repo()],
    archiver: null,
    lastRuns: {},
    schedules: [],
    temporalError: null,
    ...overrides,
  };
}

const codes = (s: Omit<TargetState, 'problems'>) => assess(s, now).map((p) => `${p.code}${p.repository ? `@${p.repository}` : ''}`);
const drill = (startedSecondsAgo: number, passed: boolean, rtoSeconds = 10) => ({
  workflowId: 'drill-orders-1',
  startedAt: ago(startedSecondsAgo),
  passed,
  backupId: null,
  method: null,
  rto: { seconds: rtoSeconds, objectiveSeconds: 60, met: rtoSeconds <= 60 },
  rpo: null,
  failure: passed ? null : { type: 'SmokeCheckFailed', message: 'no rows' },
});

describe('assess', () => {
  test('a fresh backup, no failed runs, nothing else required: no problem', () => {
    assert.deepEqual(codes(state()), []);
  });

  test('a backup older than the RPO objective is stale in that repository; no objective, no judgement of age', () => {
    const old = repo({ repository: 's3', newestBackup: { ...repo().newestBackup!, snapshotAt: ago(7200) } });
    assert.deepEqual(codes(state({ repositories: [repo(), old] })), ['backup-stale@s3']);
    assert.deepEqual(codes(state({ repositories: [old], objectives: { ...state().objectives, rpoSeconds: null } })), []);
  });

  test('no backup at all is a problem, but not when the repository could not be read (that is the problem then)', () => {
    assert.deepEqual(codes(state({ repositories: [repo({ newestBackup: null })] })), ['backup-absent@local']);
    assert.deepEqual(codes(state({ repositories: [repo({ newestBackup: null, error: 'ECONNREFUSED' })] })), ['repository-unreadable@local']);
  });

  test('a last run that failed, timed out or was terminated; a cancelled one is not a failure', () => {
    const run = (result: 'failed' | 'cancelled' | 'timed_out' | 'terminated') => ({ workflowId: 'backup-orders-1', result, closedAt: ago(60) });
    assert.deepEqual(codes(state({ lastRuns: { backup: run('failed'), verify: run('timed_out'), drill: run('terminated') } })), ['runbook-failed', 'runbook-failed', 'runbook-failed']);
    assert.deepEqual(codes(state({ lastRuns: { backup: run('cancelled') } })), []);
  });

  test('drills: a failed last drill, an RTO above the objective, and overdue when no drill passed within drillEverySeconds', () => {
    assert.deepEqual(codes(state({ repositories: [repo({ lastDrill: drill(60, false) })] })), ['drill-failed']);
    assert.deepEqual(codes(state({ repositories: [repo({ lastDrill: drill(60, true, 90), lastPassedDrill: drill(60, true, 90) })] })), ['rto-missed']);
    const weekly = { ...state().objectives, drillEverySeconds: 7 * 86400 };
    assert.deepEqual(codes(state({ objectives: weekly })), ['drill-overdue'], 'never drilled');
    assert.deepEqual(codes(state({ objectives: weekly, repositories: [repo({ lastDrill: drill(8 * 86400, true), lastPassedDrill: drill(8 * 86400, true) })] })), ['drill-overdue']);
    assert.deepEqual(codes(state({ objectives: weekly, repositories: [repo({ lastDrill: drill(86400, true), lastPassedDrill: drill(86400, true) })] })), []);
  });

  test('verify: damage found, and overdue without a valid verify within verifyEverySeconds', () => {
    const verify = (valid: boolean, secondsAgo: number) => ({ workflowId: 'verify-1', finishedAt: ago(secondsAgo), valid, backupsChecked: 2, damaged: valid ? [] : [{ backupId: 'b', problems: ['sha256'] }], walGaps: 0 });
    assert.deepEqual(codes(state({ repositories: [repo({ lastVerify: verify(false, 60) })] })), ['verify-damage@local']);
    const daily = { ...state().objectives, verifyEverySeconds: 86400 };
    assert.deepEqual(codes(state({ objectives: daily })), ['verify-overdue@local']);
    assert.deepEqual(codes(state({ objectives: daily, repositories: [repo({ lastVerify: verify(true, 60), lastPassedVerify: verify(true, 60) })] })), []);
  });

  test('WAL archiving: failing, lagging by segments or by more than the RPO, the server unreachable; archive_mode off is not judged', () => {
    const archiver: ArchiverFacts = { reachable: true, error: null, archiveMode: 'on', failing: false, lastArchivedWal: null, lastArchivedAt: null, lastFailedWal: null, lastFailedAt: null, lag: { segments: 0, bytes: 0, seconds: 0 } };
    const pg = (a: Partial<ArchiverFacts>) => state({ type: 'postgres', archiver: { ...archiver, ...a } });
    assert.deepEqual(codes(pg({})), []);
    assert.deepEqual(codes(pg({ failing: true })), ['wal-archive-failing']);
    assert.deepEqual(codes(pg({ lag: { segments: 3, bytes: 1, seconds: 10 } })), ['wal-archive-lagging']);
    assert.deepEqual(codes(pg({ lag: { segments: 1, bytes: 1, seconds: 4000 } })), ['wal-archive-lagging']);
    assert.deepEqual(codes(pg({ reachable: false, error: 'ECONNREFUSED' })), ['postgres-unreachable']);
    assert.deepEqual(codes(pg({ archiveMode: 'off', failing: true })), []);
  });

  test('the Temporal server unreachable is a problem: silence is not health', () => {
    assert.deepEqual(codes(state({ temporalError: 'UNAVAILABLE' })), ['temporal-unreachable']);
  });
});

describe('objectivesOf', () => {
  test('target objectives win; the drill\'s targets stand in for RPO and RTO', () => {
    assert.deepEqual(objectivesOf({ drill: { rtoTargetSeconds: 60, rpoTargetSeconds: 3600 } }), { rpoSeconds: 3600, rtoSeconds: 60, drillEverySeconds: null, verifyEverySeconds: null });
    assert.deepEqual(objectivesOf({ objectives: { rpoSeconds: 600, drillEverySeconds: 86400 }, drill: { rpoTargetSeconds: 3600 } }), {
      rpoSeconds: 600,
      rtoSeconds: null,
      drillEverySeconds: 86400,
      verifyEverySeconds: null,
    });
  });
});

test('formatDuration', () => {
  assert.equal(formatDuration(1), '1.0s');
  assert.equal(formatDuration(90), '1m 30s');
  assert.equal(formatDuration(93784), '1d 2h 3m');
  assert.equal(formatDuration(Infinity), 'never');
});
