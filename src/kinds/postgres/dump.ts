import { Context, log } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors.js';
import { compressionInfo, createCompressor, createDecompressorToFile, createFileCompressor } from '../../pipeline/compress.js';
import { createDecryptor, createEncryptor, decryptionKeyFor, keyId, loadKeyFile } from '../../pipeline/encrypt.js';
import { Landing, storeInEvery, type MissingCopy } from '../../repository/store.js';
import { readFromFirstGoodCopy } from '../../repository/copies.js';
import { HashingPassThrough, sha256OfFile, sha256OfStream } from '../../pipeline/hash.js';
import { CopyFingerprinter, copyTextTailBytes, CustomArchiveReader, describeTable, endsCopyText, isTableData, parseTocFile, type TableFingerprint } from '../../postgres/dump-archive.js';
import { connectTo, describeConnection } from '../../postgres/dump-connection.js';
import { scanGrowingFile } from '../../pipeline/growing-file.js';
import { prepareSpool } from '../../pipeline/spool.js';
import { finalSizeOf, storeAsWritten, type FileInProgress } from '../../postgres/dump-follow.js';
import {
  copyFingerprint,
  createDatabase,
  databaseExists,
  dropDatabase,
  dumpCustomToStdout,
  dumpToDirectory,
  listArchive,
  restoreInto,
  setAllowConnections,
  swapDatabases,
  terminateSessions,
} from '../../postgres/dump.js';
import type { DumpFile, PostgresDumpManifest, StoredObject } from '../../repository/manifest.js';
import { attemptObjectName, type Repository } from '../../repository/repository.js';
import { countBytes, readOffsetOf, startProgress, type ProgressReporter } from '../../../activities/progress.js';
import { landingFor, openRepositories } from '../../../activities/repositories.js';
import { clearUnfinishedBackup } from '../../../activities/repository.js';
import type { ResolvedPostgresTarget } from './index.js';

/** The archive's name in a custom-format dump (one file). */
export const customArchiveName = 'archive.pgdump';

/** Stored object of one dump file: dump/<file>.zst, or .zst.enc when encrypted (under the attempt's own name, attemptObjectName). */
export function dumpObjectName(file: string, encrypted: boolean): string {
  return `dump/${file}.zst${encrypted ? '.enc' : ''}`;
}

export interface DumpUploadInput {
  target: ResolvedPostgresTarget;
  backupId: string;
}

/** What the manifest needs from the dump-and-upload step. */
export interface UploadedDump {
  snapshotAt: string;
  source: PostgresDumpManifest['source'];
  objects: StoredObject[];
  dump: Omit<PostgresDumpManifest['dump'], 'verification'>;
  compression: PostgresDumpManifest['compression'];
  encryption: PostgresDumpManifest['encryption'];
  tools: Record<string, string>;
  /** Where the dump landed, and where it is missing and why (minCopies lets it go on without some). */
  repositories: string[];
  missing: MissingCopy[];
}

interface SnapshotRow {
  snapshot: string;
  at: Date;
  server_version: string;
  size: string;
  encoding: string;
  collate: string;
  ctype: string;
}

/** The digest of a whole dump: sha256 of "<sha256>  <name>\n" per file, sorted by name (sha256sum's lines). */
export function dumpDigest(files: Array<{ name: string; sha256: string }>): string {
  const hash = createHash('sha256');
  for (const file of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) hash.update(`${file.sha256}  ${file.name}\n`);
  return hash.digest('hex');
}

/** Streams `source` through the stages into one object in every repository at once. */
async function uploadToAll(
  landing: Landing,
  target: string,
  backupId: string,
  objectName: string,
  source: Readable,
  stages: Duplex[],
  signal: AbortSignal,
): Promise<StoredObject> {
  const stored = await storeInEvery(landing, [source, ...stages], {
    keyOf: (repository) => repository.objectKey(target, backupId, objectName),
    action: (repository) => `storing ${objectName} of backup ${backupId} in repository "${repository.name}" (${repository.location})`,
    signal,
    payload: true,
  });
  return { name: objectName, ...stored };
}

function tap(consume: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        consume(chunk);
      } catch (error) {
        callback(error as Error);
        return;
      }
      callback(null, chunk);
    },
  });
}

