import { randomBytes } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { loadConfig, targetNamed } from '../config/load.js';
import type { RepositoryConfig } from '../config/schema.js';
import { LifeboatError } from '../errors.js';
import { createCompressor, createDecompressorToFile } from '../pipeline/compress.js';
import { storeInEvery } from '../repository/store.js';
import { HashingPassThrough, sha256OfFile, sha256OfStream } from '../pipeline/hash.js';
import { readTextIfAny } from '../repository/backend.js';
import { openBackend } from '../repository/open.js';
import { Repository } from '../repository/repository.js';

/**
 * PostgreSQL's WAL archive in Lifeboat repositories: what `lifeboat wal-push %p`
 * (archive_command) and `lifeboat wal-fetch %f %p` (restore_command) do.
 *
 * Both are plain processes that PostgreSQL starts for every file, talking to the repositories
 * directly: archiving must keep working while the Temporal server is down, or WAL piles up in
 * pg_wal until the production disk fills.
 *
 * Layout, per repository of the target:
 *
 *   <target>/wal/<name>.zst    the file, zstd-compressed (a plain zstd frame: `zstd -d` restores it by hand)
 *   <target>/wal/<name>.json   its record (WalRecord): sha256 and size of the original and of the stored bytes
 *
 * The record is a sidecar rather than object metadata because the Backend interface has none
 * (and fs has no portable equivalent), and rather than a header inside the payload so that the
 * payload stays a plain zstd file and a push can check for an existing archive with one small
 * read. The record is written last: a payload without a record is an interrupted push, and does
 * not count (like a backup without its manifest).
 *
 * A push succeeds only once every repository of the target holds the file, so each repository
 * holds the whole archive; wal-fetch can therefore answer from any one of them.
 */

// ---------------------------------------------------------------------------------------------
// File names

/**
 * What PostgreSQL puts into the archive, told by name:
 * - segment: a WAL segment, `000000010000000A000000FF` (timeline, log, segment; uppercase hex)
 * - partial: the last, incomplete segment of a timeline, archived at promotion (`<segment>.partial`)
 * - backup-label: the backup history file of a base backup (`<segment>.<offset>.backup`)
 * - history: a timeline history file (`00000002.history`), written when a timeline begins
 */
export const walFileKinds = ['segment', 'partial', 'backup-label', 'history'] as const;
export type WalFileKind = (typeof walFileKinds)[number];

const walFilePatterns: ReadonlyArray<[WalFileKind, RegExp]> = [
  ['segment', /^[0-9A-F]{24}$/],
  ['partial', /^[0-9A-F]{24}\.partial$/],
  ['backup-label', /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/],
  ['history', /^[0-9A-F]{8}\.history$/],
];

/** The kind of a WAL archive file name; InvalidInput for anything else (a path, RECOVERYXLOG, a typo). */
export function walFileKind(name: string): WalFileKind {
  const kind = walFilePatterns.find(([, pattern]) => pattern.test(name))?.[0];
  if (kind === undefined) {
    throw new LifeboatError(
      'InvalidInput',
      `${JSON.stringify(name)} is not the name of a file PostgreSQL archives`,
      'Expected a WAL segment (24 hex digits), <segment>.partial, <segment>.<offset>.backup or <timeline>.history; ' +
        'use %p for wal-push and %f %p for wal-fetch',
    );
  }
  return kind;
}

export function walObjectKey(target: string, name: string): string {
  return `${target}/wal/${name}.zst`;
}

export function walRecordKey(target: string, name: string): string {
  return `${target}/wal/${name}.json`;
}

// ---------------------------------------------------------------------------------------------
// Where the archive lives

/**
 * Everything wal-push and wal-fetch need, without the rest of the config: the target's name (the
 * key prefix) and its repositories, in the target's order (wal-fetch prefers the first).
 */
export interface WalArchiveSpec {
  target: string;
  repositories: Array<{ name: string; repository: RepositoryConfig }>;
  compression: { level: number; threads: number };
}

/** The parts of the Lifeboat config a WAL archive is resolved from (Config satisfies it). */
export interface WalArchiveConfig {
  repositories: Record<string, RepositoryConfig>;
  targets: Record<string, { type: string; repositories: string[] }>;
  compression: { level: number; threads: number };
}

