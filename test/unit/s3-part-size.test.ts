import assert from 'node:assert/strict';
import { test } from 'node:test';
import { partSizeFor } from '../../src/repository/s3/backend.js';

const MiB = 1024 * 1024;

test('an upload of unknown size uses the configured part size', () => {
  assert.equal(partSizeFor(8 * MiB, undefined), 8 * MiB);
});

test('a body that fits in 9,000 configured parts keeps the configured part size', () => {
  assert.equal(partSizeFor(8 * MiB, 1024 * MiB), 8 * MiB);
  assert.equal(partSizeFor(8 * MiB, 9_000 * 8 * MiB), 8 * MiB);
});

test('a larger body grows the part size in whole MiB so that it fits in 9,000 parts (S3 allows 10,000)', () => {
  const size = 200 * 1024 * MiB; // 200 GiB
  const part = partSizeFor(8 * MiB, size);
  assert.equal(part % MiB, 0);
  assert.ok(Math.ceil(size / part) <= 9_000, `${Math.ceil(size / part)} parts`);
  assert.ok(part < 8 * MiB * 3, 'no bigger than needed');
});
