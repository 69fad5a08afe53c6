import { createHash, type Hash } from 'node:crypto';

/*
 * Reads pg_dump's archive format: the header and table of contents (TOC) that open a custom-format
 * archive and make up a directory-format dump's toc.dat, and the data blocks that follow the TOC
 * in a custom-format archive. Lifeboat reads it, rather than `pg_restore --list`, for two things:
 *
 * - which table each data block or <dumpId>.dat file belongs to, with the exact COPY statement
 *   pg_dump used (its column list leaves out generated and dropped columns), unambiguously (the
 *   --list text cannot tell "TABLE DATA public we ird owner" apart);
 * - a fingerprint of each table as it streams by: sha256 and row count of its COPY text.
 *
 * Layout (pg_backup_archiver.c, archive versions 1.12 to 1.15): "PGDMP", version bytes, int size,
 * offset size, format; compression (an int before 1.15, a byte since); creation time (7 ints);
 * database name, server and pg_dump versions (strings); the TOC entry count and the entries. An
 * int is a sign byte and `intSize` little-endian magnitude bytes; a string is an int length (-1:
 * null) and that many bytes. Custom-format data blocks: a block type byte, the dump id, then
 * chunks (int length + bytes) ending with a zero length; large-object blocks carry (oid, chunks)
 * pairs ending with oid 0.
 */

export interface ArchiveHeader {
  version: string;
  intSize: number;
  offSize: number;
  format: number;
  compression: number;
  database: string;
  serverVersion: string;
  pgDumpVersion: string;
}

export interface TocEntry {
  dumpId: number;
  hasData: boolean;
  tableOid: string;
  oid: string;
  tag: string;
  desc: string;
  section: number;
  copyStmt: string | null;
  namespace: string | null;
  owner: string | null;
  /** Directory format: the data file (e.g. "3345.dat"); null for entries without data and for custom format. */
  filename: string | null;
}

export interface ParsedToc {
  header: ArchiveHeader;
  entries: TocEntry[];
}

const minVersion = [1, 12];
const blockData = 1;
const blockBlobs = 3;

class NeedMore extends Error {}

/** A cursor over bytes that throws NeedMore when they run out (a streaming reader retries later). */
class Cursor {
  position = 0;
  constructor(
    readonly bytes: Buffer,
    public intSize = 4,
  ) {}

  byte(): number {
    if (this.position >= this.bytes.length) throw new NeedMore();
    return this.bytes[this.position++]!;
  }

  take(length: number): Buffer {
    if (this.position + length > this.bytes.length) throw new NeedMore();
    const slice = this.bytes.subarray(this.position, this.position + length);
    this.position += length;
    return slice;
  }

  int(): number {
    const negative = this.byte() !== 0;
    const magnitude = this.take(this.intSize);
    let value = 0;
    for (let i = magnitude.length - 1; i >= 0; i--) value = value * 256 + magnitude[i]!;
    return negative ? -value : value;
  }

  str(): string | null {
    const length = this.int();
    if (length < 0) return null;
    return this.take(length).toString('utf8');
  }
}

function readHeader(cursor: Cursor): ArchiveHeader {
  const magic = cursor.take(5).toString('latin1');
  if (magic !== 'PGDMP') throw new Error('not a pg_dump archive (no PGDMP signature)');
  const [major, minor, revision] = [cursor.byte(), cursor.byte(), cursor.byte()];
  if (major! < minVersion[0]! || (major === minVersion[0] && minor! < minVersion[1]!)) {
    throw new Error(`pg_dump archive version ${major}.${minor} is older than 1.12 (PostgreSQL 11), which Lifeboat does not read`);
  }
  const intSize = cursor.byte();
  const offSize = cursor.byte();
  const format = cursor.byte();
  cursor.intSize = intSize;
  const compression = major === 1 && minor! < 15 ? cursor.int() : cursor.byte();
  for (let i = 0; i < 7; i++) cursor.int(); // creation time
  const database = cursor.str() ?? '';
  const serverVersion = cursor.str() ?? '';
  const pgDumpVersion = cursor.str() ?? '';
  return { version: `${major}.${minor}.${revision}`, intSize, offSize, format, compression, database, serverVersion, pgDumpVersion };
}

function readEntry(cursor: Cursor, header: ArchiveHeader, directory: boolean): TocEntry {
  const dumpId = cursor.int();
  const hasData = cursor.int() !== 0;
  const tableOid = cursor.str() ?? '';
  const oid = cursor.str() ?? '';
  const tag = cursor.str() ?? '';
  const desc = cursor.str() ?? '';
  const section = cursor.int();
  cursor.str(); // defn
  cursor.str(); // dropStmt
  const copyStmt = cursor.str();
  const namespace = cursor.str();
  cursor.str(); // tablespace
  cursor.str(); // table access method
  const owner = cursor.str();
  cursor.str(); // "false" (was: with oids)
  while (cursor.str() !== null); // dependencies
  let filename: string | null = null;
  if (directory) {
    filename = cursor.str() || null;
  } else {
    cursor.byte(); // offset flag
    cursor.take(header.offSize);
  }
  return { dumpId, hasData, tableOid, oid, tag, desc, section, copyStmt, namespace, owner, filename };
}