/** The WAL archive of a postgres target: TargetNotFound, or InvalidInput for a target of another type. */
export function walArchiveSpec(config: WalArchiveConfig, target: string, configSource = 'the config'): WalArchiveSpec {
  const targetConfig = targetNamed(config.targets, target, configSource, 'postgres');
  if (targetConfig.type !== 'postgres') {
    throw new LifeboatError(
      'InvalidInput',
      `target "${target}" is a ${targetConfig.type} target; WAL archiving is for postgres targets`,
      'Pass the name of a postgres target with --target or LIFEBOAT_TARGET',
    );
  }
  return {
    target,
    repositories: targetConfig.repositories.map((name) => {
      const repository = config.repositories[name];
      // The config schema already guarantees this; a clear message beats a crash if it ever changes.
      if (repository === undefined) throw new LifeboatError('InvalidConfig', `target "${target}" names unknown repository "${name}"`);
      return { name, repository };
    }),
    compression: config.compression,
  };
}

/** An opened WAL archive: backends ready (opening does no I/O; S3 credentials are read from env now). */
export interface WalArchive {
  target: string;
  repositories: Repository[];
  compression: { level: number; threads: number };
}

export function openWalArchive(spec: WalArchiveSpec, env: NodeJS.ProcessEnv = process.env): WalArchive {
  if (spec.repositories.length === 0) {
    throw new LifeboatError('InvalidConfig', `target "${spec.target}" has no repositories to archive WAL to`);
  }
  return {
    target: spec.target,
    repositories: spec.repositories.map(({ name, repository }) => new Repository(name, openBackend(repository, env))),
    compression: spec.compression,
  };
}

/** The target named by --target, else by LIFEBOAT_TARGET (archive_command and restore_command lines stay short). */
export function walTargetFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const target = flag ?? env.LIFEBOAT_TARGET;
  if (target === undefined || target === '') {
    throw new LifeboatError('InvalidInput', 'no target given', 'Pass --target <name> or set LIFEBOAT_TARGET in the environment of the PostgreSQL server');
  }
  return target;
}

// ---------------------------------------------------------------------------------------------
// The record

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const sizeBytes = z.number().int().nonnegative();

export const walRecordFormat = 'lifeboat-wal-1';

export const walRecordSchema = z.object({
  format: z.literal(walRecordFormat),
  target: z.string(),
  name: z.string(),
  kind: z.enum(walFileKinds),
  original: z.object({ sizeBytes, sha256: sha256Hex }),
  stored: z.object({
    object: z.string(),
    sizeBytes,
    sha256: sha256Hex,
    compression: z.object({ algorithm: z.literal('zstd'), level: z.number().int() }),
  }),
  archivedAt: z.string(),
});

export type WalRecord = z.output<typeof walRecordSchema>;

/** The record of name in repository, undefined when it has none; BackupCorrupt when it is unreadable. */
export async function readWalRecord(repository: Repository, target: string, name: string): Promise<WalRecord | undefined> {
  const key = walRecordKey(target, name);
  const raw = await readTextIfAny(repository.backend, key);
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  const result = walRecordSchema.safeParse(parsed);
  if (!result.success || result.data.name !== name || result.data.target !== target) {
    throw new LifeboatError(
      'BackupCorrupt',
      `the WAL archive record ${key} in repository "${repository.name}" (${repository.location}) is damaged or not a Lifeboat record`,
      'Compare it with the same record in the other repositories of the target; do not delete archived WAL that a restore may need',
    );
  }
  return result.data;
}

// ---------------------------------------------------------------------------------------------
// wal-push

export interface WalPushResult {
  name: string;
  kind: WalFileKind;
  sizeBytes: number;
  sha256: string;
  repositories: Array<{
    name: string;
    /** 'already-archived': an identical file was there (PostgreSQL retries a push whose success it did not record). */
    outcome: 'stored' | 'already-archived';
    storedBytes: number;
    storedSha256: string;
  }>;
}