function encodingStages(target: ResolvedPostgresTarget, key: Buffer | undefined): Duplex[] {
  const stages: Duplex[] = [createCompressor(target.compression)];
  if (key) stages.push(createEncryptor(key));
  return stages;
}

/**
 * One step: export a snapshot, pg_dump from it, and stream every byte through zstd (and
 * encryption) into every repository, fingerprinting each table on the way. Directory format
 * (jobs > 1) spools pg_dump's files locally first; custom format (jobs = 1) streams pg_dump's
 * stdout with no local copy. `pg_restore --list` must read what was dumped. Safe to run again:
 * an attempt first removes what an earlier one stored under the same backup id.
 */
export async function dumpAndUpload(input: DumpUploadInput, env: NodeJS.ProcessEnv): Promise<UploadedDump> {
  const { target, backupId } = input;
  const context = Context.current();
  const signal = context.cancellationSignal;
  const landing = landingFor(target, env);
  const key = target.encryption ? await loadKeyFile(target.encryption.keyFile) : undefined;
  const cleared = await clearUnfinishedBackup(landing, target.name, backupId, context.info.attempt);
  if (cleared > 0) log.info('removed what an earlier attempt stored', { backupId, objects: cleared });

  const client = await connectTo(target.connection, env);
  try {
    // The snapshot pg_dump reads from: everything recorded about the source is what was dumped.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (
      await client.query<SnapshotRow>(
        `SELECT pg_export_snapshot() AS snapshot, statement_timestamp() AS at, current_setting('server_version') AS server_version,
                pg_database_size(d.oid)::text AS size, pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype
           FROM pg_database d WHERE d.datname = current_database()`,
      )
    ).rows[0]!;
    const snapshotAt = snapshot.at.toISOString();
    log.info('snapshot exported', { target: target.name, backupId, snapshotAt, database: target.connection.database });
    const progress = startProgress('dump', Number(snapshot.size));
    try {
      const dumped =
        target.dump.jobs > 1
          ? await dumpDirectory({ target, backupId, attempt: context.info.attempt, snapshot: snapshot.snapshot, landing, key, progress, env, signal })
          : await dumpCustom({ target, backupId, attempt: context.info.attempt, snapshot: snapshot.snapshot, landing, key, progress, env, signal });
      const compression = await compressionInfo();
      const sizeBytes = dumped.files.reduce((sum, file) => sum + file.sizeBytes, 0);
      return {
        snapshotAt,
        source: {
          database: target.connection.database,
          host: target.connection.host,
          port: target.connection.port,
          user: target.connection.user,
          serverVersion: snapshot.server_version,
          encoding: snapshot.encoding,
          collate: snapshot.collate,
          ctype: snapshot.ctype,
          databaseSizeBytes: Number(snapshot.size),
          sizeBytes,
          sha256: dumpDigest(dumped.files),
        },
        objects: dumped.objects,
        dump: {
          format: target.dump.jobs > 1 ? 'directory' : 'custom',
          jobs: target.dump.jobs,
          archiveVersion: dumped.archiveVersion,
          tocEntries: dumped.tocEntries,
          files: dumped.files,
          tables: dumped.tables,
        },
        compression: { algorithm: 'zstd', level: target.compression.level, implementation: compression.implementation, version: compression.version },
        encryption: key ? { algorithm: 'aes-256-gcm-chunked', keyId: keyId(key) } : null, // the key this step read
        tools: { pg_dump: dumped.pgDumpVersion, postgres: snapshot.server_version, node: process.version, zstd: compression.version },
        ...landing.copies(),
      };
    } finally {
      progress.stop();
    }
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

interface Dumped {
  files: DumpFile[];
  objects: StoredObject[];
  tables: TableFingerprint[];
  tocEntries: number;
  archiveVersion: string;
  pgDumpVersion: string;
}

/** One dump of a target into its repositories, from an exported snapshot. */
interface DumpRun {
  target: ResolvedPostgresTarget;
  backupId: string;
  /** The step's attempt: its objects are stored under names of their own (attemptObjectName). */
  attempt: number;
  /** The exported snapshot pg_dump reads (pg_export_snapshot()). */
  snapshot: string;
  /** Where the dump goes (a repository that fails is dropped while minCopies remain). */
  landing: Landing;
  /** The encryption key, when the target encrypts. */
  key: Buffer | undefined;
  progress: ProgressReporter;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

/** A stored dump file: what the manifest records of it. */
interface StoredDumpFile {
  file: DumpFile;
  object: StoredObject;
  /** A data file's rows: undefined when it does not end with pg_dump's end marker (not complete COPY text). */
  rows?: number | undefined;
}

/** pg_dump -Fd names a table's data file after its dump id. */
const dataFileName = /^\d+\.dat$/;

/** Raw bytes of the dump that zstd has read so far: the files done, plus how far each running zstd got. */
class CompressedBytes {
  private done = 0;
  private readonly running = new Set<{ pid: number | undefined }>();

  get total(): number {
    let total = this.done;
    for (const compressor of this.running) total += readOffsetOf(compressor.pid) ?? 0;
    return total;
  }

  async track<T>(compressor: { pid: number | undefined }, sizeBytes: number, compressing: Promise<T>): Promise<T> {
    this.running.add(compressor);
    try {
      const result = await compressing;
      this.done += sizeBytes;
      return result;
    } finally {
      this.running.delete(compressor);
    }
  }
}

/**
 * pg_dump -Fd -j N into a private spool, storing every file while pg_dump is still writing the
 * others (see dump-follow.ts): a table's data file is fingerprinted (sha256 and rows of its COPY
 * text) while it grows and compressed (and encrypted) into every repository once it ends with
 * pg_dump's end marker; toc.dat, written last, and any other file follow pg_dump's exit, N files
 * at a time. `pg_restore --list` must read the directory, and every file must have been stored
 * whole (the bytes read are its final size).
 */
async function dumpDirectory(run: DumpRun): Promise<Dumped> {
  const { target, backupId, snapshot, landing, key, progress, env, signal } = run;
  const spool = await prepareSpool(target.dump.spoolDir ?? tmpdir(), `lifeboat-dump-${target.name}-${backupId}`, run.attempt);
  const dumpDir = join(spool, 'dump');
  // One failure (pg_dump's, a repository's) stops pg_dump and every upload in progress.
  const stop = new AbortController();
  const stopping = AbortSignal.any([signal, stop.signal]);
  // Progress: bytes fingerprinted while pg_dump runs (it is close behind pg_dump), then bytes compressed.
  let scanned = 0;
  const compressedBytes = new CompressedBytes();
  progress.setPhase('dump');
  progress.sampleWith(() => scanned);
  try {
    const dumped = dumpToDirectory({ connection: target.connection, env, signal: stopping, snapshot, directory: dumpDir, jobs: target.dump.jobs }).then(async () => {
      progress.setPhase('upload');
      progress.sampleWith(() => compressedBytes.total);
      const toc = parseTocFile(await readFile(join(dumpDir, 'toc.dat')));
      const listed = await listArchive({ directory: dumpDir }, env);
      if (listed !== toc.entries.length) throw new LifeboatError('DumpFailed', `pg_restore --list sees ${listed} TOC entries, toc.dat holds ${toc.entries.length}`, 'Run the backup again');
      const sizes = new Map<string, number>();
      for (const name of await readdir(dumpDir)) sizes.set(name, (await stat(join(dumpDir, name))).size);
      progress.set({ bytesTotal: [...sizes.values()].reduce((sum, size) => sum + size, 0) });
      return { toc, sizes };
    });
    dumped.catch(() => undefined); // storeAsWritten reports it; awaited below once everything settled

    const storeFile = async (file: FileInProgress): Promise<StoredDumpFile> => {
      const copy = dataFileName.test(file.name) ? new CopyFingerprinter() : undefined;
      const hash = copy ? undefined : createHash('sha256');
      const objectName = attemptObjectName(run.attempt, dumpObjectName(file.name, key !== undefined));
      // Either half failing stops the other (the step's own abort comes only once this rejects).
      const failed = new AbortController();
      const halted = AbortSignal.any([stopping, failed.signal]);
      const following = { writerFinished: file.writerFinished, waitForData: file.waitForData, signal: halted };
      const settle = <T>(work: Promise<T>) =>
        work.catch((error: unknown) => {
          failed.abort(error);
          throw error;
        });
      // zstd starts on the file once its size is final, even while the fingerprint still catches up.
      const compressing = settle(
        finalSizeOf(file.path, { ...following, tailBytes: copyTextTailBytes, ended: (tail) => copy !== undefined && endsCopyText(tail) }).then(async (sizeBytes) => {
          const handle = await open(file.path, 'r');
          try {
            // zstd reads the file itself, and fails unless it holds exactly sizeBytes (--stream-size).
            const compressor = createFileCompressor({ fd: handle.fd, sizeBytes }, target.compression);
            const stages: Duplex[] = key ? [createEncryptor(key)] : [];
            const object = await compressedBytes.track(compressor, sizeBytes, uploadToAll(landing, target.name, backupId, objectName, compressor, stages, halted));
            return { object, sizeBytes };
          } finally {
            await handle.close();
          }
        }),
      );
      const scanning = settle(
        scanGrowingFile(file.path, { ...following, complete: () => copy?.ended() ?? false }, (chunk) => {
          if (copy) copy.update(chunk);
          else hash!.update(chunk);
          scanned += chunk.length;
        }),
      );
      const [upload, scan] = await Promise.allSettled([compressing, scanning]);
      if (upload.status === 'rejected') throw upload.reason;
      if (scan.status === 'rejected') throw scan.reason;
      const { object, sizeBytes } = upload.value;
      const decoded: { rows?: number | undefined; bytes: number; sha256: string } = copy ? copy.finishFile() : { bytes: scan.value, sha256: hash!.digest('hex') };
      if (decoded.bytes !== sizeBytes) throw new Error(`${file.path}: ${decoded.bytes} bytes were fingerprinted, but zstd compressed ${sizeBytes}`);
      return { file: { name: file.name, object: objectName, sizeBytes: decoded.bytes, sha256: decoded.sha256 }, object, ...(copy ? { rows: decoded.rows } : {}) };
    };

    const stored = await storeAsWritten<StoredDumpFile>({
      directory: dumpDir,
      writer: dumped.then(() => undefined),
      follow: (name) => dataFileName.test(name),
      concurrency: target.dump.jobs,
      abort: (reason) => stop.abort(reason),
      store: storeFile,
    });
    const { toc, sizes } = await dumped;
    const files: DumpFile[] = [];
    const objects: StoredObject[] = [];
    for (const [name, size] of [...sizes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const file = stored.get(name);
      if (!file || file.file.sizeBytes !== size) {
        throw new LifeboatError('DumpFailed', `${name} of the dump holds ${size} bytes, but ${file ? `${file.file.sizeBytes} bytes were` : 'nothing was'} stored`, 'Run the backup again');
      }
      files.push(file.file);
      objects.push(file.object);
    }
    const tables: TableFingerprint[] = [];
    for (const entry of toc.entries) {
      if (!isTableData(entry) || !entry.filename) continue;
      const data = stored.get(entry.filename);
      if (data?.rows === undefined) {
        throw new LifeboatError(
          'DumpFailed',
          data
            ? `${entry.filename} (the data of ${entry.namespace}.${entry.tag}) does not end with pg_dump's end-of-data marker: the dump is incomplete`
            : `toc.dat names ${entry.filename} as the data of ${entry.namespace}.${entry.tag}, but the dump has no such file`,
          'Run the backup again',
        );
      }
      tables.push(describeTable(entry, { rows: data.rows, bytes: data.file.sizeBytes, sha256: data.file.sha256 }));
    }
    progress.sampleWith(() => undefined);
    progress.update(compressedBytes.total);
    return {
      files,
      objects,
      tables: tables.sort((a, b) => a.dumpId - b.dumpId),
      tocEntries: toc.entries.length,
      archiveVersion: toc.header.version,
      pgDumpVersion: toc.header.pgDumpVersion,
    };
  } finally {
    stop.abort(new Error('the dump step ended'));
    await rm(spool, { recursive: true, force: true });
  }
}

async function dumpCustom(run: DumpRun): Promise<Dumped> {
  const { target, backupId, snapshot, landing, key, progress, env, signal } = run;
  const dump = dumpCustomToStdout({ connection: target.connection, env, signal, snapshot });
  const reader = new CustomArchiveReader();
  const sourceHash = new HashingPassThrough();
  const objectName = attemptObjectName(run.attempt, dumpObjectName(customArchiveName, key !== undefined));
  progress.setPhase('dump-and-upload');
  let stored: StoredObject;
  try {
    const uploading = uploadToAll(landing, target.name, backupId, objectName, dump.stdout, [tap((chunk) => reader.write(chunk)), sourceHash, countBytes(progress), ...encodingStages(target, key)], signal);
    // pg_dump's own failure (with its messages) explains a short stream better than the stream does.
    const [uploaded, dumped] = await Promise.allSettled([uploading, dump.done]);
    if (dumped.status === 'rejected') throw dumped.reason;
    if (uploaded.status === 'rejected') throw uploaded.reason;
    stored = uploaded.value;
  } catch (error) {
    dump.kill();
    throw error;
  }
  const archive = reader.finish();
  progress.setPhase('list');
  const listed = await listArchive({ tocBytes: reader.tocBytes! }, env);
  if (listed !== archive.entries.length) throw new LifeboatError('DumpFailed', `pg_restore --list sees ${listed} TOC entries, the archive holds ${archive.entries.length}`, 'Run the backup again');
  return {
    files: [{ name: customArchiveName, object: objectName, sizeBytes: sourceHash.bytes, sha256: sourceHash.sha256 }],
    objects: [stored],
    tables: archive.tables,
    tocEntries: archive.entries.length,
    archiveVersion: archive.header.version,
    pgDumpVersion: archive.header.pgDumpVersion,
  };
}

export interface RestoreDumpInput {
  target: ResolvedPostgresTarget;
  manifest: PostgresDumpManifest;
  /** The database this step creates and restores into; named per run, so a retry drops and recreates it. */
  database: string;
  /** Compare every table's row count and checksum with the manifest after the restore. */
  verify: boolean;
}

export interface RestoredDump {
  database: string;
  repository: string;
  storedBytes: number;
  fetchMs: number;
  restoreMs: number;
  verifyMs: number | null;
  tables: number;
  rows: number;
  /** What pg_restore printed on stderr when it succeeded (notices, warnings). */
  warnings: string;
}

const safeFileName = /^(?!\.\.?$)[A-Za-z0-9_.-]+$/;

/** Downloads every file of the dump from one repository into the spool, checking both checksums of each. */
async function fetchDumpFrom(repository: Repository, manifest: PostgresDumpManifest, spool: string, key: Buffer | undefined, progress: ProgressReporter, signal: AbortSignal): Promise<number> {
  let done = 0;
  for (const file of manifest.dump.files) {
    const object = manifest.objects.find((o) => o.name === file.object);
    if (!object || !safeFileName.test(file.name)) throw new LifeboatError('BackupCorrupt', `manifest of backup ${manifest.id} lists a bad dump file ${JSON.stringify(file.name)}`, 'Restore another backup');
    const storedHash = new HashingPassThrough();
    const stages: Duplex[] = [storedHash, tap((chunk) => progress.update((done += chunk.length)))];
    if (key) stages.push(createDecryptor(key));
    const body = await repository.backend.get(repository.objectKey(manifest.target, manifest.id, object.name));
    // zstd writes the decoded file itself (into the private spool); one scan hashes it afterwards.
    const path = join(spool, file.name);
    try {
      await pipeline([body, ...stages, createDecompressorToFile(path)], { signal });
    } catch (decodeError) {
      // A damaged object trips the decoder before its hash can be compared: report the cause.
      const stored = await sha256OfStream(await repository.backend.get(repository.objectKey(manifest.target, manifest.id, object.name)));
      if (stored.sha256 !== object.sha256 || stored.bytes !== object.sizeBytes) {
        throw new LifeboatError(
          'ChecksumMismatch',
          `${object.name} of backup ${manifest.id} in repository "${repository.name}" does not match its manifest: stored sha256 ${stored.sha256} ` +
            `(${stored.bytes} bytes, expected ${object.sha256}, ${object.sizeBytes})`,
          'The stored copy is damaged; restore another backup. Nothing was restored',
        );
      }
      throw decodeError;
    }
    const decodedHash = await sha256OfFile(path);
    if (storedHash.sha256 !== object.sha256 || storedHash.bytes !== object.sizeBytes || decodedHash.sha256 !== file.sha256 || decodedHash.bytes !== file.sizeBytes) {
      throw new LifeboatError(
        'ChecksumMismatch',
        `${object.name} of backup ${manifest.id} in repository "${repository.name}" does not match its manifest: stored sha256 ${storedHash.sha256} ` +
          `(${storedHash.bytes} bytes, expected ${object.sha256}, ${object.sizeBytes}), decoded sha256 ${decodedHash.sha256} (expected ${file.sha256})`,
        'The stored copy is damaged; restore another backup. Nothing was restored',
      );
    }
  }
  if (dumpDigest(manifest.dump.files) !== manifest.source.sha256) {
    throw new LifeboatError('BackupCorrupt', `the files of backup ${manifest.id} do not add up to its dump digest`, 'Restore another backup');
  }
  return done;
}

/**
 * Restores a dump into a new database: fetch every object into a private spool and verify its
 * checksums before anything is created; then (re)create the database (its name belongs to this
 * run, so dropping a leftover of an earlier attempt is safe), pg_restore -j N into it, and
 * optionally compare every table with its fingerprint from dump time. The spool is always
 * removed; the database stays (the caller renames or drops it).
 */
export async function restoreDump(input: RestoreDumpInput, env: NodeJS.ProcessEnv): Promise<RestoredDump> {
  const { target, manifest, database } = input;
  const context = Context.current();
  const signal = context.cancellationSignal;
  const key = await decryptionKeyFor(target, manifest);
  const storedTotal = manifest.objects.reduce((sum, o) => sum + o.sizeBytes, 0);
  const progress = startProgress('download', storedTotal);
  const spool = await prepareSpool(target.dump.spoolDir ?? tmpdir(), `lifeboat-restore-${database}`, context.info.attempt);
  try {
    const fetchStarted = Date.now();
    const { repository: fetchedFrom } = await readFromFirstGoodCopy(
      openRepositories(target, env),
      { target: target.name, id: manifest.id },
      async (repository) => {
        try {
          await fetchDumpFrom(repository, manifest, spool, key, progress, signal);
        } catch (error) {
          // The next repository starts from an empty spool.
          for (const name of await readdir(spool)) await rm(join(spool, name), { force: true });
          throw error;
        }
      },
      { signal, onPassedOver: (problem) => log.warn('copy passed over, trying the next repository', { repository: problem.repository, kind: problem.kind, error: problem.error.message }) },
    );
    const fetchMs = Date.now() - fetchStarted;

    progress.setPhase('restore');
    const restoreStarted = Date.now();
    const admin = await connectTo(target.connection, env, target.connection.maintenanceDatabase);
    try {
      if (await dropDatabase(admin, database)) log.info('dropped what an earlier attempt restored', { database });
      await createDatabase(admin, database, manifest.source);
    } finally {
      await admin.end().catch(() => undefined);
    }
    const format = manifest.dump.format;
    const { warnings } = await restoreInto({
      connection: target.connection,
      env,
      signal,
      database,
      format,
      jobs: target.dump.jobs,
      source: format === 'directory' ? spool : join(spool, customArchiveName),
    });
    const restoreMs = Date.now() - restoreStarted;
    await rm(spool, { recursive: true, force: true }); // free the space before the comparison reads

    let verifyMs: number | null = null;
    if (input.verify) {
      progress.setPhase('verify');
      const verifyStarted = Date.now();
      await compareWithManifest(target, manifest, database, env, signal);
      verifyMs = Date.now() - verifyStarted;
    }
    const rows = manifest.dump.tables.reduce((sum, table) => sum + table.rows, 0);
    log.info('dump restored', { backupId: manifest.id, database, repository: fetchedFrom.name, fetchMs, restoreMs, verifyMs });
    return { database, repository: fetchedFrom.name, storedBytes: storedTotal, fetchMs, restoreMs, verifyMs, tables: manifest.dump.tables.length, rows, warnings };
  } finally {
    progress.stop();
    await rm(spool, { recursive: true, force: true });
  }
}

/** Every table's COPY text in `database` must have the row count and sha256 recorded at dump time. */
async function compareWithManifest(target: ResolvedPostgresTarget, manifest: PostgresDumpManifest, database: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<void> {
  const mismatches: string[] = [];
  const queue = [...manifest.dump.tables];
  const worker = async () => {
    for (let table = queue.shift(); table; table = queue.shift()) {
      const found = await copyFingerprint({ connection: target.connection, env, signal, database, copy: table.copy, encoding: manifest.source.encoding });
      if (found.rows !== table.rows || found.sha256 !== table.sha256) {
        mismatches.push(`${table.schema}.${table.name}: ${found.rows} rows, sha256 ${found.sha256.slice(0, 12)}… (dumped: ${table.rows} rows, ${table.sha256.slice(0, 12)}…)`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, target.dump.jobs) }, worker));
  if (mismatches.length > 0) {
    throw new LifeboatError(
      'VerificationFailed',
      `the restored copy of backup ${manifest.id} differs from what was dumped in ${mismatches.length} of ${manifest.dump.tables.length} tables: ${mismatches.slice(0, 10).join('; ')}`,
      'Do not rely on this backup; check the server and the repository, and run the backup again',
    );
  }
}

/** Whether a database exists on the target's server. */
export async function inspectDatabase(input: { target: ResolvedPostgresTarget; database: string }, env: NodeJS.ProcessEnv): Promise<{ exists: boolean }> {
  const admin = await connectTo(input.target.connection, env, input.target.connection.maintenanceDatabase);
  try {
    return { exists: await databaseExists(admin, input.database) };
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Drops a database this run created (scratch or staging); a missing one is fine (idempotent). */
export async function dropRunDatabase(input: { target: ResolvedPostgresTarget; database: string }, env: NodeJS.ProcessEnv): Promise<{ dropped: boolean }> {
  const admin = await connectTo(input.target.connection, env, input.target.connection.maintenanceDatabase);
  try {
    return { dropped: await dropDatabase(admin, input.database) };
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export interface SwapDatabaseInput {
  target: ResolvedPostgresTarget;
  /** The verified restore, named per run. */
  staging: string;
  /** The name it gets. */
  into: string;
  /** Where an existing `into` is kept; null: `into` must not exist (nothing is replaced without approval). */
  safety: string | null;
}

/**
 * Renames the restored database into place. When `into` exists (replacing was approved), it is
 * closed to new connections, its sessions are ended, and one transaction renames it to the
 * safety name and the restore to `into`. Idempotent: after a crash it finishes or sees it is done.
 */
export async function swapDatabase(input: SwapDatabaseInput, env: NodeJS.ProcessEnv): Promise<{ safetyDatabase: string | null }> {
  const { target, staging, into, safety } = input;
  const admin = await connectTo(target.connection, env, target.connection.maintenanceDatabase);
  try {
    const [stagingExists, intoExists] = [await databaseExists(admin, staging), await databaseExists(admin, into)];
    if (!stagingExists) {
      if (intoExists) return { safetyDatabase: safety && (await databaseExists(admin, safety)) ? safety : null };
      throw new LifeboatError('RestoreFailed', `the restored database ${staging} is gone before it was renamed to ${into}`, 'Run the restore again');
    }
    if (!intoExists) {
      await terminateSessions(admin, staging);
      await swapDatabases(admin, { staging, into, safety: null });
      return { safetyDatabase: null };
    }
    if (!safety) {
      throw new LifeboatError('DatabaseExists', `database ${into} exists on ${describeConnection(target.connection, into)}`, 'Replacing it needs --yes or an approval; the restore was not put in place');
    }
    await setAllowConnections(admin, into, false);
    try {
      for (let attempt = 1; ; attempt++) {
        await terminateSessions(admin, into);
        await terminateSessions(admin, staging);
        try {
          await swapDatabases(admin, { staging, into, safety });
          break;
        } catch (error) {
          // 55006: a session was still going away; the database accepts no new ones, so retrying ends.
          if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    } catch (error) {
      await setAllowConnections(admin, into, true).catch(() => undefined);
      throw error;
    }
    log.warn('database replaced', { database: into, safetyDatabase: safety });
    return { safetyDatabase: safety };
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Removes every object of a backup that has no manifest (a failed or unverified dump). */