/** Parses a directory-format dump's toc.dat. */
export function parseTocFile(bytes: Buffer): ParsedToc {
  const cursor = new Cursor(bytes);
  try {
    const header = readHeader(cursor);
    const count = cursor.int();
    const entries: TocEntry[] = [];
    for (let i = 0; i < count; i++) entries.push(readEntry(cursor, header, true));
    return { header, entries };
  } catch (error) {
    if (error instanceof NeedMore) throw new Error(`toc.dat is truncated (${bytes.length} bytes)`);
    throw error;
  }
}

/** A table's data as pg_dump wrote it: sha256 and row count of its COPY text (including pg_dump's end marker). */
export interface TableFingerprint {
  dumpId: number;
  schema: string;
  name: string;
  /** pg_dump's COPY statement ("COPY public.t (a, b) FROM stdin;"): the same columns, in the same order. */
  copy: string;
  rows: number;
  bytes: number;
  sha256: string;
}

/** What pg_dump writes after the last row of a table's COPY data. */
export const copyEndMarker = Buffer.from('\\.\n\n\n');

/** The end marker as the last line of COPY text (after a row's newline); nothing but an empty table's data starts with it. */
const markerLine = Buffer.concat([Buffer.from('\n'), copyEndMarker]);

/** How many of the last bytes of a table's data endsCopyText needs. */
export const copyTextTailBytes = markerLine.length;

/**
 * Whether data whose last min(size, copyTextTailBytes) bytes are `tail` is complete COPY text:
 * it ends with pg_dump's end marker as its own line. COPY text escapes every backslash, so a line
 * "\." occurs nowhere but at the end, and pg_dump writes nothing after it: a data file that ends
 * so is complete even while pg_dump still has it open.
 */
export function endsCopyText(tail: Buffer): boolean {
  return tail.equals(markerLine) || tail.equals(copyEndMarker);
}

/**
 * Hashes and counts one table's COPY text as it streams by. A custom-format archive holds one
 * chunk per row: they are gathered into a buffer first, so that hashing and counting run over
 * large slices rather than once per row.
 */
export class CopyFingerprinter {
  private readonly hash: Hash = createHash('sha256');
  private readonly batch = Buffer.allocUnsafe(256 * 1024);
  private batched = 0;
  private lines = 0;
  private byteCount = 0;
  private readonly tail = Buffer.alloc(copyTextTailBytes);
  private tailLength = 0;

  update(chunk: Buffer): void {
    if (chunk.length >= this.batch.length) {
      this.flush();
      this.consume(chunk);
      return;
    }
    if (this.batched + chunk.length > this.batch.length) this.flush();
    chunk.copy(this.batch, this.batched);
    this.batched += chunk.length;
  }

  private flush(): void {
    if (this.batched === 0) return;
    this.consume(this.batch.subarray(0, this.batched));
    this.batched = 0;
  }

  private consume(bytes: Buffer): void {
    this.hash.update(bytes);
    this.byteCount += bytes.length;
    for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) this.lines++;
    const keep = Math.min(bytes.length, this.tail.length);
    this.tail.copy(this.tail, 0, keep, this.tail.length);
    bytes.copy(this.tail, this.tail.length - keep, bytes.length - keep);
    this.tailLength = Math.min(this.tail.length, this.tailLength + keep);
  }

  /** Whether the text so far ends with pg_dump's end marker, i.e. holds the whole table (see endsCopyText). */
  ended(): boolean {
    this.flush();
    return endsCopyText(this.tail.subarray(this.tail.length - this.tailLength));
  }

  /** Rows are the lines before pg_dump's end marker (COPY text escapes newlines inside values). */
  finish(): { rows: number; bytes: number; sha256: string } {
    const { rows, bytes, sha256 } = this.finishFile();
    if (rows === undefined) throw new Error(`table data does not end with pg_dump's end-of-data marker (${bytes} bytes): the dump is incomplete`);
    return { rows, bytes, sha256 };
  }

  /**
   * sha256 and length of the bytes, and the rows when they are complete COPY text (undefined when
   * they do not end with the end marker): for a data file that is checked against the TOC later.
   */
  finishFile(): { rows: number | undefined; bytes: number; sha256: string } {
    const ended = this.ended();
    return { rows: ended ? this.lines - 3 : undefined, bytes: this.byteCount, sha256: this.hash.digest('hex') };
  }
}