/**
 * Archives the file at path (archive_command's %p, relative to the data directory, which is the
 * command's working directory) into every repository of the archive.
 *
 * Idempotent: a file already archived with the same sha256 is left alone, because PostgreSQL
 * pushes a file again when it crashed before recording the previous success. A different file
 * under an archived name fails with ObjectConflict before anything is written anywhere: it means
 * two clusters archive into one target (e.g. a restored copy still running the source's
 * archive_command), and overwriting would destroy the WAL a restore needs.
 */
export async function pushWal(archive: WalArchive, path: string): Promise<WalPushResult> {
  const name = basename(path);
  const kind = walFileKind(name);
  const source = resolve(path);
  const objectKey = walObjectKey(archive.target, name);

  // Every repository is asked before anything is written anywhere: a conflict or an unreachable
  // repository fails the push with all repositories unchanged.
  const existing = await Promise.all(
    archive.repositories.map(async (repository) => {
      try {
        const record = await readWalRecord(repository, archive.target, name);
        const object = record ? await repository.backend.head(objectKey) : undefined;
        return { repository, record, intact: record !== undefined && object?.sizeBytes === record.stored.sizeBytes };
      } catch (error) {
        throw naming(error, `looking for ${name} in repository "${repository.name}" (${repository.location})`);
      }
    }),
  );

  // The usual case, a file no repository has a record of: stored in one pass, the original's
  // sha256 taken from the bytes on their way into zstd. There is nothing to compare with, so
  // hashing first would only read the file twice. With a record anywhere (PostgreSQL pushing a
  // file again, or a repository to repair), the file is hashed first and compared, so that a
  // different file under an archived name fails before anything is written anywhere.
  if (existing.every(({ record }) => record === undefined)) {
    const stored = await storeOnce(archive, source, name, kind, existing.map(({ repository }) => repository));
    return {
      name,
      kind,
      sizeBytes: stored.record.original.sizeBytes,
      sha256: stored.record.original.sha256,
      repositories: existing.map(({ repository }) => ({
        name: repository.name,
        outcome: 'stored',
        storedBytes: stored.record.stored.sizeBytes,
        storedSha256: stored.record.stored.sha256,
      })),
    };
  }

  const original = await hashFile(source, name);
  const conflicts = existing.filter(({ record }) => record !== undefined && (record.original.sha256 !== original.sha256 || record.original.sizeBytes !== original.bytes));
  if (conflicts.length > 0) {
    const where = conflicts.map(({ repository, record }) => `"${repository.name}" holds sha256 ${record?.original.sha256} (${record?.original.sizeBytes} bytes, archived ${record?.archivedAt})`);
    throw new LifeboatError(
      'ObjectConflict',
      `refusing to archive ${source}: ${name} is already archived for target "${archive.target}" with different content; ` +
        `${where.join('; ')}; this file has sha256 ${original.sha256} (${original.bytes} bytes)`,
      'Two clusters are probably archiving into the same target (a restored or cloned cluster still running the original archive_command?): ' +
        'give each cluster its own target and keep the archived file, a restore may need it',
    );
  }

  // A record without its payload (or with a payload of the wrong size) is repaired by storing again.
  const missing = existing.filter(({ intact }) => !intact).map(({ repository }) => repository);
  const stored = missing.length > 0 ? await store(archive, source, name, kind, missing) : undefined;
  if (stored && (stored.record.original.sha256 !== original.sha256 || stored.record.original.sizeBytes !== original.bytes)) {
    // PostgreSQL does not change a file while it archives it; something else did. The payloads
    // just written have no record, so they do not count, and the next attempt overwrites them.
    throw changedWhileArchived(source, `sha256 ${original.sha256}, then ${stored.record.original.sha256}`);
  }
  await writeRecords(archive, name, stored, missing);

  return {
    name,
    kind,
    sizeBytes: original.bytes,
    sha256: original.sha256,
    repositories: existing.map(({ repository, record, intact }) =>
      intact && record
        ? { name: repository.name, outcome: 'already-archived', storedBytes: record.stored.sizeBytes, storedSha256: record.stored.sha256 }
        : { name: repository.name, outcome: 'stored', storedBytes: stored?.record.stored.sizeBytes ?? 0, storedSha256: stored?.record.stored.sha256 ?? '' },
    ),
  };
}

async function hashFile(path: string, name: string): Promise<{ sha256: string; bytes: number }> {
  try {
    return await sha256OfStream(createReadStream(path));
  } catch (error) {
    throw sourceProblem(error, path, name);
  }
}

