import { Context, log } from '@temporalio/activity';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import { execa } from 'execa';
import { LifeboatError } from '../../errors.js';
import { commandFailure, describeOutcome, startExport, succeeded, stderrTail, type CommandOutcome, type CommandSpec, type RunningCommand } from '../../pipeline/command-stream.js';
import { createProducerCompressor, type ZstdProcess } from '../../pipeline/compress.js';
import type { StoredObject } from '../../repository/manifest-envelope.js';
import { keyspaceTotals, RedisClient } from '../../redis/client.js';
import { checkFailure, CompressedRdbHeaderReader, eofMarkBytes, EofMarkTrimmer, parseCheckOutput, payloadBytesReported, RdbHeaderReader, redisToolsVersion, type RdbCheck, type RdbHeader } from '../../redis/rdb.js';
import { rdbExport, rdbExportFailure } from '../../redis/server.js';
import { bytesWrittenBy, startProgress, type ProgressReporter } from '../../../activities/progress.js';
import { encryptionKeyOf, payloadObjectName, storageFacts, storeCompressedPayload, storePayload } from '../payload.js';
import type { ResolvedRedisTarget } from './index.js';
import type { RedisManifest } from './manifest.js';

/** What the manifest needs from the stream-rdb-and-upload step. */
export interface UploadedRdb {
  snapshotAt: string;
  source: RedisManifest['source'];
  object: StoredObject;
  compression: RedisManifest['compression'];
  encryption: RedisManifest['encryption'];
  tools: Record<string, string>;
  repositories: string[];
}

/** What the server says about itself before the transfer. */
interface ServerFacts {
  version: string;
  keys: number;
  expires: number;
  databases: Record<string, number>;
  transfer: 'diskless' | 'disk' | null;
}

async function serverFacts(target: ResolvedRedisTarget, env: NodeJS.ProcessEnv): Promise<ServerFacts> {
  const client = await RedisClient.connect(target.connection, env);
  try {
    const version = (await client.info('server')).get('redis_version') ?? 'unknown';
    const keyspace = keyspaceTotals(await client.info('keyspace'));
    // CONFIG may be renamed or denied to this user: the transfer's mode is then unknown, not an error.
    const diskless = await client.call(['CONFIG', 'GET', 'repl-diskless-sync']).catch(() => undefined);
    const value = Array.isArray(diskless) && diskless.length >= 2 ? String(diskless[1]) : undefined;
    return { version, keys: keyspace.keys, expires: keyspace.expires, databases: keyspace.databases, transfer: value === undefined ? null : value === 'yes' ? 'diskless' : 'disk' };
  } finally {
    client.close();
  }
}

/**
 * redis-check-rdb reading the stream as it passes: a pass-through that also writes every chunk to
 * the checker (at the pace of the slower of the two). The checker reads a real pipe
 * (`cat | redis-check-rdb /dev/stdin`: it opens its file by name, and the worker's pipes to a child
 * are sockets, which /dev/stdin cannot open).
 */
function streamChecker(signal: AbortSignal): { tap: Transform; result: Promise<RdbCheck & { failedToRun?: string }> } {
  const child = execa('sh', ['-c', 'cat | redis-check-rdb /dev/stdin'], { reject: false, all: true, stdin: 'pipe', cancelSignal: signal, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false });
  const stdin = child.stdin;
  stdin.on('error', () => undefined); // the checker stopping early is reported by its result
  const result = child.then((outcome) => {
    const output = String(outcome.all ?? '');
    const check = parseCheckOutput(output);
    if (outcome.failed && check.ok) return { ...check, ok: false, problems: [stderrTail(output) || outcome.shortMessage || 'redis-check-rdb failed'] };
    if (outcome.exitCode === undefined) return { ...check, ok: false, failedToRun: outcome.shortMessage };
    return check;
  });
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (stdin.destroyed || stdin.writableEnded) {
        callback(null, chunk); // the checker has stopped; its result says why
        return;
      }
      if (stdin.write(chunk)) callback(null, chunk);
      else {
        const go = () => {
          stdin.off('close', go);
          stdin.off('drain', go);
          callback(null, chunk);
        };
        stdin.once('drain', go);
        stdin.once('close', go);
      }
    },
    flush(callback) {
      stdin.end();
      callback();
    },
  });
  return { tap, result };
}

