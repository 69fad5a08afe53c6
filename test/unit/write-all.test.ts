import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { writeAll } from '../../src/pipeline/local-file.js';

/** A file handle that takes at most `limit` bytes per writev, as a kernel may, recording each call. */
function shortWritingHandle(limit: number) {
  const written: Buffer[] = [];
  const calls: number[] = [];
  return {
    written,
    calls,
    writev: async (buffers: Buffer[]) => {
      const whole = Buffer.concat(buffers);
      const taken = whole.subarray(0, limit);
      written.push(Buffer.from(taken));
      calls.push(buffers.length);
      return { bytesWritten: taken.length };
    },
  };
}

describe('writing buffers to a file in as few system calls as possible', () => {
  test('hands every buffer to one writev when the kernel takes them all', async () => {
    const handle = shortWritingHandle(Infinity);
    const total = await writeAll(handle, [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')]);
    assert.equal(total, 8);
    assert.deepEqual(handle.calls, [3]);
    assert.equal(Buffer.concat(handle.written).toString(), 'abcdefgh');
  });

  test('continues a short write where it stopped, also inside a buffer, without repeating or losing a byte', async () => {
    const handle = shortWritingHandle(3);
    const total = await writeAll(handle, [Buffer.from('ab'), Buffer.from('cdefg'), Buffer.from('hij')]);
    assert.equal(total, 10);
    assert.equal(Buffer.concat(handle.written).toString(), 'abcdefghij');
    assert.deepEqual(handle.calls, [3, 2, 2, 1], 'each call starts at the first unwritten byte');
  });

  test('writes nothing for empty buffers', async () => {
    const handle = shortWritingHandle(Infinity);
    assert.equal(await writeAll(handle, [Buffer.alloc(0), Buffer.alloc(0)]), 0);
    assert.deepEqual(handle.calls, []);
  });
});
