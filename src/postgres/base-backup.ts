import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { z } from 'zod';
import { LifeboatError } from '../errors.js';
import { createCompressor } from '../pipeline/compress.js';
import { createEncryptor, keyId } from '../pipeline/encrypt.js';
import { growingFileChunks, openOnceCreated, untilWriterExits, watchWriter } from '../pipeline/growing-file.js';
import { prepareSpool } from '../pipeline/spool.js';
import { manifestFormat, postgresBaseManifestSchema, type StepRecord, type StoredObject } from '../repository/manifest.js';
import { attemptObjectName, type Repository } from '../repository/repository.js';
import { Landing, storeInEvery } from '../repository/store.js';
import { connectTo, databaseConninfo, libpqEnvironment, toolConnectionFailure, type PostgresConnection } from './dump-connection.js';
import { pgBinary } from './tools.js';

/**
 * PostgreSQL physical base backups into Lifeboat repositories.
 *
 * `pg_basebackup -Ft -X fetch --compress=server-zstd` has the server compress the cluster (zstd in
 * its backend, `workers` threads) into one tar: the data directory and the WAL needed to make it
 * consistent (pg_wal/). pg_basebackup writes that compressed tar into a private spool directory,
 * and this process streams it from there while it grows, punching holes behind what it has handed
 * on, so the spool holds about two parts however large the backup; at the end pg_basebackup writes
 * the backup_manifest (the size and CRC32C of every file, and the WAL range) that pg_verifybackup
 * checks after a restore:
 *
 *   server (tar, zstd) -> pg_basebackup -> spool/base.tar.zst -> cut into parts of partSizeBytes
 *     -> per part: (AES-256-GCM) -> sha256 -> every repository
 *   spool/backup_manifest -> zstd -> (AES-256-GCM) -> sha256 -> every repository
 *
 * Layout, per repository:
 *
 *   <target>/backups/<backupId>/attempt-<n>/base.tar.000.zst[.enc], base.tar.001.zst[.enc], ...
 *   <target>/backups/<backupId>/attempt-<n>/backup_manifest.zst[.enc]
 *   <target>/backups/<backupId>/manifest.json   written last (kind "postgres-base")
 *
 * (n: the attempt of the step that stored them, so that no attempt overwrites another's objects;
 * older backups have the parts directly in the backup's directory. The manifest names them.)
 *
 * The parts are consecutive pieces of one zstd stream, each with its own sha256: a restore checks
 * every part in full before any of its bytes reaches the decoder (no unverified byte is ever
 * written, without a local copy of the whole backup), fetching the next parts while the current
 * one is decoded, and a damaged part is named. By hand: `cat attempt-<n>/base.tar.*.zst | zstd -d | tar -x`,
 * then `zstd -d attempt-<n>/backup_manifest.zst` into the data directory. (Older backups compressed by
 * pg_basebackup into one stream on stdout hold the backup_manifest inside the tar; some have one
 * zstd frame per part. They restore the same way.)
 *
 * Why the server compresses: then only compressed bytes cross the connection, instead of the
 * whole cluster being copied through a socket into pg_basebackup. Measured on this project's
 * 2-core machine, 2 GiB pgbench cluster, level 1, two workers: bare pg_basebackup 1.8-2.1 s with
 * server-zstd, 2.4-2.7 s with client-zstd; takeBaseBackup 2.2 s against 2.7-2.9 s. And why the
 * spool: the server cannot append the backup_manifest to a tar it compressed, so pg_basebackup
 * refuses to write one to stdout. `compressAt: 'client'` spares the database host's CPU instead.
 * Earlier measurements: pg_basebackup piped into a separate `zstd -T2 -3` took 4.0-4.4 s,
 * --compress=client-zstd:level=3,workers=2 3.0-3.7 s, level=1 1.9 s for a stream 2% larger:
 * hence level 1 by default for base backups (base.compressionLevel).
 *
 * Requirements on the server: a role with REPLICATION (or a superuser) and a pg_hba.conf line for
 * `replication` connections; no tablespaces besides pg_default and pg_global (refused up front,
 * InvalidInput). -X fetch takes the WAL written during the backup at its end, so the server must
 * keep it that long (wal_keep_size, or archiving: segments wait in pg_wal until archived).
 */