function sourceProblem(error: unknown, path: string, name: string): unknown {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
    return new LifeboatError('SourceNotFound', `WAL file ${path} does not exist`, `archive_command must pass %p (the path of ${name} relative to the data directory)`);
  }
  return error;
}

function changedWhileArchived(source: string, how: string): Error {
  return new Error(`${source} changed while it was being archived (${how}); nothing was recorded, PostgreSQL will retry`);
}

/** What tells one version of a file from another without reading it: the identity archive_command and the archiver use too. */
function identity(info: BigIntStats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

/**
 * Stores a file no repository has a record of, in one read: stat, store (the hash of the
 * original is taken on the way into zstd, so the record describes exactly the bytes compressed),
 * stat again; the records are written only when the file is the same file, of the same size and
 * times, as before, and as many bytes were read as it holds. That is the meaning the check
 * against a hash taken first had ("the file changed while it was archived": not recorded, the
 * next attempt overwrites the payloads), without the second read of 16 MiB.
 */
async function storeOnce(archive: WalArchive, source: string, name: string, kind: WalFileKind, repositories: Repository[]): Promise<{ record: WalRecord }> {
  let handle: FileHandle;
  try {
    handle = await open(source, 'r');
  } catch (error) {
    throw sourceProblem(error, source, name);
  }
  let stored: { record: WalRecord };
  try {
    const before = await handle.stat({ bigint: true });
    stored = await store(archive, source, name, kind, repositories, handle.createReadStream({ autoClose: false, highWaterMark: 1 << 20 }));
    const after = await stat(source, { bigint: true }).catch(() => undefined);
    const read = BigInt(stored.record.original.sizeBytes);
    if (after === undefined || identity(after) !== identity(before) || read !== before.size) {
      throw changedWhileArchived(source, `${before.size} bytes before, ${read} read, ${after === undefined ? 'then gone' : `${after.size} bytes after`}`);
    }
  } finally {
    await handle.close();
  }
  await writeRecords(archive, name, stored, repositories);
  return stored;
}

/**
 * One pass: file -> sha256 -> zstd -> sha256 -> every repository that needs it at once. Payloads
 * are whole or absent (Backend.put is atomic); the records follow (writeRecords), only after
 * every payload is.
 */
async function store(
  archive: WalArchive,
  source: string,
  name: string,
  kind: WalFileKind,
  repositories: Repository[],
  input: Readable = createReadStream(source, { highWaterMark: 1 << 20 }),
): Promise<{ record: WalRecord }> {
  const objectKey = walObjectKey(archive.target, name);
  const sourceHash = new HashingPassThrough();
  // Settled before it returns, so no upload is still running when the command exits.
  const stored = await storeInEvery(repositories, [input, sourceHash, createCompressor(archive.compression)], {
    keyOf: () => objectKey,
    action: (repository) => `archiving ${name} into repository "${repository.name}" (${repository.location})`,
    // Durable with its record (writeRecords): see there.
    folderSyncedByNextPut: true,
  });

  return {
    record: {
      format: walRecordFormat,
      target: archive.target,
      name,
      kind,
      original: { sizeBytes: sourceHash.bytes, sha256: sourceHash.sha256 },
      stored: {
        object: basename(objectKey),
        sizeBytes: stored.sizeBytes,
        sha256: stored.sha256,
        compression: { algorithm: 'zstd', level: archive.compression.level },
      },
      archivedAt: new Date().toISOString(),
    },
  };
}

/**
 * The record, last: from now on the payload counts (a payload without its record is an
 * interrupted push).
 *
 * Syncs per push in an fs repository: the payload's data (fsync before its rename), the record's
 * data (likewise), and one fsync of the wal/ directory after the record's rename, which makes
 * both renames durable; the payload's put leaves its own directory fsync to it
 * (folderSyncedByNextPut). Durability holds: pushWal returns, and archive_command reports
 * success, only after this put returned in every repository, i.e. after both files' data and
 * both names are on disk. A crash before that leaves at worst a record whose payload name was
 * lost (seen as not intact, stored again by the next push, which PostgreSQL makes because it
 * was not told of success) or a payload without a record (an interrupted push); never a record
 * that points at torn data, because the payload's data is synced before either rename. Object
 * stores have no directory to sync; S3 ignores the option.
 */
async function writeRecords(archive: WalArchive, name: string, stored: { record: WalRecord } | undefined, repositories: Repository[]): Promise<void> {
  if (stored === undefined) return;
  const body = Buffer.from(`${JSON.stringify(stored.record, null, 2)}\n`);
  await Promise.all(repositories.map((repository) => repository.backend.put(walRecordKey(archive.target, name), Readable.from([body]))));
}

// ---------------------------------------------------------------------------------------------
// wal-fetch

export interface FetchWalOptions {
  /**
   * Told when a repository could not serve the file and another one did (a damaged or
   * unreachable copy should not go unnoticed). Default: a line on stderr, which PostgreSQL
   * copies into its log.
   */
  onWarning?: (message: string) => void;
}

/**
 * Restores the archived file name (restore_command's %f) to destination (%p), verifying both
 * checksums; 'missing' when the archive does not have it.
 *
 * PostgreSQL asks for files that do not exist as a matter of course (the next timeline's history
 * file, the segment after the end of the archive), so 'missing' is a normal, quick answer: no
 * retries, nothing written. It is given only when no repository has a record of the file and at
 * least one repository answered; a repository that cannot be reached is skipped, because a push
 * only succeeds once every repository holds the file.
 *
 * Everything else throws, and must not be reported to PostgreSQL as "not found" (see
 * restoreCommandExitCodes): a damaged copy (ChecksumMismatch, when no repository has an intact
 * one), or no repository answering. The destination is written atomically (temp file + rename in
 * its directory), and only after both checksums matched.
 */
export async function fetchWal(archive: WalArchive, name: string, destination: string, options: FetchWalOptions = {}): Promise<'fetched' | 'missing'> {
  walFileKind(name);
  const warn = options.onWarning ?? ((message: string) => process.stderr.write(`lifeboat wal-fetch: warning: ${message}\n`));
  const target = resolve(destination);
  const problems: Array<{ repository: string; message: string; damaged: boolean }> = [];
  let recorded = false;
  let answered = false;

  for (const repository of archive.repositories) {
    let record: WalRecord | undefined;
    try {
      record = await readWalRecord(repository, archive.target, name);
      answered = true;
    } catch (error) {
      problems.push({ repository: repository.name, message: messageOf(error), damaged: isDamage(error) });
      if (isDamage(error)) recorded = true; // a record exists, even if it is unreadable
      continue;
    }
    if (record === undefined) continue;
    recorded = true;
    try {
      await download(repository, archive.target, record, target);
    } catch (error) {
      problems.push({ repository: repository.name, message: messageOf(error), damaged: isDamage(error) });
      continue;
    }
    for (const problem of problems) warn(`repository "${problem.repository}" could not serve ${name}: ${problem.message}; fetched it from "${repository.name}" instead`);
    return 'fetched';
  }

  const described = problems.map((problem) => `"${problem.repository}": ${problem.message}`).join('; ');
  if (problems.some((problem) => problem.damaged)) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `no intact copy of ${name} in the WAL archive of target "${archive.target}": ${described}`,
      'Nothing was written. Recovery must not continue past a damaged WAL file: restore an intact copy into the repository, or choose an earlier recovery target',
    );
  }
  if (recorded) {
    throw new Error(`${name} is archived for target "${archive.target}" but could not be fetched: ${described}`);
  }
  if (!answered) {
    throw new Error(`cannot tell whether ${name} is archived for target "${archive.target}": no repository answered: ${described}`);
  }
  for (const problem of problems) warn(`repository "${problem.repository}" did not answer for ${name} (${problem.message}); another repository says it is not archived`);
  return 'missing';
}

