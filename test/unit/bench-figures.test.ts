import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { heaviestLoad, jobsFor, pgbackrestNewestStartLsn, recoveredMismatch, walBytesBetween } from '../../bench/postgres/figures.js';

describe('PostgreSQL benchmark figures', () => {
  test('WAL between two LSNs crosses the 4 GiB boundary of the high word, and is never negative', () => {
    assert.equal(walBytesBetween('0/7000028', '0/D009EC8'), 0xd009ec8 - 0x7000028);
    assert.equal(walBytesBetween('0/FFFFFF00', '1/100'), 0x200);
    assert.equal(walBytesBetween('0/D000000', '0/7000000'), 0);
  });

  test("the start LSN of pgBackRest's newest backup of the stanza, from pgbackrest info --output=json", () => {
    const info = JSON.stringify([
      { name: 'other', backup: [{ label: 'x', lsn: { start: '0/1000028', stop: '0/1000100' } }] },
      {
        name: 'bench',
        backup: [
          { label: '20261206-223700F', lsn: { start: '0/5000028', stop: '0/5000100' } },
          { label: '20261206-223800F', lsn: { start: '0/7000028', stop: '0/7000138' } },
        ],
      },
    ]);
    assert.equal(pgbackrestNewestStartLsn(info, 'bench'), '0/7000028');
    assert.throws(() => pgbackrestNewestStartLsn(JSON.stringify([{ name: 'bench', backup: [] }]), 'bench'), /no backup with a start LSN for stanza "bench"/);
  });

  test('a recovered cluster matches when it holds the rows of the target and did not replay past it', () => {
    const expected = { historyRows: 50835, targetLsn: '0/D009EC8' };
    assert.equal(recoveredMismatch('lifeboat pitr', { replayLsn: '0/D009EC8', historyRows: 50835 }, expected), undefined);
    assert.equal(recoveredMismatch('lifeboat pitr', { replayLsn: '0/D009E00', historyRows: 50835 }, expected), undefined);
    assert.match(recoveredMismatch('lifeboat pitr', { replayLsn: '0/D009EC8', historyRows: 50823 }, expected)!, /recovered 50823 rows of pgbench_history, the source had 50835/);
    assert.match(recoveredMismatch('pgbackrest restore', { replayLsn: '0/D00A000', historyRows: 50835 }, expected)!, /replayed to 0\/D00A000, past the target 0\/D009EC8/);
  });

  test('the heaviest load is the highest WAL rate, with the fewest clients among those within 5% of it', () => {
    const probe = (clients: number, mibPerSecond: number) => ({ clients, jobs: jobsFor(clients, 2), walBytesPerSecond: mibPerSecond * 2 ** 20 });
    assert.deepEqual(heaviestLoad([probe(2, 10), probe(4, 14), probe(8, 18), probe(16, 12)]), probe(8, 18));
    assert.deepEqual(heaviestLoad([probe(2, 10), probe(4, 17.5), probe(8, 18), probe(16, 18.2)]), probe(4, 17.5));
    assert.throws(() => heaviestLoad([]), /no load was probed/);
  });

  test('pgbench gets one thread per core, never more threads than clients', () => {
    assert.equal(jobsFor(1, 2), 1);
    assert.equal(jobsFor(8, 2), 2);
    assert.equal(jobsFor(4, 8), 4);
  });
});
