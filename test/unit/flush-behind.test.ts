import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FlushBehind } from '../../src/repository/fs/backend.js';

/** A file handle whose datasync calls are counted and finished by the test. */
function fakeHandle() {
  const calls: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  return {
    calls,
    datasync: () =>
      new Promise<void>((resolve, reject) => {
        calls.push({ resolve, reject });
      }),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('flushing an object to disk while it is written (fs repository)', () => {
  test('starts a flush once enough bytes are written, and none while one is running', async () => {
    const handle = fakeHandle();
    const flush = new FlushBehind(handle, 100);
    flush.wrote(60);
    assert.equal(handle.calls.length, 0, 'below the threshold nothing is flushed');
    flush.wrote(60);
    assert.equal(handle.calls.length, 1);
    flush.wrote(500);
    assert.equal(handle.calls.length, 1, 'one flush at a time');
    handle.calls[0]!.resolve();
    await tick();
    flush.wrote(100);
    assert.equal(handle.calls.length, 2, 'the next flush starts after the first one finished');
    handle.calls[1]!.resolve();
    await flush.settle();
  });

  test('settle waits for the flush in progress', async () => {
    const handle = fakeHandle();
    const flush = new FlushBehind(handle, 1);
    flush.wrote(1);
    let settled = false;
    const settling = flush.settle().then(() => (settled = true));
    await tick();
    assert.equal(settled, false);
    handle.calls[0]!.resolve();
    await settling;
    assert.equal(settled, true);
  });

  test('a failed flush is reported by settle, and no flush starts after it', async () => {
    const handle = fakeHandle();
    const flush = new FlushBehind(handle, 1);
    flush.wrote(1);
    handle.calls[0]!.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await tick();
    flush.wrote(10);
    assert.equal(handle.calls.length, 1);
    await assert.rejects(flush.settle(), /EIO/);
  });
});