/** The fingerprint entry of a TABLE DATA TOC entry. */
export function describeTable(entry: TocEntry, fingerprint: { rows: number; bytes: number; sha256: string }): TableFingerprint {
  return {
    dumpId: entry.dumpId,
    schema: entry.namespace ?? '',
    name: entry.tag,
    copy: entry.copyStmt ?? '',
    ...fingerprint,
  };
}

export function isTableData(entry: TocEntry): boolean {
  return entry.desc === 'TABLE DATA' && entry.hasData && entry.copyStmt !== null && entry.copyStmt.startsWith('COPY ');
}

type StreamState =
  | { phase: 'toc' }
  | { phase: 'block' }
  | { phase: 'chunk-length'; dumpId: number; blobs: boolean }
  | { phase: 'blob-oid'; dumpId: number }
  | { phase: 'chunk'; dumpId: number; blobs: boolean; remaining: number };

/**
 * Reads a custom-format archive as it streams (pg_dump -Fc -Z0 to stdout): the TOC first, then
 * fingerprints every table's data block. Feed it every chunk in order, then call finish().
 */
export class CustomArchiveReader {
  private pending: Buffer = Buffer.alloc(0);
  private state: StreamState = { phase: 'toc' };
  private header: ArchiveHeader | undefined;
  private entries: TocEntry[] = [];
  private readonly byId = new Map<number, TocEntry>();
  private readonly open = new Map<number, CopyFingerprinter>();
  private readonly done: TableFingerprint[] = [];
  /** The archive's header and TOC bytes (what `pg_restore --list` reads). */
  tocBytes: Buffer | undefined;

  write(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.drain();
  }

  private drain(): void {
    for (;;) {
      if (this.state.phase === 'chunk') {
        const state = this.state;
        if (this.pending.length === 0) return;
        const piece = this.pending.subarray(0, state.remaining);
        this.pending = this.pending.subarray(piece.length);
        state.remaining -= piece.length;
        if (!state.blobs) this.open.get(state.dumpId)?.update(piece);
        if (state.remaining === 0) this.state = { phase: 'chunk-length', dumpId: state.dumpId, blobs: state.blobs };
        continue;
      }
      const cursor = new Cursor(this.pending, this.header?.intSize ?? 4);
      try {
        this.step(cursor);
      } catch (error) {
        if (error instanceof NeedMore) return;
        throw error;
      }
      this.pending = this.pending.subarray(cursor.position);
    }
  }

  private step(cursor: Cursor): void {
    const state = this.state;
    switch (state.phase) {
      case 'toc': {
        const header = readHeader(cursor);
        const count = cursor.int();
        const entries: TocEntry[] = [];
        for (let i = 0; i < count; i++) entries.push(readEntry(cursor, header, false));
        if (header.compression !== 0) throw new Error(`the archive is compressed (${header.compression}); Lifeboat dumps with -Z0 and compresses itself`);
        this.header = header;
        this.entries = entries;
        for (const entry of entries) this.byId.set(entry.dumpId, entry);
        this.tocBytes = Buffer.from(cursor.bytes.subarray(0, cursor.position));
        this.state = { phase: 'block' };
        return;
      }
      case 'block': {
        const type = cursor.byte();
        const dumpId = cursor.int();
        if (type !== blockData && type !== blockBlobs) throw new Error(`unexpected block type ${type} in the archive`);
        const entry = this.byId.get(dumpId);
        if (type === blockData && entry && isTableData(entry)) this.open.set(dumpId, new CopyFingerprinter());
        this.state = type === blockBlobs ? { phase: 'blob-oid', dumpId } : { phase: 'chunk-length', dumpId, blobs: false };
        return;
      }
      case 'blob-oid': {
        const oid = cursor.int();
        this.state = oid === 0 ? { phase: 'block' } : { phase: 'chunk-length', dumpId: state.dumpId, blobs: true };
        return;
      }
      case 'chunk-length': {
        const length = cursor.int();
        if (length > 0) {
          this.state = { phase: 'chunk', dumpId: state.dumpId, blobs: state.blobs, remaining: length };
          return;
        }
        if (state.blobs) {
          this.state = { phase: 'blob-oid', dumpId: state.dumpId };
          return;
        }
        const fingerprinter = this.open.get(state.dumpId);
        if (fingerprinter) {
          this.open.delete(state.dumpId);
          this.done.push(describeTable(this.byId.get(state.dumpId)!, fingerprinter.finish()));
        }
        this.state = { phase: 'block' };
        return;
      }
      default:
        throw new Error('internal error: unexpected archive reader state');
    }
  }

  /** The TOC and every table's fingerprint; throws if the archive ended in the middle of something. */
  finish(): ParsedToc & { tables: TableFingerprint[] } {
    if (!this.header) throw new Error('the archive ended before its table of contents');
    if (this.pending.length > 0 || this.state.phase !== 'block') throw new Error('the archive ended in the middle of a data block');
    return { header: this.header, entries: this.entries, tables: [...this.done].sort((a, b) => a.dumpId - b.dumpId) };
  }
}