/**
 * Downloads and decodes in one pass (stored bytes -> sha256 -> `zstd -d`, which writes a temp file
 * beside the destination itself), checks the stored sha256, hashes the decoded file (positional
 * reads into one buffer) and checks the original's, and only then renames it into place: nothing
 * is handed over unchecked. Damage is reported as a checksum mismatch, not as whatever the decoder
 * tripped over: when zstd fails, the stored object is read once more (only then) and compared with
 * its record. Measured against the two passes before (download to a temp file, then decode it
 * through Node): 16 segments fetched 2 at a time, 1.44-1.68 s -> 0.83-1.02 s, CPU -25%.
 */
async function download(repository: Repository, target: string, record: WalRecord, destination: string): Promise<void> {
  const where = `${record.name} in repository "${repository.name}" (${repository.location})`;
  const key = walObjectKey(target, record.name);
  const decoded = `${destination}.lifeboat-${randomBytes(6).toString('hex')}`;
  const storedMismatch = (found: { sha256: string; bytes: number }) =>
    new LifeboatError(
      'ChecksumMismatch',
      `stored ${where} has sha256 ${found.sha256} (${found.bytes} bytes); its record says ${record.stored.sha256} (${record.stored.sizeBytes} bytes)`,
    );
  const differs = (found: { sha256: string; bytes: number }, expected: { sha256: string; sizeBytes: number }) => found.sha256 !== expected.sha256 || found.bytes !== expected.sizeBytes;
  try {
    const storedHash = new HashingPassThrough();
    try {
      await pipeline(await repository.backend.get(key), storedHash, createDecompressorToFile(decoded));
    } catch (error) {
      if (isDamage(error)) {
        const stored = await sha256OfStream(await repository.backend.get(key)).catch(() => undefined);
        if (stored !== undefined && differs(stored, record.stored)) throw storedMismatch(stored);
      }
      throw error;
    }
    const stored = { sha256: storedHash.sha256, bytes: storedHash.bytes };
    if (differs(stored, record.stored)) throw storedMismatch(stored);
    const originalHash = await sha256OfFile(decoded);
    if (differs(originalHash, record.original)) {
      throw new LifeboatError(
        'ChecksumMismatch',
        `${where} decodes to sha256 ${originalHash.sha256} (${originalHash.bytes} bytes); its record says ${record.original.sha256} (${record.original.sizeBytes} bytes)`,
      );
    }
    await rename(decoded, destination);
  } finally {
    await unlink(decoded).catch(() => undefined);
  }
}