/**
 * The manifest of a base backup (manifest.json, kind "postgres-base"), defined once with the other
 * manifest kinds in src/repository/manifest.ts.
 */
export const baseBackupManifestSchema = postgresBaseManifestSchema;

export type BaseBackupManifest = z.infer<typeof baseBackupManifestSchema>;

/** What the backup step produces; the manifest adds who ran it (workflow) and its timeline. */
export type BaseBackupResult = Omit<BaseBackupManifest, 'workflow' | 'timeline'>;

export const baseBackupPayloadPrefix = 'base.tar.';

/** The name pg_basebackup gives the tar of the data directory (-Ft, zstd). */
const baseTarName = 'base.tar.zst';

/** The stored name of the backup_manifest pg_basebackup wrote beside the tar. */
export function backupManifestObjectName(encrypted: boolean): string {
  return `backup_manifest.zst${encrypted ? '.enc' : ''}`;
}

export function partObjectName(index: number, encrypted: boolean): string {
  return `${baseBackupPayloadPrefix}${String(index).padStart(3, '0')}.zst${encrypted ? '.enc' : ''}`;
}

/** The stored objects of the tar's parts, in stream order (the manifest's objects also hold the backup_manifest). */
export function partObjects(manifest: BaseBackupManifest): StoredObject[] {
  return storedObjectsNamed(manifest, manifest.base.parts.map((part) => part.object));
}

/** The manifest's records of the named stored objects, in that order; BackupCorrupt when one is missing. */
export function storedObjectsNamed(manifest: BaseBackupManifest, names: string[]): StoredObject[] {
  const byName = new Map(manifest.objects.map((object) => [object.name, object]));
  return names.map((name) => {
    const object = byName.get(name);
    if (!object) throw new LifeboatError('BackupCorrupt', `the manifest of base backup ${manifest.id} lists ${name} but no stored object of that name`, 'Restore another backup');
    return object;
  });
}

export interface BaseBackupProgress {
  phase: 'backup';
  /** Bytes of the cluster pg_basebackup has sent (its --progress, before compression). */
  bytesDone: number;
  /** Compressed bytes written into the repositories so far. */
  storedBytes: number;
  /** pg_basebackup's estimate of the whole; before it reports one, the size of every database plus a WAL segment (0 when the role may not see sizes). */
  bytesTotal: number;
}

export interface BaseBackupOptions {
  /** The server, and the role pg_basebackup connects as (needs REPLICATION). */
  connection: PostgresConnection;
  /** Environment holding connection.passwordEnv; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Lifeboat target name: the key prefix in the repositories. */
  target: string;
  backupId: string;
  /** Every repository gets every part (one pass over the stream). */
  repositories: Repository[];
  /**
   * How many repositories must take the backup (default all): one that fails (unreachable,
   * mid-stream) is dropped while this many remain, and the result says where the backup is missing.
   */
  minCopies?: number;
  compression: { level: number; threads: number };
  /** 32-byte key (loadKeyFile); parts are then AES-256-GCM encrypted after compression. */
  encryptionKey?: Buffer;
  /** Stored (compressed) bytes per part; default 64 MiB. A restore holds up to `lookahead` parts in memory. */
  partSizeBytes?: number;
  /** Where zstd runs: 'server' (default; in the server's backend, so only compressed bytes cross the connection) or 'client' (in pg_basebackup). */
  compressAt?: 'server' | 'client';
  /** Where pg_basebackup writes the compressed tar while it is uploaded (holes punched behind the upload); default the system temp dir. */
  spoolDir?: string;
  /**
   * The attempt of the step: its objects are stored under names of their own (attemptObjectName),
   * in a fresh spool directory; what earlier attempts left is removed. Default 1.
   */
  attempt?: number;
  /** 'fast' (default): an immediate checkpoint; 'spread' waits for a paced one (minutes). */
  checkpoint?: 'fast' | 'spread';
  /** Default "lifeboat <backupId>". */
  label?: string;
  onProgress?: (progress: BaseBackupProgress) => void;
  /** Aborting kills pg_basebackup and the uploads; nothing counts without a manifest. */
  signal?: AbortSignal;
}

