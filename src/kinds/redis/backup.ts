import { Context, log } from '@temporalio/activity';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import { execa } from 'execa';
import { LifeboatError } from '../../errors.js';
import { commandFailure, startExport, succeeded, stderrTail } from '../../pipeline/command-stream.js';
import type { StoredObject } from '../../repository/manifest-envelope.js';
import { keyspaceTotals, RedisClient } from '../../redis/client.js';
import { checkFailure, EofMarkTrimmer, parseCheckOutput, payloadBytesReported, RdbHeaderReader, redisToolsVersion, type RdbCheck } from '../../redis/rdb.js';
import { rdbExport, rdbExportFailure } from '../../redis/server.js';
import { startProgress } from '../../../activities/progress.js';
import { encryptionKeyOf, payloadObjectName, storageFacts, storePayload } from '../payload.js';
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

/**
 * One step: ask the server about itself, then `redis-cli --rdb -` (the server forks and streams a
 * point-in-time RDB over the replication protocol; with diskless sync, its default in Redis 7,
 * nothing is written to the server's disk), and store the stream in every repository in one pass:
 * the RDB header read on the way (format, version, the snapshot's time), redis-check-rdb reading
 * it beside the upload (checkOnBackup), sha256 of the RDB, zstd, encryption. Safe to run again: an
 * attempt stores under names of its own and first removes what earlier ones stored, and nothing
 * counts until the manifest exists.
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
    const checker = target.checkOnBackup ? streamChecker(stopping) : undefined;
    if (checker) taps.push(checker.tap);
    let stored: Awaited<ReturnType<typeof storePayload>>;
    try {
      const storing = storePayload({ target, backupId, attempt: context.info.attempt, objectName, source: cli.stdout!, taps, key, progress, signal: stopping, env });
      // A repository that fails stops redis-cli (it would otherwise wait forever on a full pipe).
      let storeFailed = false;
      storing.catch(() => {
        storeFailed = true;
        cli.kill();
      });
      const [upload, outcome] = await Promise.allSettled([storing, cli.done]);
      // redis-cli's own failure (with its messages) explains a short stream better than the stream does.
      const ended = outcome.status === 'fulfilled' ? outcome.value : undefined;
      // Stopped because a repository failed: that failure is the one to report.
      if (ended && !succeeded(ended) && !(storeFailed && ended.signal !== undefined)) {
        if (signal.aborted) throw signal.reason;
        const typed = rdbExportFailure(target.connection, ended.stderrTail);
        if (typed) throw typed;
        // Anything else (the server restarted, a dropped connection, LOADING) may pass: the step is retried.
        throw new Error(commandFailure('the RDB transfer', spec, ended, 'check the server\'s log (fork, memory)').message);
      }
      if (upload.status === 'rejected') throw upload.reason;
      stored = upload.value;
    } catch (error) {
      stop.abort(error);
      cli.kill();
      await checker?.result;
      throw error;
    }
    progress.setPhase('check');
    const check = checker ? await checker.result : undefined;
    if (!header.header) throw new LifeboatError('IntegrityCheckFailed', `the stream from redis-cli --rdb is not an RDB: ${header.problem ?? 'it ended inside the header'}`, 'Nothing was kept; check the server and run the backup again');
    if (check && !check.ok) throw checkFailure(check, `the RDB streamed from ${target.connection.host}:${target.connection.port}`, header.header, toolsVersion);
    const ctime = Number(header.header.aux.ctime);
    // The RDB's own creation time (the fork, in the server's clock, whole seconds); else when it was asked for.
    const snapshotAt = Number.isInteger(ctime) && ctime > 0 ? new Date(ctime * 1000).toISOString() : requestedAt.toISOString();
    const storage = await storageFacts(target, key);
    log.info('rdb stored', { target: target.name, backupId, bytes: stored.source.sizeBytes, keys: check?.keys ?? facts.keys });
    return {
      snapshotAt,
      source: {
        host: target.connection.host,
        port: target.connection.port,
        serverVersion: header.header.aux['redis-ver'] ?? facts.version,
        rdbVersion: header.header.version,
        sizeBytes: stored.source.sizeBytes,
        sha256: stored.source.sha256,
        keys: check ? check.keys : facts.keys,
        expires: check ? check.expires : facts.expires,
        keyCountFrom: check ? 'redis-check-rdb' : 'info',
        databases: facts.databases,
        transfer: facts.transfer,
        checkedOnBackup: check !== undefined,
      },
      object: stored.object,
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