/** Errors that say the archive's content is wrong (as opposed to a repository being unreachable). */
function isDamage(error: unknown): boolean {
  return error instanceof LifeboatError && error.category === 'data';
}

/**
 * Says which repository and step a plain error (network, I/O) came from: PostgreSQL's log shows
 * only this message. Typed errors already say what is wrong and are passed on unchanged.
 */
function naming(error: unknown, what: string): unknown {
  if (error instanceof LifeboatError || !(error instanceof Error)) return error;
  return new Error(`${what} failed: ${error.message}`, { cause: error });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------
// The commands

export interface WalPushOptions {
  configPath: string;
  target: string;
  /** archive_command's %p. */
  path: string;
  env?: NodeJS.ProcessEnv;
}

/** `lifeboat wal-push <path> [--target t]`: loads the config, resolves the target's archive, pushes. */
export async function walPush(options: WalPushOptions): Promise<WalPushResult> {
  const env = options.env ?? process.env;
  const config = loadConfig(options.configPath);
  return pushWal(openWalArchive(walArchiveSpec(config, options.target, options.configPath), env), options.path);
}

export interface WalFetchOptions extends FetchWalOptions {
  configPath: string;
  target: string;
  /** restore_command's %f. */
  name: string;
  /** restore_command's %p. */
  destination: string;
  env?: NodeJS.ProcessEnv;
}

/** `lifeboat wal-fetch <name> <destination> [--target t]`. */
export async function walFetch(options: WalFetchOptions): Promise<'fetched' | 'missing'> {
  const env = options.env ?? process.env;
  const config = loadConfig(options.configPath);
  const archive = openWalArchive(walArchiveSpec(config, options.target, options.configPath), env);
  return fetchWal(archive, options.name, options.destination, options.onWarning ? { onWarning: options.onWarning } : {});
}


// ---------------------------------------------------------------------------------------------
// Archiver status

/** Anything that runs a query: a pg Client, PoolClient or Pool. */
export interface Queryable {
  query(text: string): Promise<{ rows: unknown[] }>;
}

export interface ArchiveStatus {
  /** Files archived since the statistics were reset. */
  archivedCount: number;
  lastArchivedWal: string | null;
  /** ISO 8601. */
  lastArchivedAt: string | null;
  /** Failed archive_command runs since the statistics were reset (each retry counts). */
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedAt: string | null;
  statsResetAt: string | null;
  /** The most recent attempt failed: archiving is stuck until archive_command succeeds again. */
  failing: boolean;
  inRecovery: boolean;
  /** The segment the server is writing now; null during recovery (no WAL of its own). */
  currentWal: string | null;
  walSegmentSizeBytes: number;
  /**
   * How far archiving is behind: completed segments not archived yet, and WAL bytes written since
   * the end of the last archived segment (what a restore from the archive alone would lose).
   * Null when it cannot be told: nothing archived yet, during recovery, or when the last archived
   * file is a history file or a backup label (they do not mark the archive's position).
   */
  lag: { segments: number; bytes: number } | null;
}

interface ArchiverRow {
  archived_count: string;
  last_archived_wal: string | null;
  last_archived_time: Date | null;
  failed_count: string;
  last_failed_wal: string | null;
  last_failed_time: Date | null;
  stats_reset: Date | null;
  in_recovery: boolean;
  current_wal: string | null;
  current_lsn_bytes: string | null;
  wal_segment_size: string;
}

const archiveStatusQuery = `
  SELECT a.archived_count::text AS archived_count, a.last_archived_wal, a.last_archived_time,
         a.failed_count::text AS failed_count, a.last_failed_wal, a.last_failed_time, a.stats_reset,
         pg_is_in_recovery() AS in_recovery,
         CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal,
         CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text END AS current_lsn_bytes,
         (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS wal_segment_size
    FROM pg_stat_archiver a`;

/** What the server's archiver has done (pg_stat_archiver) and how far behind it is. Needs no privileges. */
export async function archiveStatus(client: Queryable): Promise<ArchiveStatus> {
  const row = (await client.query(archiveStatusQuery)).rows[0] as ArchiverRow | undefined;
  if (row === undefined) throw new Error('pg_stat_archiver returned no row');
  const iso = (value: Date | null): string | null => (value instanceof Date ? value.toISOString() : null);
  const segmentSize = BigInt(row.wal_segment_size);
  const lastArchivedAt = iso(row.last_archived_time);
  const lastFailedAt = iso(row.last_failed_time);
  return {
    archivedCount: Number(row.archived_count),
    lastArchivedWal: row.last_archived_wal,
    lastArchivedAt,
    failedCount: Number(row.failed_count),
    lastFailedWal: row.last_failed_wal,
    lastFailedAt,
    statsResetAt: iso(row.stats_reset),
    failing: lastFailedAt !== null && (lastArchivedAt === null || (row.last_failed_time?.getTime() ?? 0) > (row.last_archived_time?.getTime() ?? 0)),
    inRecovery: row.in_recovery,
    currentWal: row.current_wal,
    walSegmentSizeBytes: Number(segmentSize),
    lag: archiveLag(row.last_archived_wal, row.current_lsn_bytes, segmentSize),
  };
}

function archiveLag(lastArchived: string | null, currentLsnBytes: string | null, segmentSize: bigint): ArchiveStatus['lag'] {
  if (lastArchived === null || currentLsnBytes === null) return null;
  const kind = walFilePatterns.find(([, pattern]) => pattern.test(lastArchived))?.[0];
  if (kind !== 'segment' && kind !== 'partial') return null;
  // A segment name is timeline (8 hex), then the segment number split into a "log" (8 hex) of
  // 2^32 bytes and a segment within it (8 hex).
  const segmentsPerLog = 0x1_0000_0000n / segmentSize;
  const archivedSegment = BigInt(`0x${lastArchived.slice(8, 16)}`) * segmentsPerLog + BigInt(`0x${lastArchived.slice(16, 24)}`);
  const current = BigInt(currentLsnBytes);
  const currentSegment = current / segmentSize;
  const segments = currentSegment - archivedSegment - 1n;
  const bytes = current - (archivedSegment + 1n) * segmentSize;
  return { segments: Number(segments > 0n ? segments : 0n), bytes: Number(bytes > 0n ? bytes : 0n) };
}
