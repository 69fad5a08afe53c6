import { closeSync, openSync, unlinkSync } from 'node:fs';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { execa, type Result, type ResultPromise } from 'execa';
import { LifeboatError } from '../errors.js';

/*
 * zstd runs as a `zstd` CLI subprocess fed through stdin/stdout rather than as an in-process addon.
 * The whole backup chain stays within ~1.3x of a raw `zstd -T2 -3` pass (the budget is 1.5x), while
 * zstd's buffers and threads stay out of the worker's heap and event loop, nothing native has to be
 * built at install time, and a zstd crash fails one stream instead of the worker. An addon was ~20%
 * faster; see bench/compression-choice.md for the measurements and the trade-off.
 */

/** The executable, resolved through PATH (Debian: `apt-get install zstd`). */
const ZSTD = 'zstd';
/** Enough of zstd's stderr to quote its complaint; it only writes there on failure because of -q. */
const STDERR_TAIL_BYTES = 4096;
const MAX_LEVEL = 19;
const MAX_THREADS = 256;

export interface CompressorOptions {
  /** zstd level, 1..19; 3 is zstd's default and Lifeboat's. */
  level: number;
  /** zstd worker threads (-T); 0 lets zstd use one per core. */
  threads: number;
}

export interface CompressionInfo {
  algorithm: 'zstd';
  implementation: string;
  version: string;
}

function compressorArgs(options: CompressorOptions): string[] {
  const { level, threads } = options;
  if (!Number.isInteger(level) || level < 1 || level > MAX_LEVEL) {
    throw new RangeError(`zstd level must be an integer from 1 to ${MAX_LEVEL}, got ${String(level)}`);
  }
  if (!Number.isInteger(threads) || threads < 0 || threads > MAX_THREADS) {
    throw new RangeError(`zstd threads must be an integer from 0 to ${MAX_THREADS}, got ${String(threads)}`);
  }
  return [`-${level}`, `-T${threads}`, '--check'];
}

/** A zstd compressor: write raw bytes in, read one zstd frame (with content checksum) out. */
export function createCompressor(options: CompressorOptions): Duplex {
  return new ZstdProcess('compress', compressorArgs(options));
}

/**
 * A zstd compressor that reads an open file itself (the file is its stdin, read from offset 0), so
 * the raw bytes never pass through this process: no copy through a pipe, no garbage from a JS
 * stream. `--stream-size` makes zstd fail unless it reads exactly `sizeBytes` bytes (and records
 * the size in the frame header). Only the readable side is used; `inputOffset()` tells how far
 * zstd has read, for progress.
 */
export function createFileCompressor(file: { fd: number; sizeBytes: number }, options: CompressorOptions): ZstdProcess {
  return new ZstdProcess('compress', [...compressorArgs(options), `--stream-size=${file.sizeBytes}`], { stdinFd: file.fd });
}

/**
 * A zstd compressor fed by another process: zstd's stdin is a socket whose other end
 * (`producerInput`) is given to the producer as its stdout (the producer's stdio option), so the raw
 * bytes go from the producer to zstd in the kernel and never through this process. After spawning
 * the producer, call `releaseInput()`: zstd sees the end of its input once the producer has exited.
 * zstd runs with -vv, so that `inputBytes` (read after it exits) tells exactly how much it read.
 */
export function createProducerCompressor(options: CompressorOptions): ZstdProcess {
  return new ZstdProcess('compress', compressorArgs(options), { producerFed: true });
}

/**
 * A zstd decompressor. Input that is not valid zstd fails the stream with BackupCorrupt.
 * Note zstd verifies the frame checksum only at the end of the frame, so bytes may be emitted
 * before the error: write the output somewhere provisional until the stream has finished.
 */
export function createDecompressor(): Duplex {
  return new ZstdProcess('decompress', ['-d']);
}

/**
 * A zstd decompressor that writes the decoded bytes to `path` itself (write compressed bytes in;
 * nothing comes out), so a large decoded payload never passes through this process. The stream
 * finishes only after zstd has exited successfully, i.e. after it checked the frame checksum.
 * zstd replaces nothing: an existing `path` is an error (EEXIST, thrown at once). The file is
 * created private (0600) and removed again if zstd fails.
 *
 * With `inputFd`, zstd reads that open file itself (as its stdin, from the descriptor's current
 * offset) and nothing is written to the stream, so neither side of the data passes through this
 * process: `finished(stream, { readable: false })` resolves on zstd's clean exit. `pid` with
 * readOffsetOf gives progress.
 */
export function createDecompressorToFile(path: string, options: { inputFd?: number } = {}): ZstdProcess {
  return new ZstdProcess('decompress', ['-d'], { outputFile: path, ...(options.inputFd === undefined ? {} : { stdinFd: options.inputFd }) });
}

let cachedInfo: Promise<CompressionInfo> | undefined;

