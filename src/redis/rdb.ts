import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import { execa } from 'execa';
import { LifeboatError } from '../errors.js';
import { createDecompressor } from '../pipeline/compress.js';
import { stderrTail } from '../pipeline/command-stream.js';

/**
 * What Lifeboat reads of an RDB file (Redis's snapshot format) and how it checks one:
 *
 * - the header (magic, format version, the AUX fields: redis-ver, ctime, used-mem...), read from the
 *   first bytes of the stream as it passes;
 * - the end of `redis-cli --rdb -`'s output: over a diskless replication the server ends the
 *   payload with a 40-byte EOF mark, which redis-cli 7.0 writes to stdout too (it truncates a file,
 *   but cannot truncate a pipe); the RDB is the first N bytes, N as redis-cli reports on stderr
 *   (trimmed as it passes when the worker reads the RDB; stored, and dropped on restore, when zstd
 *   reads redis-cli's output directly);
 * - `redis-check-rdb`, which reads the whole file and reports the keys it read (a count taken from
 *   the snapshot itself, not from the live server a moment later).
 */

/** The size of the EOF mark a diskless transfer ends with (RDB_EOF_MARK_SIZE). */
export const eofMarkBytes = 40;

export interface RdbHeader {
  /** The RDB format version (10 for Redis 7.0, 11 for 7.2, 12 for 7.4). */
  version: number;
  /** The AUX fields of the header (redis-ver, redis-bits, ctime, used-mem, aof-base...). */
  aux: Record<string, string>;
}

class NeedMore extends Error {}

/** Reads the header of an RDB from its first bytes; feed chunks until `header` is set. */
export class RdbHeaderReader {
  private buffered: Buffer[] = [];
  private length = 0;
  header: RdbHeader | undefined;
  problem: string | undefined;

  /** Up to this many bytes are looked at: the AUX fields are short. */
  static readonly limit = 1 << 16;

  write(chunk: Buffer): void {
    if (this.header || this.problem || this.length >= RdbHeaderReader.limit) return;
    this.buffered.push(chunk);
    this.length += chunk.length;
    const bytes = Buffer.concat(this.buffered);
    this.buffered = [bytes];
    try {
      this.header = parseRdbHeader(bytes);
      this.buffered = [];
    } catch (error) {
      if (error instanceof NeedMore && this.length < RdbHeaderReader.limit) return;
      this.problem = error instanceof NeedMore ? `no end of the RDB header in its first ${RdbHeaderReader.limit} bytes` : (error as Error).message;
      this.buffered = [];
    }
  }
}

/** Parses magic, version and AUX fields; throws NeedMore when the bytes end inside the header. */
export function parseRdbHeader(bytes: Buffer): RdbHeader {
  if (bytes.length < 9) throw new NeedMore();
  const magic = bytes.toString('latin1', 0, 5);
  const version = Number(bytes.toString('latin1', 5, 9));
  if (magic !== 'REDIS' || !Number.isInteger(version)) throw new Error(`not an RDB stream (it starts with ${JSON.stringify(bytes.toString('latin1', 0, 9))})`);
  const aux: Record<string, string> = {};
  let at = 9;
  const need = (count: number) => {
    if (at + count > bytes.length) throw new NeedMore();
  };
  const readLength = (): { value: number; encoded?: number } => {
    need(1);
    const first = bytes[at]!;
    const kind = first >> 6;
    if (kind === 0) {
      at += 1;
      return { value: first & 0x3f };
    }
    if (kind === 1) {
      need(2);
      const value = ((first & 0x3f) << 8) | bytes[at + 1]!;
      at += 2;
      return { value };
    }
    if (kind === 2) {
      if (first === 0x80) {
        need(5);
        const value = bytes.readUInt32BE(at + 1);
        at += 5;
        return { value };
      }
      if (first === 0x81) {
        need(9);
        const value = Number(bytes.readBigUInt64BE(at + 1));
        at += 9;
        return { value };
      }
      throw new Error(`unknown length encoding 0x${first.toString(16)} in the RDB header`);
    }
    at += 1;
    return { value: 0, encoded: first & 0x3f };
  };
  const readString = (): string => {
    const length = readLength();
    if (length.encoded === undefined) {
      need(length.value);
      const value = bytes.toString('utf8', at, at + length.value);
      at += length.value;
      return value;
    }
    switch (length.encoded) {
      case 0:
        need(1);
        at += 1;
        return String(bytes.readInt8(at - 1));
      case 1:
        need(2);
        at += 2;
        return String(bytes.readInt16LE(at - 2));
      case 2:
        need(4);
        at += 4;
        return String(bytes.readInt32LE(at - 4));
      case 3: {
        // An LZF-compressed string (a long AUX value such as repl-id): skipped, it is not needed.
        const compressed = readLength().value;
        readLength();
        need(compressed);
        at += compressed;
        return '';
      }
      default:
        throw new Error(`unknown string encoding ${length.encoded} in the RDB header`);
    }
  };
  const auxOpcode = 0xfa;
  for (;;) {
    need(1);
    if (bytes[at] !== auxOpcode) break;
    at += 1;
    const key = readString();
    aux[key] = readString();
  }
  return { version, aux };
}

