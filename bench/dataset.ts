/**
 * The benchmark's database: a SQLite file in WAL mode of about the requested size, an application
 * table of events mixing compressible text and incompressible bytes (a 48-byte token per row), with
 * a secondary index, as a real application database would have.
 *
 * Deterministic: the "random" bytes are an AES-256-CTR keystream under a fixed key, and every other
 * value derives from the row number, so two machines generate the same rows (the file bytes may
 * still differ, e.g. by SQLite version). The file is kept under .lifeboat/bench/, keyed by size and
 * generator version, and reused by later runs; it only counts as present once generation finished.
 */
import Database from 'better-sqlite3';
import { createCipheriv } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Bump when the generated content changes, so an old file is not mistaken for the new one. */
const GENERATOR_VERSION = 1;
const ROWS_PER_TRANSACTION = 5000;
const TOKEN_BYTES = 48;

export interface BenchDatabase {
  path: string;
  sizeBytes: number;
  rows: number;
  /** Whether this run generated it (false: reused) and how long that took. */
  generated: boolean;
  generateSeconds: number;
}

interface Meta {
  version: number;
  sizeMiB: number;
  rows: number;
  sizeBytes: number;
}

const kinds = ['order.placed', 'order.refunded', 'session.login', 'session.logout', 'page.view', 'cart.update', 'payment.captured'];
const words = [
  'customer', 'shipment', 'delayed', 'warehouse', 'express', 'invoice', 'discount', 'coupon', 'retry', 'gateway', 'accepted',
  'declined', 'address', 'verified', 'mobile', 'desktop', 'newsletter', 'subscription', 'renewal', 'support', 'ticket', 'closed',
  'opened', 'priority', 'standard', 'return', 'label', 'printed', 'carrier', 'tracking', 'number', 'updated', 'region', 'eu-west',
];

/** A deterministic stream of pseudo-random bytes: AES-256-CTR over zeros with a fixed key and IV. */
class Keystream {
  private readonly cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 0x4c), Buffer.alloc(16, 0));

  next(bytes: number): Buffer {
    return this.cipher.update(Buffer.alloc(bytes));
  }
}

/** Returns the benchmark database of about sizeMiB, generating it under dir if needed. */
export async function ensureBenchDatabase(dir: string, sizeMiB: number, log: (line: string) => void): Promise<BenchDatabase> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `events-v${GENERATOR_VERSION}-${sizeMiB}MiB.db`);
  const metaPath = `${path}.json`;
  if (existsSync(path) && existsSync(metaPath)) {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as Meta;
    const { size } = await stat(path);
    if (meta.version === GENERATOR_VERSION && meta.sizeMiB === sizeMiB && size === meta.sizeBytes) {
      return { path, sizeBytes: size, rows: meta.rows, generated: false, generateSeconds: 0 };
    }
    log(`${path} does not match its metadata; generating it again`);
  }

  log(`generating a ${sizeMiB} MiB SQLite database at ${path} (once; later runs reuse it)`);
  const started = performance.now();
  const partial = `${path}.generating`;
  for (const file of [path, metaPath, partial, `${partial}-wal`, `${partial}-shm`]) await rm(file, { force: true });
  const rows = generate(partial, sizeMiB);
  await rename(partial, path);
  const { size } = await stat(path);
  const meta: Meta = { version: GENERATOR_VERSION, sizeMiB, rows, sizeBytes: size };
  await writeFile(metaPath, `${JSON.stringify(meta, null, 2)}\n`);
  const generateSeconds = (performance.now() - started) / 1000;
  log(`generated ${rows} rows, ${(size / 2 ** 20).toFixed(0)} MiB in ${generateSeconds.toFixed(1)} s`);
  return { path, sizeBytes: size, rows, generated: true, generateSeconds };
}

function generate(path: string, sizeMiB: number): number {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -262144'); // 256 MiB: keeps the index's pages in memory while it grows
    db.exec(`
      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        note TEXT NOT NULL,
        token BLOB NOT NULL
      );
      CREATE INDEX events_by_user ON events (user_id, created_at);
    `);
    const insert = db.prepare('INSERT INTO events (id, user_id, kind, created_at, note, token) VALUES (?, ?, ?, ?, ?, ?)');
    const keystream = new Keystream();
    const epoch = Date.UTC(2026, 0, 1);
    const targetBytes = sizeMiB * 2 ** 20;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    let rows = 0;
    const batch = db.transaction(() => {
      const random = keystream.next(ROWS_PER_TRANSACTION * (TOKEN_BYTES + 8));
      for (let i = 0; i < ROWS_PER_TRANSACTION; i++) {
        const id = ++rows;
        const r = random.subarray(i * (TOKEN_BYTES + 8), (i + 1) * (TOKEN_BYTES + 8));
        const userId = 1 + (r.readUInt32LE(0) % 250_000);
        const phrase = Array.from({ length: 3 + (r[4]! % 10) }, (_, w) => words[r[5 + w]! % words.length]).join(' ');
        const note = `user ${userId} ${kinds[id % kinds.length]} item ${(id * 7919) % 1_000_003} amount ${(r.readUInt16LE(2) / 100).toFixed(2)} EUR; ${phrase}`;
        insert.run(id, userId, kinds[r[4]! % kinds.length], new Date(epoch + id * 997).toISOString(), note, r.subarray(8));
      }
    });
    while ((db.pragma('page_count', { simple: true }) as number) * pageSize < targetBytes) batch();
    db.pragma('wal_checkpoint(TRUNCATE)');
    return rows;
  } finally {
    db.close();
  }
}