/** What produced a backup's compression, for its manifest. Runs `zstd -qV` once per process. */
export function compressionInfo(): Promise<CompressionInfo> {
  cachedInfo ??= probeZstdVersion().catch((error: unknown) => {
    cachedInfo = undefined; // a transient failure must not be remembered forever
    throw error;
  });
  return cachedInfo;
}

async function probeZstdVersion(): Promise<CompressionInfo> {
  const result = await execa(ZSTD, ['-qV'], { reject: false, stdin: 'ignore' });
  const version = /^v?(\d+\.\d+\.\d+)/.exec(String(result.stdout).trim())?.[1];
  if (result.failed || version === undefined) {
    throw new Error(
      `Could not determine the zstd version (\`${ZSTD} -qV\` ${describeFailure(result, String(result.stderr))}, output ${JSON.stringify(String(result.stdout).slice(0, 200))}). ${INSTALL_HINT}`,
    );
  }
  return { algorithm: 'zstd', implementation: 'zstd-cli', version };
}

const INSTALL_HINT = 'Lifeboat needs the zstd command on PATH: install it with `apt-get install zstd`';

type Mode = 'compress' | 'decompress';

const STREAM_OPTIONS = {
  stdin: 'pipe',
  stdout: 'pipe',
  stderr: 'pipe',
  // We consume stdout ourselves (with backpressure) and keep only a bounded tail of stderr.
  buffer: false,
  reject: false,
  encoding: 'buffer',
} as const;
type ZstdResult = Result<typeof STREAM_OPTIONS>;

interface ZstdProcessOptions {
  /** zstd reads this open file descriptor instead of what is written to the stream. */
  stdinFd?: number;
  /**
   * zstd writes this new file instead of the stream's readable side. It is created here, private
   * (0600) and only if it does not exist yet, and removed again if zstd fails, as `zstd -o` would.
   */
  outputFile?: string;
  /** Another process writes zstd's stdin (see createProducerCompressor); zstd reports its sizes (-vv). */
  producerFed?: boolean;
}