/**
 * Reads the RDB header from a zstd stream of the RDB as it passes (the raw bytes never reach the
 * worker): the first compressed chunks are also given to a `zstd -d`, whose output goes to an
 * RdbHeaderReader; once the header is read (or found not to be one), the decoder is stopped. That
 * is the first block or two, a few hundred KB of a stream of any size.
 */
export class CompressedRdbHeaderReader extends Transform {
  readonly reader = new RdbHeaderReader();
  private decoder: Duplex | undefined;
  private readonly decoderClosed: Promise<void>;

  constructor() {
    super();
    const decoder = createDecompressor();
    this.decoder = decoder;
    this.decoderClosed = new Promise((resolve) => decoder.once('close', () => resolve()));
    decoder.on('data', (chunk: Buffer) => {
      this.reader.write(chunk);
      if (this.reader.header || this.reader.problem) this.stopDecoder();
    });
    decoder.on('error', (error: Error) => {
      this.reader.problem ??= this.reader.header ? undefined : `its first bytes do not decode: ${error.message}`;
    });
  }

  get header(): RdbHeader | undefined {
    return this.reader.header;
  }

  get problem(): string | undefined {
    return this.reader.problem;
  }

  private stopDecoder(): void {
    const decoder = this.decoder;
    this.decoder = undefined;
    decoder?.destroy();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const decoder = this.decoder;
    if (!decoder || decoder.destroyed || decoder.write(chunk)) {
      callback(null, chunk);
      return;
    }
    const go = () => {
      decoder.off('drain', go);
      decoder.off('close', go);
      callback(null, chunk);
    };
    decoder.once('drain', go);
    decoder.once('close', go);
  }

  override _flush(callback: TransformCallback): void {
    // A stream shorter than the decoder needed: all of it is in, so let the decoder finish.
    if (this.decoder && !this.decoder.destroyed) this.decoder.end();
    else this.stopDecoder();
    this.decoderClosed.then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stopDecoder();
    callback(error);
  }
}

/**
 * Passes the first N bytes of `redis-cli --rdb -`'s output on: it holds the last 40 bytes back
 * until the stream ends, then asks `payloadBytes()` (redis-cli's own count, from its stderr once
 * it has exited) how many bytes the RDB has. A size that is neither everything nor everything but
 * the EOF mark fails the stream.
 */
export class EofMarkTrimmer extends Transform {
  private held: Buffer = Buffer.alloc(0);
  private passed = 0;

  constructor(private readonly payloadBytes: () => Promise<number | undefined>) {
    super();
  }