/** What a transfer stored, whichever way it went. */
interface Transfer {
  header: RdbHeader | undefined;
  headerProblem: string | undefined;
  object: StoredObject;
  /** The RDB's size (redis-cli's own count). */
  rdbBytes: number;
  /** sha256 of the RDB, when the worker read it. */
  sha256: string | undefined;
  /** Bytes stored after the RDB (the EOF mark), when zstd read redis-cli's output directly. */
  eofMarkBytes: number;
  check: RdbCheck | undefined;
}

interface TransferContext {
  target: ResolvedRedisTarget;
  backupId: string;
  attempt: number;
  objectName: string;
  key: Buffer | undefined;
  progress: ProgressReporter;
  spec: CommandSpec;
  cliEnv: Record<string, string>;
  /** The step's cancellation. */
  signal: AbortSignal;
  /** The step's cancellation, or the end of the transfer: stops redis-cli and the checker. */
  stopping: AbortSignal;
  stop: AbortController;
  env: NodeJS.ProcessEnv;
}

/**
 * Waits for the store and for redis-cli, and reports the right failure: redis-cli's own (with its
 * messages, typed when it is the credentials or the connection) explains a short stream better
 * than the stream does, unless redis-cli was stopped because a repository failed.
 */
async function storedAlongside<T>(storing: Promise<T>, cli: RunningCommand, context: TransferContext): Promise<T> {
  const { target, spec, signal } = context;
  let cliEnded = false;
  void cli.done.then(() => {
    cliEnded = true;
  });
  let storeFailed = false;
  // A repository that fails stops redis-cli (it would otherwise wait forever on a full pipe). A
  // store that fails once redis-cli has ended (the end of stream checks) is redis-cli's failure.
  storing.catch(() => {
    if (cliEnded) return;
    storeFailed = true;
    cli.kill();
  });
  const [upload, outcome] = await Promise.allSettled([storing, cli.done]);
  const ended = outcome.status === 'fulfilled' ? outcome.value : undefined;
  if (ended && !succeeded(ended) && !(storeFailed && ended.signal !== undefined)) {
    if (signal.aborted) throw signal.reason;
    const typed = rdbExportFailure(target.connection, ended.stderrTail);
    if (typed) throw typed;
    // Anything else (the server restarted, a dropped connection, LOADING) may pass: the step is retried.
    throw new Error(commandFailure('the RDB transfer', spec, ended, 'check the server\'s log (fork, memory)').message);
  }
  if (upload.status === 'rejected') throw upload.reason;
  return upload.value;
}

/**
 * The RDB through the worker, for checkOnBackup (redis-check-rdb reads the stream beside the upload):
 * redis-cli's stdout read here, the EOF mark trimmed, the header read, sha256 of the RDB, zstd.
 */
async function throughWorker(context: TransferContext): Promise<Transfer> {
  const { target, spec, cliEnv, stopping, progress } = context;
  const cli = await startExport(spec, cliEnv, 'redis-cli --rdb', { signal: stopping });
  const trimmer = new EofMarkTrimmer(() => cli.done.then((outcome) => payloadBytesReported(outcome.stderrTail)));
  const header = new RdbHeaderReader();
  const taps: Duplex[] = [
    trimmer,
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        header.write(chunk);
        callback(null, chunk);
      },
    }),
  ];
  const checker = streamChecker(stopping);
  taps.push(checker.tap);
  try {
    const stored = await storedAlongside(
      storePayload({ target, backupId: context.backupId, attempt: context.attempt, objectName: context.objectName, source: cli.stdout!, taps, key: context.key, progress, signal: stopping, env: context.env }),
      cli,
      context,
    );
    progress.setPhase('check');
    const check = await checker.result;
    return { header: header.header, headerProblem: header.problem, object: stored.object, rdbBytes: stored.source.sizeBytes, sha256: stored.source.sha256, eofMarkBytes: 0, check };
  } catch (error) {
    context.stop.abort(error);
    cli.kill();
    await checker.result;
    throw error;
  }
}