const defaultPartSizeBytes = 64 << 20;
const maxPartsInFlight = 2;

/**
 * Takes a base backup with pg_basebackup and streams it into every repository, returning what the
 * manifest records (the manifest itself is written by writeBaseBackupManifest, last).
 *
 * Idempotent: when the backup already has a manifest, that backup is returned as it is; otherwise
 * whatever an interrupted attempt left under the backup's directory is removed and a new base
 * backup is taken under the same id.
 */
export async function takeBaseBackup(options: BaseBackupOptions): Promise<BaseBackupResult> {
  const { connection, repositories, target, backupId, signal } = options;
  const env = options.env ?? process.env;
  const partSizeBytes = options.partSizeBytes ?? defaultPartSizeBytes;
  if (!Number.isInteger(partSizeBytes) || partSizeBytes < 1 << 20) {
    throw new LifeboatError('InvalidInput', `partSizeBytes must be an integer of at least 1 MiB, got ${partSizeBytes}`);
  }
  if (repositories.length === 0) throw new LifeboatError('InvalidInput', `target "${target}" has no repositories to back up to`);

  const landing = new Landing(repositories, options.minCopies);
  let existing: BaseBackupManifest | undefined;
  await landing.each(
    (repository) => `looking for base backup ${backupId} in repository "${repository.name}" (${repository.location})`,
    async (repository) => {
      existing ??= await readBaseBackupManifestIfAny(repository, target, backupId);
    },
  );
  if (existing) return withoutRunFields(existing);
  const attempt = options.attempt ?? 1;
  await landing.each(
    (repository) => `clearing what an earlier attempt of base backup ${backupId} left in repository "${repository.name}" (${repository.location})`,
    (repository) => repository.discardUnfinishedBackup(target, backupId, { beforeAttempt: attempt }),
  );
  const storing: StoringOptions = { ...options, landing };

  const client = await connectTo(connection, env);
  try {
    const server = await describeServer(client);
    const encrypted = options.encryptionKey !== undefined;
    const label = options.label ?? `lifeboat ${backupId}`;
    const report = new BasebackupReport();
    let storedBytes = 0;
    let backupManifestObject: StoredObject | undefined;
    const progress = (): void =>
      options.onProgress?.({ phase: 'backup', bytesDone: report.doneBytes, storedBytes, bytesTotal: report.totalBytes || server.sizeEstimateBytes });
    progress();
    const sink = new PartedUpload({
      partSizeBytes,
      onBytes: (bytes) => {
        storedBytes += bytes;
        progress();
      },
      openPart: (index) => openPartUpload(storing, attemptObjectName(attempt, partObjectName(index, encrypted))),
    });

    const { level, threads } = options.compression;
    const compressAt = options.compressAt ?? 'server';
    const spool = await prepareSpool(options.spoolDir ?? tmpdir(), `lifeboat-base-${target}-${backupId}`, attempt);
    try {
      // A directory pg_basebackup creates: it refuses one that exists and is not empty.
      const output = join(spool, 'tar');
      const args = [
        `--pgdata=${output}`,
        '--format=tar',
        '--wal-method=fetch',
        `--checkpoint=${options.checkpoint ?? 'fast'}`,
        `--label=${label}`,
        '--manifest-checksums=CRC32C',
        `--compress=${compressAt}-zstd:level=${level}${threads > 1 ? `,workers=${threads}` : ''}`,
        // The files only pass through: nothing to make durable (the repositories sync what they store).
        '--no-sync',
        '--verbose',
        // Also what ends pg_basebackup when this process dies: its next progress line meets a closed pipe (SIGPIPE).
        '--progress',
        `--dbname=${databaseConninfo(connection.database)}`,
      ];
      const child = execa(pgBinary('pg_basebackup'), args, {
        env: { ...libpqEnvironment(connection, env, 'lifeboat base backup'), LC_MESSAGES: 'C' },
        extendEnv: false,
        stdin: 'ignore',
        stdout: 'ignore',
        stderr: 'pipe',
        buffer: false,
        encoding: 'buffer',
        reject: false,
        ...(signal ? { cancelSignal: signal } : {}),
      });
      child.stderr.on('data', (chunk: Buffer) => {
        if (report.take(chunk)) progress();
      });
      const writer = watchWriter(child.then((result) => (result.failed ? Promise.reject(result) : result)));
      const tarPath = join(output, baseTarName);
      const streamed = openOnceCreated(tarPath, writer, 20).then(async (handle) => {
        try {
          const chunks = growingFileChunks(tarPath, { ...untilWriterExits(writer, 20), handle, releaseEveryBytes: partSizeBytes, ...(signal ? { signal } : {}) });
          await pipeline(chunks, sink, ...(signal ? [{ signal }] : []));
        } finally {
          await handle.close();
        }
      });
      const [stored, exited] = await Promise.allSettled([streamed, child]);
      report.end();
      const stderr = report.messages();
      if (signal?.aborted) throw abortedBackup(signal);
      if (exited.status === 'rejected' || exited.value.failed) {
        const reason = exited.status === 'rejected' ? exited.reason : exited.value;
        throw replicationRefused(stderr, connection) ?? toolConnectionFailure(stderr, connection, connection.database) ?? basebackupFailure(stderr, reason);
      }
      if (stored.status === 'rejected') throw stored.reason;
      await expectOnlyTheDefaultTablespace(output);
      backupManifestObject = await storeBackupManifest(join(output, 'backup_manifest'), storing, attempt);
    } finally {
      await rm(spool, { recursive: true, force: true });
    }
    progress();
    // The session sat idle for the whole backup; a server that ends idle sessions may have closed it.
    const stopped = await stopPoint(client).catch(async () => {
      const fresh = await connectTo(connection, env);
      try {
        return await stopPoint(fresh);
      } finally {
        await fresh.end().catch(() => undefined);
      }
    });

    const walRange = report.walRange();
    const pgBasebackupVersion = await clientVersion();
    return {
      format: manifestFormat,
      id: backupId,
      target,
      kind: 'postgres-base',
      createdAt: server.startTime,
      snapshotAt: stopped.stopTime,
      objects: [...sink.parts, backupManifestObject!],
      compression: { algorithm: 'zstd', level, implementation: `pg_basebackup --compress=${compressAt}-zstd (libzstd)`, version: pgBasebackupVersion },
      encryption: options.encryptionKey ? { algorithm: 'aes-256-gcm-chunked', keyId: keyId(options.encryptionKey) } : null,
      tools: { postgres: server.serverVersion, pg_basebackup: pgBasebackupVersion, node: process.version },
      parent: null,
      ...landingRecord(landing),
      source: {
        host: connection.host,
        port: connection.port,
        user: connection.user,
        serverVersion: server.serverVersion,
        serverVersionNum: server.serverVersionNum,
        systemIdentifier: server.systemIdentifier,
        superuser: server.superuser,
        walSegmentSizeBytes: server.walSegmentSizeBytes,
        dataChecksums: server.dataChecksums,
      },
      base: {
        label,
        walMethod: 'fetch',
        timeline: walRange.timeline,
        startLsn: walRange.startLsn,
        stopLsn: walRange.stopLsn,
        startTime: server.startTime,
        stopTime: stopped.stopTime,
        nextXid: stopped.nextXid,
        fileChecksums: 'CRC32C',
        // pg_basebackup counts the server's bytes in kB (the tar, without the backup_manifest).
        tar: { sizeBytes: report.totalBytes || sink.storedBytes },
        partSizeBytes,
        parts: sink.parts.map((part) => ({ object: part.name })),
        backupManifest: { object: backupManifestObject!.name },
      },
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The backup_manifest pg_basebackup wrote beside the tar (the server cannot put it inside a tar
 * it compressed itself), stored as its own object: zstd, optionally encrypted, with its sha256.
 */
async function storeBackupManifest(path: string, options: StoringOptions, attempt: number): Promise<StoredObject> {
  return storeBackupObject(options, attemptObjectName(attempt, backupManifestObjectName(options.encryptionKey !== undefined)), [createReadStream(path), createCompressor({ level: 3, threads: 1 })]);
}

/** Where the backup landed, as its manifest records it. */
function landingRecord(landing: Landing): Pick<BaseBackupResult, 'copies' | 'missing'> {
  const { repositories, missing } = landing.copies();
  return { copies: repositories, missing };
}

/** What storing the backup's objects needs: the options, and where the backup goes. */
type StoringOptions = BaseBackupOptions & { landing: Landing };

/** One object of the backup: `stages` (source first), encrypted when the backup is, hashed, into every repository still taking it. */
async function storeBackupObject(options: StoringOptions, name: string, stages: Array<Readable | Duplex>): Promise<StoredObject> {
  const { landing, target, backupId, signal } = options;
  const stored = await storeInEvery(landing, options.encryptionKey ? [...stages, createEncryptor(options.encryptionKey)] : stages, {
    keyOf: (repository) => repository.objectKey(target, backupId, name),
    action: (repository) => `storing ${name} of base backup ${backupId} in repository "${repository.name}" (${repository.location})`,
    ...(signal ? { signal } : {}),
    payload: true,
  });
  return { name, ...stored };
}

/**
 * pg_basebackup writes one more tar per tablespace beside base.tar.zst; Lifeboat stores and
 * restores only the data directory, so a cluster with tablespaces is refused before (see
 * describeServer) and, should one have been created meanwhile, after.
 */
async function expectOnlyTheDefaultTablespace(output: string): Promise<void> {
  const others = (await readdir(output)).filter((name) => name !== baseTarName && name !== 'backup_manifest');
  if (others.length > 0) throw tablespacesUnsupported(others.join(', '));
}

function tablespacesUnsupported(which: string): LifeboatError {
  return new LifeboatError(
    'InvalidInput',
    `the cluster has tablespaces besides pg_default and pg_global (${which}); Lifeboat base backups hold only the data directory`,
    'Move the tables into pg_default (ALTER TABLE ... SET TABLESPACE pg_default) or back this cluster up with pg_dump (method "dump")',
  );
}

function abortedBackup(signal: AbortSignal): Error {
  const error = new Error('the base backup was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  return error;
}

/** The server accepted the role but not for a base backup (no REPLICATION, or no "replication" line in pg_hba.conf). */
function replicationRefused(stderr: string, connection: PostgresConnection): LifeboatError | undefined {
  if (!/must be superuser or replication role|permission denied to start WAL sender|no pg_hba\.conf entry for replication connection/i.test(stderr)) return undefined;
  return new LifeboatError(
    'PostgresAuthFailed',
    `${connection.user}@${connection.host}:${connection.port} may not take base backups: ${lastLines(stderr, 3)}`,
    `Give the role REPLICATION (ALTER ROLE ${connection.user} REPLICATION) and allow it a "replication" line in pg_hba.conf`,
  );
}

function basebackupFailure(stderr: string, reason: unknown): Error {
  const detail = lastLines(stderr, 10);
  const how = reason instanceof Error ? reason.message.split('\n')[0] : 'failed';
  return new Error(`pg_basebackup failed (${how}):\n${detail}`, { cause: reason });
}

function lastLines(text: string, count: number): string {
  return text.trim().split('\n').slice(-count).join('\n');
}

interface ServerFacts {
  serverVersion: string;
  serverVersionNum: number;
  systemIdentifier: string;
  superuser: string;
  walSegmentSizeBytes: number;
  dataChecksums: boolean;
  startTime: string;
  sizeEstimateBytes: number;
}

const utcMicros = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

async function describeServer(client: { query: (sql: string) => Promise<{ rows: unknown[] }> }): Promise<ServerFacts> {
  const { rows } = await client.query(`
    SELECT current_setting('server_version') AS server_version,
           current_setting('server_version_num')::int AS server_version_num,
           (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
           (SELECT rolname FROM pg_roles WHERE oid = 10) AS superuser,
           current_setting('wal_segment_size') AS wal_segment_size,
           current_setting('data_checksums') = 'on' AS data_checksums,
           ${utcMicros} AS start_time`);
  const row = rows[0] as {
    server_version: string;
    server_version_num: number;
    system_identifier: string;
    superuser: string;
    wal_segment_size: string;
    data_checksums: boolean;
    start_time: string;
  };
  if (row.server_version_num < 150000) {
    throw new LifeboatError('InvalidInput', `the server runs PostgreSQL ${row.server_version}; base backups need PostgreSQL 15 or newer (backup_manifest in a tar stream)`);
  }
  const tablespaces = await client.query(`SELECT spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname`);
  if (tablespaces.rows.length > 0) throw tablespacesUnsupported((tablespaces.rows as Array<{ spcname: string }>).map((row) => row.spcname).join(', '));
  let sizeEstimateBytes = 0;
  try {
    // Sizes need CONNECT on every database (or pg_read_all_stats); only the progress estimate depends on it.
    const size = await client.query(`SELECT (sum(pg_database_size(oid)) + pg_size_bytes(current_setting('wal_segment_size')))::text AS bytes FROM pg_database`);
    sizeEstimateBytes = Number((size.rows[0] as { bytes: string }).bytes);
  } catch {
    sizeEstimateBytes = 0;
  }
  return {
    serverVersion: row.server_version,
    serverVersionNum: row.server_version_num,
    systemIdentifier: row.system_identifier,
    superuser: row.superuser,
    walSegmentSizeBytes: parseSegmentSize(row.wal_segment_size),
    dataChecksums: row.data_checksums,
    startTime: row.start_time,
    sizeEstimateBytes,
  };
}

function parseSegmentSize(setting: string): number {
  const match = /^(\d+)\s*(kB|MB|GB)?$/.exec(setting.trim());
  if (!match) throw new Error(`unexpected wal_segment_size ${JSON.stringify(setting)}`);
  const unit = { kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[match[2] as 'kB' | 'MB' | 'GB'] ?? 1;
  return Number(match[1]) * unit;
}

async function stopPoint(client: { query: (sql: string) => Promise<{ rows: unknown[] }> }): Promise<{ stopTime: string; nextXid: string }> {
  const { rows } = await client.query(`SELECT ${utcMicros} AS stop_time, pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid`);
  const row = rows[0] as { stop_time: string; next_xid: string };
  return { stopTime: row.stop_time, nextXid: row.next_xid };
}

/**
 * What pg_basebackup says on stderr with --verbose --progress (LC_MESSAGES=C): the progress lines
 * ("  860312/2121025 kB (40%), 0/1 tablespace (...)", about one a second), the WAL range of the
 * backup ("write-ahead log start point: 2/92000028 on timeline 1", "write-ahead log end point:
 * 2/92000100"), and everything else, kept for error messages. The tar is compressed before this
 * process sees it and is never decoded here, so these lines are where the backup's position in
 * the WAL comes from (the same LSNs as its backup_label and backup_manifest).
 */
export class BasebackupReport {
  doneBytes = 0;
  totalBytes = 0;
  private partial = '';
  private readonly lines: string[] = [];
  private start: { lsn: string; timeline: number } | undefined;
  private stop: string | undefined;

  /** Feeds stderr; true when the progress moved. */
  take(chunk: Buffer | string): boolean {
    const pieces = (this.partial + chunk.toString()).split(/[\r\n]/);
    this.partial = pieces.pop() ?? '';
    let moved = false;
    for (const line of pieces) moved = this.line(line) || moved;
    return moved;
  }

  end(): void {
    if (this.partial) this.line(this.partial);
    this.partial = '';
  }

  /** Every line but the progress lines (the last 100). */
  messages(): string {
    return this.lines.join('\n');
  }

  walRange(): { startLsn: string; timeline: number; stopLsn: string } {
    if (!this.start || !this.stop) {
      throw new Error(`pg_basebackup finished without reporting its write-ahead log ${this.start ? 'end' : 'start'} point (--verbose):\n${lastLines(this.messages(), 10)}`);
    }
    return { startLsn: this.start.lsn, timeline: this.start.timeline, stopLsn: this.stop };
  }

  private line(line: string): boolean {
    const progress = /^\s*(\d+)\/(\d+) kB \(\d+%\)/.exec(line);
    if (progress) {
      this.doneBytes = Number(progress[1]) * 1024;
      this.totalBytes = Number(progress[2]) * 1024;
      return true;
    }
    if (!line.trim()) return false;
    const start = /write-ahead log start point: ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/.exec(line);
    if (start) this.start = { lsn: start[1]!, timeline: Number(start[2]) };
    const stop = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(line);
    if (stop) this.stop = stop[1]!;
    this.lines.push(line);
    if (this.lines.length > 100) this.lines.shift();
    return false;
  }
}

let cachedClientVersion: string | undefined;
async function clientVersion(): Promise<string> {
  if (cachedClientVersion) return cachedClientVersion;
  const result = await execa(pgBinary('pg_basebackup'), ['--version'], { reject: false, stdin: 'ignore' });
  cachedClientVersion = /(\d+\.\d+)/.exec(String(result.stdout))?.[1] ?? 'unknown';
  return cachedClientVersion;
}

/** The LABEL and START WAL LOCATION of a backup_label (the file PostgreSQL writes into a base backup). */
export function parseBackupLabel(content: string): { label: string; startLsn: string } {
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(content)?.[1];
  const label = field('LABEL');
  const startLsn = field('START WAL LOCATION')?.split(' ')[0];
  if (label === undefined || !startLsn) throw new Error(`backup_label lacks LABEL or START WAL LOCATION:\n${content}`);
  return { label, startLsn };
}

// ---------------------------------------------------------------------------------------------
// The stream cut into parts

interface PartUpload {
  write(chunk: Buffer): Promise<void>;
  end(): void;
  destroy(error: Error): void;
  readonly done: Promise<BaseBackupManifest['objects'][number]>;
}

/** One part: optional encryption, sha256 of what is stored, fanned out to every repository. */
function openPartUpload(options: StoringOptions, objectName: string): PartUpload {
  const input = new PassThrough({ highWaterMark: 1 << 20 });
  // Its failures are reported through `done`; destroying it after its pipeline gave up (an abort
  // reaches both) must not raise an unhandled 'error'.
  input.on('error', () => undefined);
  const done = storeBackupObject(options, objectName, [input]);
  done.catch(() => undefined); // observed by whoever awaits it; never an unhandled rejection
  return {
    done,
    async write(chunk) {
      if (!input.write(chunk)) await writable(input, done);
    },
    end() {
      input.end();
    },
    destroy(error) {
      if (!input.destroyed) input.destroy(error);
    },
  };
}

/** Resolves when stream drains; rejects when it fails or closes first (then with the part's own error). */
async function writable(stream: PassThrough, done: Promise<unknown>): Promise<void> {
  const controller = new AbortController();
  try {
    await Promise.race([
      once(stream, 'drain', { signal: controller.signal }),
      once(stream, 'close', { signal: controller.signal }).then(async () => {
        await done;
        throw new Error('a part of the base backup stopped accepting data');
      }),
    ]);
  } finally {
    controller.abort();
  }
}

/**
 * The end of the pg_basebackup pipeline: cuts the compressed stream into parts of exactly
 * partSizeBytes (the last one shorter), each stored as it is written. Up to two parts are in
 * flight, so the repository finishing one part overlaps with the next one filling.
 */
class PartedUpload extends Writable {
  readonly parts: Array<BaseBackupManifest['objects'][number]> = [];
  storedBytes = 0;
  private current: { upload: PartUpload; index: number; bytes: number } | undefined;
  private readonly inFlight: Array<Promise<void>> = [];
  private nextIndex = 0;

  constructor(
    private readonly settings: {
      partSizeBytes: number;
      openPart: (index: number) => PartUpload;
      onBytes: (bytes: number) => void;
    },
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.current?.upload.destroy(error ?? new Error('the base backup stream was closed early'));
    callback(error);
  }

  private async take(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.current) await this.startPart();
      const part = this.current!;
      const piece = chunk.subarray(offset, offset + (this.settings.partSizeBytes - part.bytes));
      part.bytes += piece.length;
      this.storedBytes += piece.length;
      offset += piece.length;
      await part.upload.write(piece);
      this.settings.onBytes(piece.length);
      if (part.bytes === this.settings.partSizeBytes) this.endPart();
    }
  }

  private async startPart(): Promise<void> {
    // At most maxPartsInFlight parts are open: the oldest must be stored before another begins.
    while (this.inFlight.length >= maxPartsInFlight) await this.inFlight.shift();
    const index = this.nextIndex++;
    this.current = { upload: this.settings.openPart(index), index, bytes: 0 };
  }

  private endPart(): void {
    const part = this.current!;
    this.current = undefined;
    part.upload.end();
    const stored = part.upload.done.then((object) => {
      this.parts[part.index] = object;
    });
    stored.catch(() => undefined);
    this.inFlight.push(stored);
  }

  private async finish(): Promise<void> {
    if (this.current) this.endPart();
    for (const part of this.inFlight.splice(0)) await part;
    if (this.parts.length === 0) throw new Error('pg_basebackup wrote nothing');
  }
}

// ---------------------------------------------------------------------------------------------
// Manifests

/** Writes the manifest into every repository: the backup exists from now on. */
export async function writeBaseBackupManifest(
  repositories: Repository[],
  result: BaseBackupResult,
  run: { workflow: { workflowId: string; runId: string }; timeline?: StepRecord[] },
): Promise<BaseBackupManifest> {
  const manifest = baseBackupManifestSchema.parse({ ...result, workflow: run.workflow, timeline: run.timeline ?? [] });
  await Promise.all(repositories.map((repository) => repository.writeManifest(manifest)));
  return manifest;
}

function withoutRunFields(manifest: BaseBackupManifest): BaseBackupResult {
  const { workflow: _workflow, timeline: _timeline, ...result } = manifest;
  return result;
}

/** The base backup's manifest in one repository; undefined when it has none; BackupCorrupt when it is not one. */
async function readBaseBackupManifestIfAny(repository: Repository, target: string, backupId: string): Promise<BaseBackupManifest | undefined> {
  const manifest = await repository.readManifestIfAny(target, backupId);
  if (manifest === undefined || manifest.kind === 'postgres-base') return manifest;
  throw new LifeboatError('BackupCorrupt', `backup ${backupId} of target "${target}" in repository "${repository.name}" is a ${manifest.kind} backup, not a base backup`, 'Use another backup id');
}

export interface BaseBackupListing {
  /** Newest first (by id, which sorts by time); each backup once, from the first repository that has it. */
  backups: Array<{ manifest: BaseBackupManifest; repository: string }>;
  /** Manifests that could not be read, and repositories that did not answer: reported, not fatal. */
  problems: string[];
}

/**
 * Every base backup of a target, from the manifests alone. Manifests of other kinds (SQLite,
 * dumps) are skipped; a damaged manifest or an unreachable repository is listed in problems (the
 * other backups stay usable), unless no repository answers at all.
 */
export async function listBaseBackups(repositories: Repository[], target: string): Promise<BaseBackupListing> {
  const found = new Map<string, { manifest: BaseBackupManifest; repository: string }>();
  const problems: string[] = [];
  let answered = 0;
  for (const repository of repositories) {
    let ids: string[];
    try {
      ids = await repository.listBackupIds(target);
      answered += 1;
    } catch (error) {
      problems.push(`repository "${repository.name}" (${repository.location}) did not answer: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    for (const id of ids) {
      if (found.has(id)) continue;
      try {
        const manifest = await repository.readManifestIfAny(target, id, 'postgres-base');
        if (manifest?.kind === 'postgres-base') found.set(id, { manifest, repository: repository.name });
      } catch (error) {
        problems.push(error instanceof Error ? error.message : String(error));
      }
    }
  }
  if (answered === 0 && repositories.length > 0) {
    throw new Error(`no repository of target "${target}" answered: ${problems.join('; ')}`);
  }
  const backups = [...found.values()].sort((a, b) => (a.manifest.id < b.manifest.id ? 1 : a.manifest.id > b.manifest.id ? -1 : 0));
  return { backups, problems };
}
