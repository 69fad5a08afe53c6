/**
 * Assertions and small tools several suites share: typed-error matchers, sha256, a damaged copy
 * of a stored object, and the text of anything Temporal hands back (for secret scans).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { relative } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { LifeboatError } from '../../src/errors.js';
import type { Repository } from '../../src/repository/repository.js';

/** For assert.rejects / assert.throws: a LifeboatError of this type, its message matching message. */
export function lifeboatError(type: string, message?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof LifeboatError, `expected LifeboatError ${type}, got ${error instanceof Error ? error.stack : String(error)}`);
    assert.equal(error.type, type, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Flips one byte in the middle of a stored object. */
export async function tamper(repository: Repository, key: string): Promise<void> {
  const stored = await buffer(await repository.backend.get(key));
  stored[Math.floor(stored.length / 2)]! ^= 0xff;
  await repository.backend.put(key, Readable.from([stored]));
}

/**
 * Text of anything Temporal or the SDK hands back, with every byte field (payloads, failure
 * details) decoded as UTF-8, so that a leaked value is visible as text. (JSON.stringify alone
 * would not do: protobuf messages and Buffers serialize their bytes as base64 or number lists.)
 */
export function serialize(value: unknown): string {
  const open = new Set<object>();
  const plain = (node: unknown): unknown => {
    if (node instanceof Uint8Array) return Buffer.from(node).toString('utf8');
    if (typeof node === 'bigint') return node.toString();
    if (node === null || typeof node !== 'object') return node;
    if (node instanceof Date) return node.toISOString();
    if (open.has(node)) return '[cycle]';
    open.add(node);
    try {
      if (Array.isArray(node)) return node.map(plain);
      if (node instanceof Map) return [...node].map(([key, entry]) => [plain(key), plain(entry)]);
      return Object.fromEntries(Object.keys(node).map((key) => [key, plain((node as Record<string, unknown>)[key])]));
    } finally {
      open.delete(node);
    }
  };
  return JSON.stringify(plain(value));
}

/** Every file under a directory (a backup's folder in an fs repository), as sorted paths relative to it. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => relative(dir, `${entry.parentPath}/${entry.name}`)).sort();
}