/** zstd -vv's summary line: "(<input> B => <output> B, ...)". */
const sizesLine = /\(\s*(\d+) B =>\s*(\d+) B,/;
/** zstd -vv's informational lines, left out of an error message. */
const verboseLine = /^(\*\*\* |--|Using std|Decompression will require|\/\*stdin\*\\)/;

/**
 * One zstd process exposed as a Duplex: writes go to its stdin, its stdout is the readable side.
 * The readable side ends only after the process has exited with status 0, so a failure at the very
 * end (a bad checksum, a truncated frame) is an error, never a silently short output; when zstd
 * writes a file instead, the writable side finishes only after that exit. Destroying the stream
 * kills the process and waits for it, so no zombie or orphan is left behind.
 */
export class ZstdProcess extends Duplex {
  private readonly child: ResultPromise<typeof STREAM_OPTIONS>;
  private readonly stdin: Writable | null;
  private readonly stdout: Readable | null;
  private readonly exit: Promise<ZstdResult>;
  private stderrTail = '';
  private stdoutEnded = false;
  private exitedCleanly = false;
  private exited = false;
  private producerSide: Writable | null = null;

  constructor(
    private readonly mode: Mode,
    modeArgs: string[],
    private readonly options: ZstdProcessOptions = {},
  ) {
    super();
    // zstd -o would create the file with the umask's permissions (usually world-readable), so the
    // file is created here and given to zstd as its stdout.
    const output = options.outputFile === undefined ? undefined : { path: options.outputFile, fd: openSync(options.outputFile, 'wx', 0o600) };
    // execa accepts any file descriptor number for stdin, but its types list only a few literals;
    // the stream fields that do not exist in these modes are handled as null below.
    const spawnOptions = {
      ...STREAM_OPTIONS,
      ...(options.stdinFd === undefined ? {} : { stdin: options.stdinFd }),
      ...(output === undefined ? {} : { stdout: output.fd }),
    } as unknown as typeof STREAM_OPTIONS;
    this.child = execa(ZSTD, [options.producerFed ? '-vv' : '-q', '-c', ...modeArgs], spawnOptions);
    this.stdin = options.stdinFd === undefined && !options.producerFed ? this.child.stdin : null;
    if (options.producerFed) this.producerSide = this.child.stdin;
    this.stdout = output === undefined ? this.child.stdout : null;
    this.exit = this.child.then((result) => {
      // Before anyone learns of the exit: a caller that retries at once finds the path free.
      if (output) releaseOutputFile(output.fd, output.path, result.failed);
      return result;
    });

    if (this.stdout) {
      const stdout = this.stdout;
      stdout.on('data', (chunk: Buffer) => {
        if (!this.push(chunk)) stdout.pause();
      });
      stdout.on('end', () => {
        this.stdoutEnded = true;
        this.endIfDone();
      });
      stdout.on('error', (error: Error) => this.destroy(error));
    } else {
      this.stdoutEnded = true;
      this.push(null);
    }
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    // EPIPE here means zstd stopped reading, i.e. it failed; its exit status explains why, so the
    // write error itself is not reported.
    this.stdin?.on('error', () => {});
    this.producerSide?.on('error', () => {});
    if (!this.stdin) this.end();

    void this.exit.then((result) => this.onExit(result));
  }

  /** The process id of zstd (for /proc-based progress); undefined if it could not start. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The socket to give a producer as its stdout (createProducerCompressor); null once released. */
  get producerInput(): Writable | null {
    return this.producerSide;
  }

  /**
   * Closes this process's descriptor of zstd's input (without shutting the socket down, which would
   * end the input for the producer too): zstd reads until the producer closes its copy.
   */
  releaseInput(): void {
    this.producerSide?.destroy();
    this.producerSide = null;
  }

  /** How many bytes zstd read (from its -vv summary); undefined before it has exited cleanly, or without producerFed. */
  get inputBytes(): number | undefined {
    if (!this.exitedCleanly || !this.options.producerFed) return undefined;
    const match = sizesLine.exec(this.stderrTail);
    return match ? Number(match[1]) : undefined;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.stdin) {
      callback(new Error('this zstd process reads a file, not the stream'));
      return;
    }
    if (this.stdin.write(chunk)) callback();
    else this.stdin.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    // When zstd writes a file, the stream is finished only once zstd has exited cleanly (checksum
    // verified); a failed exit destroys the stream instead (see onExit).
    const finish = () => {
      if (this.options.outputFile === undefined) callback();
      else void this.exit.then((result) => (result.failed ? undefined : callback()));
    };
    if (!this.stdin) {
      finish();
      return;
    }
    // Errors on stdin are reported through the exit status (see the constructor).
    this.stdin.end(finish);
  }

  override _read(): void {
    this.stdout?.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.exited) {
      callback(error);
      return;
    }
    // Closing both pipes lets execa settle even if stdout was paused for backpressure; execa
    // escalates the SIGTERM to SIGKILL after 5 s. Waiting for the exit reaps the process.
    this.stdin?.destroy();
    this.stdout?.destroy();
    this.releaseInput();
    this.child.kill();
    void this.exit.then(() => callback(error));
  }

  private onExit(result: ZstdResult): void {
    this.exited = true;
    if (this.destroyed) return;
    // execa calls a run whose stdin was closed before it exited "failed" (ERR_STREAM_PREMATURE_CLOSE):
    // with a producer feeding zstd, that close is releaseInput(), so zstd's own status decides.
    const failed = this.options.producerFed ? result.exitCode !== 0 || result.signal !== undefined : result.failed;
    if (failed) {
      this.destroy(this.failure(result));
      return;
    }
    this.exitedCleanly = true;
    this.endIfDone();
  }

  private endIfDone(): void {
    if (this.stdoutEnded && this.exitedCleanly && !this.destroyed) this.push(null);
  }

  private failure(result: ZstdResult): Error {
    const stderr = this.stderrTail
      .split('\n')
      .filter((line) => !verboseLine.test(line.trim()))
      .join('\n')
      .trim();
    const spawnFailed = result.exitCode === undefined && result.signal === undefined;
    if (spawnFailed) {
      return new Error(`Could not start zstd to ${this.mode} (${result.originalMessage ?? result.shortMessage}). ${INSTALL_HINT}`, {
        cause: result,
      });
    }
    if (this.mode === 'decompress' && result.exitCode !== undefined) {
      return new LifeboatError(
        'BackupCorrupt',
        `Backup data is not valid zstd: zstd ${describeFailure(result, stderr)}`,
        'Do not use this backup: restore from another one, and check the repository storage for damage',
        { cause: result },
      );
    }
    return new Error(
      `zstd ${this.mode === 'compress' ? 'compression' : 'decompression'} failed: zstd ${describeFailure(result, stderr)}` +
        (result.signal === 'SIGKILL' ? '. A SIGKILL usually means the kernel ran out of memory; check `dmesg`' : ''),
      { cause: result },
    );
  }
}

function describeFailure(result: Pick<Result, 'exitCode' | 'signal' | 'shortMessage' | 'originalMessage'>, stderr: string): string {
  const how =
    result.signal !== undefined
      ? `was killed by ${result.signal}`
      : result.exitCode !== undefined
        ? `exited with status ${result.exitCode}`
        : `could not run (${result.originalMessage ?? result.shortMessage})`;
  return stderr === '' ? how : `${how}: ${stderr.replace(/\s+/g, ' ')}`;
}

/** Closes this process's descriptor of zstd's output file, and removes the file when zstd failed. */
function releaseOutputFile(fd: number, path: string, failed: boolean): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
  if (failed) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}
