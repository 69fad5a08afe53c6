import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { archiveNotWorking, stopSegment } from '../../src/postgres/archive-check.js';
import type { ArchiveStatus } from '../../src/postgres/wal-archive.js';
import type { Repository } from '../../src/repository/repository.js';

const MiB = 1024 * 1024;

describe('the archive check after a base backup', () => {
  it('waits for the segment holding the last byte of the backup (a stop LSN on a boundary belongs to the segment before)', () => {
    assert.equal(stopSegment({ timeline: 1, stopLsn: '0/5000100', walSegmentSizeBytes: 16 * MiB }), '000000010000000000000005');
    assert.equal(stopSegment({ timeline: 1, stopLsn: '0/6000000', walSegmentSizeBytes: 16 * MiB }), '000000010000000000000005');
    assert.equal(stopSegment({ timeline: 3, stopLsn: '1/0000028', walSegmentSizeBytes: 16 * MiB }), '000000030000000100000000');
    assert.equal(stopSegment({ timeline: 1, stopLsn: '0/3800010', walSegmentSizeBytes: 64 * MiB }), '000000010000000000000000');
  });

  const status = (overrides: Partial<ArchiveStatus>): ArchiveStatus => ({
    archivedCount: 3,
    lastArchivedWal: '000000010000000000000003',
    lastArchivedAt: '2026-12-06T10:00:00.000Z',
    failedCount: 0,
    lastFailedWal: null,
    lastFailedAt: null,
    statsResetAt: null,
    failing: false,
    inRecovery: false,
    currentWal: '000000010000000000000006',
    walSegmentSizeBytes: 16 * MiB,
    lag: null,
    ...overrides,
  });
  const options = {
    server: 'db:5432',
    archive: { target: 'main', repositories: [{ name: 'local' }, { name: 's3' }] as Repository[] },
    stop: { backupId: 'b1', timeline: 1, stopLsn: '0/5000100', walSegmentSizeBytes: 16 * MiB },
    timeoutSeconds: 60,
  };

  it('ArchiveNotWorking quotes pg_stat_archiver\'s last failure and says what to check', () => {
    const error = archiveNotWorking(options, '000000010000000000000005', ['s3'], status({ failedCount: 7, lastFailedWal: '000000010000000000000004', lastFailedAt: '2026-12-06T10:05:00.000Z', failing: true }));
    assert.equal(error.type, 'ArchiveNotWorking');
    assert.match(error.message, /base backup b1 is stored, but the WAL segment holding its stop point \(000000010000000000000005, LSN 0\/5000100\) did not reach the WAL archive of target "main" within 60 s \(missing in "s3"\)/);
    assert.match(error.message, /pg_stat_archiver on db:5432: last archived 000000010000000000000003 at 2026-12-06T10:00:00.000Z; 7 failed attempts, the last for 000000010000000000000004 at 2026-12-06T10:05:00.000Z \(archiving is failing now\)/);
    assert.match(error.message, /archive command failed.*docs\/postgresql-deployment\.md.*archive\.mode: off/);
  });

  it('a server that archives past the stop segment without failures archives somewhere else: says to check --target', () => {
    const error = archiveNotWorking(options, '000000010000000000000005', ['local', 's3'], status({ lastArchivedWal: '000000010000000000000006' }));
    assert.match(error.message, /The server archives, but not into target "main": check that archive_command passes --target main/);
  });

  it('a server that could not be asked: says so', () => {
    assert.match(archiveNotWorking(options, '000000010000000000000005', ['local'], 'connection refused').message, /pg_stat_archiver could not be read \(connection refused\)/);
  });
});