/**
 * The sizes redis-cli and zstd report, checked before the object may be committed: redis-cli must
 * have finished and said how many bytes the RDB has, and zstd must have read exactly those, or
 * those and the 40-byte EOF mark of a diskless transfer.
 */
function transferredBytes(outcome: CommandOutcome, spec: CommandSpec, compressor: ZstdProcess): { rdbBytes: number; eofMarkBytes: number } {
  if (!succeeded(outcome)) throw new Error(`redis-cli --rdb ${describeOutcome(outcome, spec.timeoutSeconds)}`);
  const rdbBytes = payloadBytesReported(outcome.stderrTail);
  if (rdbBytes === undefined) throw new Error('redis-cli did not say how many bytes the RDB has ("Transfer finished" / "writing N bytes")');
  const read = compressor.inputBytes;
  if (read === undefined) throw new Error('zstd did not say how many bytes it read');
  if (read !== rdbBytes && read !== rdbBytes + eofMarkBytes) throw new Error(`redis-cli reports ${rdbBytes} bytes of RDB, but zstd read ${read}`);
  return { rdbBytes, eofMarkBytes: read - rdbBytes };
}

/**
 * The RDB straight from redis-cli into zstd (the default): redis-cli's stdout is zstd's stdin, so
 * the raw RDB never passes through the worker, which reads only zstd's output (about 60% of it):
 * the header read from its first block, encryption, sha256 of what is stored, every repository.
 * The EOF mark redis-cli writes after the RDB stays in the payload (the manifest's eofMarkBytes)
 * and a restore drops it. The object is committed only after both programs ended well and their
 * counts agree.
 */
async function straightIntoZstd(context: TransferContext): Promise<Transfer> {
  const { target, spec, cliEnv, stopping, progress } = context;
  const compressor = createProducerCompressor(target.compression);
  let cli: RunningCommand;
  try {
    cli = await startExport(spec, cliEnv, 'redis-cli --rdb', { signal: stopping, stdoutTo: compressor.producerInput! });
  } catch (error) {
    compressor.destroy();
    throw error;
  } finally {
    // zstd's input ends when redis-cli, its only writer now, exits.
    compressor.releaseInput();
  }
  let storedBytes = 0;
  // The RDB bytes redis-cli has written (it writes little else); the stored bytes where /proc does not say.
  progress.sampleWith(() => bytesWrittenBy(cli.pid) ?? storedBytes);
  const header = new CompressedRdbHeaderReader();
  let sizes: { rdbBytes: number; eofMarkBytes: number } | undefined;
  const gate = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      storedBytes += chunk.length;
      callback(null, chunk);
    },
    // zstd's output ends only after zstd exited, so its count is known here, before the commit.
    flush(callback) {
      cli.done.then((outcome) => {
        sizes = transferredBytes(outcome, spec, compressor);
      }).then(() => callback(), callback);
    },
  });
  try {
    const object = await storedAlongside(
      storeCompressedPayload({ target, backupId: context.backupId, attempt: context.attempt, objectName: context.objectName, compressed: compressor, taps: [header, gate], key: context.key, progress, signal: stopping, env: context.env }),
      cli,
      context,
    );
    return { header: header.header, headerProblem: header.problem, object, rdbBytes: sizes!.rdbBytes, sha256: undefined, eofMarkBytes: sizes!.eofMarkBytes, check: undefined };
  } catch (error) {
    context.stop.abort(error);
    cli.kill();
    compressor.destroy();
    header.destroy();
    throw error;
  }
}

