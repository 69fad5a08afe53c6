import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import { fanOut } from '../../src/pipeline/fan-out.js';

describe('fan-out to several repositories', () => {
  test('every branch receives every byte, even one that starts reading late and reads slowly', async () => {
    const data = randomBytes(9 * 2 ** 20 + 7);
    const { sink, branches } = fanOut(2, 1 << 20);
    const fast = buffer(branches[0]!);
    const slow = new Promise<Buffer>((resolve) => {
      setTimeout(() => {
        const parts: Buffer[] = [];
        const reader = new Writable({
          write(chunk: Buffer, _encoding, done) {
            parts.push(chunk);
            setTimeout(done, 1);
          },
        });
        reader.on('finish', () => resolve(Buffer.concat(parts)));
        branches[1]!.pipe(reader);
      }, 50);
    });
    await pipeline(Readable.from([data.subarray(0, 4_000_000), data.subarray(4_000_000)]), sink);
    assert.ok((await fast).equals(data));
    assert.ok((await slow).equals(data));
  });

  test('an error destroys the branches, so no repository stores a truncated object as complete', async () => {
    const { sink, branches } = fanOut(2);
    const failure = new Error('source failed');
    const sinkError = once(sink, 'error');
    const readers = branches.map((branch) => buffer(branch));
    sink.destroy(failure);
    assert.deepEqual(await sinkError, [failure]);
    for (const reader of readers) await assert.rejects(reader, /source failed/);
  });

  test('a branch nobody reads (its upload failed before it started) takes the error quietly: the process does not crash', async () => {
    const { sink, branches } = fanOut(2);
    const failure = new Error('upload failed');
    const sinkError = once(sink, 'error');
    const reader = buffer(branches[0]!); // branches[1] has no reader at all
    sink.destroy(failure);
    assert.deepEqual(await sinkError, [failure]);
    await assert.rejects(reader, /upload failed/);
    assert.equal(branches[1]!.destroyed, true);
    await new Promise((resolve) => setImmediate(resolve)); // an unhandled 'error' would have thrown by now
  });
});
