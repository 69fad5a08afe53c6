import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressor } from '../pipeline/compress.js';
import type { Repository } from '../repository/repository.js';
import { walObjectKey } from './wal-archive.js';
import { parseHistoryFile, type TimelineHistory } from './wal-window.js';

/**
 * The WAL archive of a target as one listing: which files are archived (their record exists:
 * the record is written last), which payloads have no record (an interrupted push), and the
 * timeline history files' contents (a few bytes each). Requests: the listing, one read per
 * history file.
 */
export interface WalListing {
  /** Names with a record, in key order. */
  archived: string[];
  /** Names whose payload is stored without a record. */
  unrecorded: string[];
  /** Stored size of each payload, by name. */
  payloadSizes: Map<string, number>;
}

export async function listWal(repository: Repository, target: string): Promise<WalListing> {
  const prefix = `${target}/wal/`;
  const payloadSizes = new Map<string, number>();
  const archived: string[] = [];
  for (const { key, sizeBytes } of await repository.backend.list(prefix)) {
    const file = key.slice(prefix.length);
    if (file.endsWith('.zst')) payloadSizes.set(file.slice(0, -4), sizeBytes);
    else if (file.endsWith('.json')) archived.push(file.slice(0, -5));
  }
  const recorded = new Set(archived);
  return { archived, unrecorded: [...payloadSizes.keys()].filter((name) => !recorded.has(name)), payloadSizes };
}

/** The timeline history files among the archived names, read and parsed (problems are returned, not thrown). */
export async function readHistories(repository: Repository, target: string, archived: readonly string[]): Promise<{ histories: TimelineHistory[]; problems: string[] }> {
  const histories: TimelineHistory[] = [];
  const problems: string[] = [];
  for (const name of archived.filter((n) => /^[0-9A-F]{8}\.history$/.test(n))) {
    const key = walObjectKey(target, name);
    try {
      histories.push(parseHistoryFile(parseInt(name.slice(0, 8), 16), await decompressedText(repository, key)));
    } catch (error) {
      problems.push(`${key}: unreadable timeline history (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  return { histories, problems };
}

async function decompressedText(repository: Repository, key: string): Promise<string> {
  const chunks: Buffer[] = [];
  await pipeline(
    await repository.backend.get(key),
    createDecompressor(),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(chunks).toString('utf8');
}