/**
 * One step: ask the server about itself, then `redis-cli --rdb -` (the server forks and streams a
 * point-in-time RDB over the replication protocol; with diskless sync, its default in Redis 7,
 * nothing is written to the server's disk), and store the stream in every repository in one pass:
 * by default redis-cli writes straight into zstd and the worker reads only the compressed stream
 * (the RDB header read from its first block, encryption, sha256 of what is stored); with
 * checkOnBackup the worker reads the RDB itself (redis-check-rdb beside the upload, sha256 of the
 * RDB, then zstd). Safe to run again: an attempt stores under names of its own and first removes
 * what earlier ones stored, and nothing counts until the manifest exists.
 */
export async function streamRdbAndUpload(input: { target: ResolvedRedisTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<UploadedRdb> {
  const { target, backupId } = input;
  const context = Context.current();
  const signal = context.cancellationSignal;
  const [facts, toolsVersion] = await Promise.all([serverFacts(target, env), redisToolsVersion()]);
  const key = await encryptionKeyOf(target);
  const objectName = payloadObjectName('dump.rdb', key !== undefined);
  const { spec, env: cliEnv } = rdbExport(target.connection, env);
  const progress = startProgress('transfer', 0);
  const stop = new AbortController();
  const stopping = AbortSignal.any([signal, stop.signal]);
  try {
    const requestedAt = new Date();
    const transferContext: TransferContext = { target, backupId, attempt: context.info.attempt, objectName, key, progress, spec, cliEnv, signal, stopping, stop, env };
    const transfer = target.checkOnBackup ? await throughWorker(transferContext) : await straightIntoZstd(transferContext);
    const { header, check } = transfer;
    if (!header) throw new LifeboatError('IntegrityCheckFailed', `the stream from redis-cli --rdb is not an RDB: ${transfer.headerProblem ?? 'it ended inside the header'}`, 'Nothing was kept; check the server and run the backup again');
    if (check && !check.ok) throw checkFailure(check, `the RDB streamed from ${target.connection.host}:${target.connection.port}`, header, toolsVersion);
    const ctime = Number(header.aux.ctime);
    // The RDB's own creation time (the fork, in the server's clock, whole seconds); else when it was asked for.
    const snapshotAt = Number.isInteger(ctime) && ctime > 0 ? new Date(ctime * 1000).toISOString() : requestedAt.toISOString();
    const storage = await storageFacts(target, key);
    log.info('rdb stored', { target: target.name, backupId, bytes: transfer.rdbBytes, keys: check?.keys ?? facts.keys });
    return {
      snapshotAt,
      source: {
        host: target.connection.host,
        port: target.connection.port,
        serverVersion: header.aux['redis-ver'] ?? facts.version,
        rdbVersion: header.version,
        sizeBytes: transfer.rdbBytes,
        ...(transfer.sha256 === undefined ? {} : { sha256: transfer.sha256 }),
        ...(transfer.eofMarkBytes === 0 ? {} : { eofMarkBytes: transfer.eofMarkBytes }),
        keys: check ? check.keys : facts.keys,
        expires: check ? check.expires : facts.expires,
        keyCountFrom: check ? 'redis-check-rdb' : 'info',
        databases: facts.databases,
        transfer: facts.transfer,
        checkedOnBackup: check !== undefined,
      },
      object: transfer.object,
      compression: storage.compression,
      encryption: storage.encryption,
      tools: { 'redis-server': facts.version, 'redis-cli': toolsVersion, node: process.version, zstd: storage.zstd },
      repositories: target.repositories.map((r) => r.name),
    };
  } finally {
    stop.abort(new Error('the step ended'));
    progress.stop();
  }
}