  get bytes(): number {
    return this.passed;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.held.length + chunk.length <= eofMarkBytes) {
      this.held = Buffer.concat([this.held, chunk]);
      callback();
      return;
    }
    // Everything but the last 40 bytes goes on, without copying the chunk: what was held, then the
    // chunk up to its last 40 bytes (or, for a chunk shorter than that, part of what was held).
    if (chunk.length >= eofMarkBytes) {
      if (this.held.length > 0) this.push(this.held);
      const out = chunk.subarray(0, chunk.length - eofMarkBytes);
      this.passed += this.held.length + out.length;
      this.held = Buffer.from(chunk.subarray(chunk.length - eofMarkBytes));
      callback(null, out);
      return;
    }
    const all = Buffer.concat([this.held, chunk]);
    const out = all.subarray(0, all.length - eofMarkBytes);
    this.held = Buffer.from(all.subarray(all.length - eofMarkBytes));
    this.passed += out.length;
    callback(null, out);
  }

  override _flush(callback: TransformCallback): void {
    this.payloadBytes().then(
      (expected) => {
        const total = this.passed + this.held.length;
        if (expected === undefined) {
          callback(new Error('redis-cli did not say how many bytes the RDB has ("Transfer finished" / "writing N bytes")'));
          return;
        }
        if (expected !== total && expected !== total - eofMarkBytes) {
          callback(new Error(`redis-cli reports ${expected} bytes of RDB, but wrote ${total}`));
          return;
        }
        const tail = this.held.subarray(0, expected - this.passed);
        this.passed += tail.length;
        callback(null, tail.length > 0 ? tail : undefined);
      },
      (error: unknown) => callback(error as Error),
    );
  }
}

/** The RDB's size as redis-cli reports it on stderr (diskless: "after N bytes"; from disk: "writing N bytes"). */
export function payloadBytesReported(stderr: string): number | undefined {
  const diskless = /Transfer finished with success after (\d+) bytes/.exec(stderr);
  if (diskless) return Number(diskless[1]);
  const fromDisk = /writing (\d+) bytes to/.exec(stderr);
  if (fromDisk && /Transfer finished with success/.test(stderr)) return Number(fromDisk[1]);
  return undefined;
}

/** What redis-check-rdb found. */
export interface RdbCheck {
  ok: boolean;
  /** Keys read, over every database. */
  keys: number;
  /** Keys with a TTL. */
  expires: number;
  /** Keys whose TTL had passed when the check ran (a server loading the file drops them). */
  alreadyExpired: number;
  /** The error lines when it failed. */
  problems: string[];
}

export function parseCheckOutput(output: string): RdbCheck {
  const count = (what: string) => Number(new RegExp(`\\[info\\] (\\d+) ${what}`).exec(output)?.[1] ?? 0);
  const ok = /RDB looks OK!/.test(output);
  const problems = ok
    ? []
    : output
        .split('\n')
        .filter((line) => /ERROR|error|Unexpected|Wrong|Can't|\[additional info\]/.test(line))
        .slice(0, 8);
  return { ok, keys: count('keys read'), expires: count('expires'), alreadyExpired: count('already expired'), problems };
}

/** The version line of redis-check-rdb (it prints the Redis version it belongs to). */
export async function redisToolsVersion(): Promise<string> {
  const result = await execa('redis-cli', ['--version'], { reject: false, stdin: 'ignore' });
  const version = /redis-cli (\S+)/.exec(String(result.stdout))?.[1];
  if (result.failed || !version) {
    throw new LifeboatError('InvalidConfig', `redis-cli does not run on the worker (${result.shortMessage ?? 'no version'})`, 'Install the Redis tools where the worker runs (Debian: apt-get install redis-tools)');
  }
  return version;
}

/** The failure of a check, for the step's error. */
export function checkFailure(check: RdbCheck, what: string, header: RdbHeader | undefined, toolsVersion: string): LifeboatError {
  const newer = header && header.version > 10 && check.problems.some((line) => /version|Can't handle/i.test(line));
  return new LifeboatError(
    'IntegrityCheckFailed',
    `redis-check-rdb ${toolsVersion} finds ${what} damaged: ${check.problems.join('; ') || 'no "RDB looks OK"'}`,
    newer
      ? `The RDB is format ${header.version}, newer than these tools read: install redis-tools of the server's version (${header.aux['redis-ver'] ?? '?'}) on the worker`
      : 'Nothing was kept; check the server (its log, memory) and run again',
  );
}

/** redis-check-rdb on a file (a staged restore, a drill's scratch copy). */
export async function checkRdbFile(path: string, signal?: AbortSignal): Promise<RdbCheck & { output: string }> {
  const result = await execa('redis-check-rdb', [path], { reject: false, stdin: 'ignore', all: true, ...(signal ? { cancelSignal: signal } : {}) });
  const output = String(result.all ?? '');
  const check = parseCheckOutput(output);
  if (result.failed && check.ok) return { ...check, ok: false, problems: [stderrTail(output)], output };
  return { ...check, output };
}
