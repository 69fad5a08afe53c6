import { Context, log } from '@temporalio/activity';
import Database from 'better-sqlite3';
import { chmod, chown, link, mkdir, rename, rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors.js';
import { createDecompressorToFile } from '../../pipeline/compress.js';
import { createDecryptor, decryptionKeyFor } from '../../pipeline/encrypt.js';
import { HashingPassThrough, sha256OfFile, sha256OfGrowingFile, sha256OfOpenFile, sha256OfStream } from '../../pipeline/hash.js';
import { syncWhileGrowing } from '../../pipeline/growing-file.js';
import { fsyncPath, wholeFileDescriptor } from '../../pipeline/local-file.js';
import type { SqliteManifest as Manifest } from '../../repository/manifest.js';
import { checkDatabase, type CheckKind } from '../../sqlite/check.js';
import { isDamage } from '../../sqlite/damage.mjs';
import { countBytes, readOffsetOf, startProgress, type ProgressReporter } from '../../../activities/progress.js';
import type { Repository } from '../../repository/repository.js';
import { readFromFirstGoodCopy } from '../../repository/copies.js';
import { openRepositories } from '../../../activities/repositories.js';
import type { ResolvedSqliteTarget } from './index.js';

export interface FetchInput {
  target: ResolvedSqliteTarget;
  manifest: Manifest;
  /** Where the verified database ends up; written as <destination>.partial first. */
  destination: string;
  /**
   * restore --into: the destination must be an absolute path that names no file yet (nor any
   * journal file of one), and is not the live database; fail with InvalidInput otherwise.
   */
  refuseExisting?: boolean;
  /**
   * Leave the sha256 of the decoded database and its last flush to disk to the checkIntegrity step
   * that follows, given `sameAs`: it runs both on the other core while SQLite checks the file, so
   * neither adds to the RTO. This step then proves the stored copy (its sha256 and zstd's content
   * checksum) and the decoded size; until the check step ends, nothing uses the file.
   * A flag, though every runbook now sets it: a task scheduled by an older runbook, whose check
   * step does not verify, must still get the whole verification here during a rolling deployment.
   */
  verifyInCheck?: boolean;
}

export interface FetchedBackup {
  path: string;
  repository: string;
  sizeBytes: number;
  /**
   * The destination already held this backup, left by an attempt of this step that died after
   * publishing it (refuseExisting only). It cannot be told from a copy that was there before the
   * run, so a failing run leaves it where it is.
   */
  adopted?: true;
}

const statIfAny = (path: string) => stat(path).catch(() => undefined);
const exists = async (path: string) => (await statIfAny(path)) !== undefined;
/** Two names of one file (hard links, or the same path spelled twice). */
const sameFile = (a: Stats | undefined, b: Stats | undefined) => a !== undefined && b !== undefined && a.ino === b.ino && a.dev === b.dev;

/** Whether the file at path (whose stat is info) is byte for byte the database a backup was made from. */
async function holdsDatabaseOf(path: string, info: Stats, manifest: Manifest): Promise<boolean> {
  if (!info.isFile() || info.size !== manifest.source.sizeBytes) return false;
  const { sha256 } = await sha256OfFile(path);
  return sha256 === manifest.source.sha256;
}

/**
 * restore --into: refuses a destination that is relative, is the live database, or is taken by a
 * file or by a journal file SQLite would apply to whatever database appears there. An earlier
 * attempt of this very step may have published the file and then lost the worker: a destination
 * that holds exactly this backup is adopted.
 */
async function refuseOccupied(destination: string, livePath: string, manifest: Manifest): Promise<FetchedBackup | undefined> {
  const refuse = (what: string) => new LifeboatError('InvalidInput', what, 'Choose a path that does not exist yet; nothing was changed');
  if (!isAbsolute(destination)) throw refuse(`--into ${destination} is not an absolute path (it would be relative to the worker's directory)`);
  const [into, live] = await Promise.all([statIfAny(destination), statIfAny(livePath)]);
  if (resolve(destination) === resolve(livePath) || sameFile(into, live)) {
    throw new LifeboatError('InvalidInput', `--into ${destination} is the live database of target "${manifest.target}"`, 'Restore in place without --into (it keeps a safety copy), or choose another path; nothing was changed');
  }
  for (const journal of sidecars(destination)) {
    if (await exists(journal)) throw refuse(`${journal} exists: it belongs to another database, and SQLite would apply it to the restored one`);
  }
  if (!into) return undefined;
  if (await holdsDatabaseOf(destination, into, manifest)) {
    log.info('destination already holds this backup (an earlier attempt published it)', { backupId: manifest.id, destination });
    await rm(`${destination}.partial`, { force: true });
    return { path: destination, repository: 'already in place', sizeBytes: manifest.source.sizeBytes, adopted: true };
  }
  throw refuse(`${destination} already exists`);
}

/**
 * Downloads one backup and decodes it beside the destination, trying the target's repositories in
 * order: a damaged copy in one is no reason to give up while another holds a good one. Only a
 * download whose hashes both match the manifest becomes the destination; anything else leaves no
 * file behind.
 */
export async function fetchBackup(input: FetchInput, env: NodeJS.ProcessEnv): Promise<FetchedBackup> {
  const { target, manifest, destination } = input;
  const object = manifest.objects[0]!;
  if (input.refuseExisting) {
    const adopted = await refuseOccupied(destination, target.path, manifest);
    if (adopted) return adopted;
  }
  const key = await decryptionKeyFor(target, manifest);

  const { value, repository } = await readFromFirstGoodCopy(
    openRepositories(target, env),
    { target: target.name, id: manifest.id },
    async (repository) => {
      const objectKey = repository.objectKey(manifest.target, manifest.id, object.name);
      // Nothing to download is a missing copy, told before the destination is touched.
      if (!(await repository.backend.head(objectKey))) {
        throw new LifeboatError('ObjectNotFound', `repository "${repository.name}" does not hold ${object.name} of backup ${manifest.id}`);
      }
      return decodeInto(repository, objectKey, input, key);
    },
    {
      signal: Context.current().cancellationSignal,
      onPassedOver: (problem) => log.warn('copy passed over, trying the next repository', { repository: problem.repository, kind: problem.kind, error: problem.error.message }),
    },
  );
  log.info('backup fetched and verified', { backupId: manifest.id, repository: repository.name, destination });
  return value;
}

interface Decoded {
  sha256: string;
  bytes: number;
}

/**
 * One download from one repository, decoded into <destination>.partial in a single pass and renamed
 * into place only when the stored bytes and the decoded database both match the manifest and the
 * file is on disk. A damaged stored object is reported as ChecksumMismatch (the cause) rather than
 * as whatever the decoder tripped over.
 */
async function decodeInto(repository: Repository, objectKey: string, input: FetchInput, key: Buffer | undefined): Promise<FetchedBackup> {
  const { manifest, destination } = input;
  const object = manifest.objects[0]!;
  await mkdir(dirname(destination), { recursive: true });
  const partial = `${destination}.partial`;
  const progress = startProgress('download', object.sizeBytes);
  const inCheck = input.verifyInCheck === true;
  // A cancelled run stops the download at once rather than after the last byte.
  const signal = Context.current().cancellationSignal;
  const stored: StoredCopy = {
    matches: (hash) => hash.sha256 === object.sha256 && hash.bytes === object.sizeBytes,
    damaged: (hash) =>
      new LifeboatError(
        'ChecksumMismatch',
        `${object.name} of backup ${manifest.id} in repository "${repository.name}" does not match its manifest: ` +
          `sha256 ${hash.sha256} (${hash.bytes} bytes), expected ${object.sha256} (${object.sizeBytes} bytes)`,
        'The stored copy is damaged; restore another backup or copy it from another repository. The target was not touched',
      ),
  };
  try {
    // A partial file left by an attempt that died mid-way is ours to replace (zstd will not).
    await rm(partial, { force: true });
    const body = await repository.backend.get(objectKey);
    const localFd = key ? undefined : wholeFileDescriptor(body);
    const decoded =
      localFd === undefined
        ? await decodeStream(body, { repository, objectKey, partial, key, progress, stored, inCheck, signal })
        : await decodeLocalFile(body, localFd, { partial, progress, stored, inCheck, signal });
    // zstd has checked its frame checksum; the sha256 of the decoded file against the snapshot's
    // is the end-to-end proof, here or in the check step.
    if ((decoded.sha256 !== undefined && decoded.sha256 !== manifest.source.sha256) || decoded.bytes !== manifest.source.sizeBytes) {
      throw new LifeboatError(
        'ChecksumMismatch',
        `the database decoded from backup ${manifest.id} has ${decoded.bytes} bytes${decoded.sha256 === undefined ? '' : ` and sha256 ${decoded.sha256}`}, ` +
          `expected ${manifest.source.sizeBytes} bytes and sha256 ${manifest.source.sha256}`,
        'Restore another backup. The target was not touched',
      );
    }
    await publish(partial, destination, input.refuseExisting === true);
    if (!inCheck) await fsyncPath(dirname(destination));
    return { path: destination, repository: repository.name, sizeBytes: decoded.bytes };
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  } finally {
    progress.stop();
  }
}

/**
 * Gives the decoded file its name. With refuseExisting a link, which fails rather than replace a
 * file that appeared at the destination during the download; the partial name goes after it.
 */
async function publish(partial: string, destination: string, refuseExisting: boolean): Promise<void> {
  if (!refuseExisting) {
    await rename(partial, destination);
    return;
  }
  await link(partial, destination).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
    throw new LifeboatError('InvalidInput', `${destination} appeared while the backup was downloaded`, 'Choose a path that does not exist yet; nothing was changed');
  });
  await rm(partial, { force: true });
}

/** The decoded file: its size, and its sha256 unless the check step computes it (verifyInCheck). */
interface DecodedFile {
  sha256?: string;
  bytes: number;
}

/** The size of a file once its writer has finished (rejects with the writer's failure). */
async function sizeOnceWritten(path: string, written: Promise<unknown>): Promise<DecodedFile> {
  await written;
  return { bytes: (await stat(path)).size };
}

/**
 * With the check step to come (inCheck), the whole flush happens there, beside SQLite's check,
 * which takes longer than the disk needs; syncing while zstd writes would only make the fetch
 * wait for the disk. Otherwise the file is flushed as it grows and fully synced at the end.
 */
function flushWhileDecoding(path: string, decoded: Promise<unknown>, inCheck: boolean): Promise<void> {
  return inCheck ? decoded.then(() => undefined) : syncWhileGrowing(path, decoded);
}

interface StoredCopy {
  matches(hash: Decoded): boolean;
  damaged(hash: Decoded): LifeboatError;
}

/**
 * The stored object is a local file (fs repository, no encryption): zstd reads it itself and writes
 * the database itself, so no byte of either passes through a pipe from this process, and zstd never
 * waits for this process. Meanwhile the stored object is hashed through the same descriptor
 * (positioned reads). A stored hash that does not match stops zstd at once. Without inCheck the
 * decoded file is hashed and flushed as it grows, and this resolves with its hash once it is on
 * disk (the caller compares it with the manifest); with inCheck both are left to the check step
 * (see flushWhileDecoding) and this resolves with its size.
 */
async function decodeLocalFile(
  body: Readable,
  fd: number,
  context: { partial: string; progress: ProgressReporter; stored: StoredCopy; inCheck: boolean; signal: AbortSignal },
): Promise<DecodedFile> {
  const { partial, progress, stored, inCheck, signal } = context;
  const zstd = createDecompressorToFile(partial, { inputFd: fd });
  const stop = () => zstd.destroy(signal.reason as Error);
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  try {
    progress.sampleWith(() => readOffsetOf(zstd.pid));
    // Nothing reads zstd's (empty) readable side: its end is never emitted, only its finish.
    const decodedOk = finished(zstd, { readable: false });
    const decoding = inCheck ? sizeOnceWritten(partial, decodedOk) : sha256OfGrowingFile(partial, decodedOk);
    const durable = flushWhileDecoding(partial, decodedOk, inCheck);
    // Their errors are the decoder's, reported through decodedOk; each is awaited below.
    decoding.catch(() => undefined);
    durable.catch(() => undefined);
    const storedHash = sha256OfOpenFile(fd).then((hash) => {
      if (!stored.matches(hash)) zstd.destroy(stored.damaged(hash));
      return hash;
    });
    const [hash, decodeError] = await Promise.all([storedHash, decodedOk.then(() => undefined, (error: unknown) => error)]);
    progress.sampleWith(() => undefined);
    progress.update(hash.bytes);
    if (!stored.matches(hash)) throw stored.damaged(hash);
    if (decodeError !== undefined) throw decodeError;
    progress.setPhase('verify');
    const [decoded] = await Promise.all([decoding, durable]);
    return decoded;
  } finally {
    signal.removeEventListener('abort', stop);
    // zstd must be gone before the caller removes the partial file; destroying waits for its exit.
    zstd.destroy();
    await finished(zstd).catch(() => undefined);
    body.destroy();
  }
}

/**
 * Any other stored object (S3, or encrypted): streamed through this process into zstd, hashed on
 * the way; the decoded file is handled as in decodeLocalFile. When decoding fails, the stored
 * object is hashed again to tell a damaged copy from a decoder failure.
 */
async function decodeStream(
  body: Readable,
  context: {
    repository: Repository;
    objectKey: string;
    partial: string;
    key: Buffer | undefined;
    progress: ProgressReporter;
    stored: StoredCopy;
    inCheck: boolean;
    signal: AbortSignal;
  },
): Promise<DecodedFile> {
  const { repository, objectKey, partial, key, progress, stored, inCheck, signal } = context;
  const storedHash = new HashingPassThrough();
  const stages: Duplex[] = [storedHash, countBytes(progress)];
  if (key) stages.push(createDecryptor(key));
  let decoding: Promise<DecodedFile>;
  let durable: Promise<void>;
  try {
    // zstd writes the decoded database itself: the gigabyte never passes through this process.
    const decoded = pipeline([body, ...stages, createDecompressorToFile(partial)], { signal });
    decoding = inCheck ? sizeOnceWritten(partial, decoded) : sha256OfGrowingFile(partial, decoded);
    durable = flushWhileDecoding(partial, decoded, inCheck);
    // The pipeline's own error is the one reported.
    decoding.catch(() => undefined);
    durable.catch(() => undefined);
    await decoded;
  } catch (decodeError) {
    if (signal.aborted) throw decodeError;
    const rehashed = await sha256OfStream(await repository.backend.get(objectKey));
    if (!stored.matches(rehashed)) throw stored.damaged(rehashed);
    throw decodeError;
  }
  const hash = { sha256: storedHash.sha256, bytes: storedHash.bytes };
  if (!stored.matches(hash)) throw stored.damaged(hash);
  progress.setPhase('verify');
  const [decoded] = await Promise.all([decoding, durable]);
  return decoded;
}

export interface CheckInput {
  path: string;
  kind: CheckKind;
  /**
   * The database fetchBackup decoded with verifyInCheck: while SQLite checks it, it is hashed
   * against these and flushed to disk with its directory entry, so the step ends with the file
   * verified end to end and durable.
   */
  sameAs?: { sha256: string; sizeBytes: number };
}

/**
 * Runs the SQLite check on a file (in a thread, heartbeating); throws IntegrityCheckFailed listing
 * the first problems. With sameAs, also ChecksumMismatch when the file is no longer the one
 * fetched, which a crash of the machine before its flush can cause.
 */
export async function checkIntegrity(input: CheckInput): Promise<{ ok: true; durationMs: number }> {
  const progress = startProgress(input.kind, 0);
  try {
    const started = Date.now();
    // The hash takes the other core while SQLite's check takes one. Both are awaited, so no thread
    // still reads the file when the step ends; a failed hash is the cause of whatever the check
    // reports, so its error wins.
    const [verified, checked] = await Promise.allSettled([
      input.sameAs ? verifyAndFlush(input.path, input.sameAs) : Promise.resolve(),
      checkDatabase(input.path, input.kind, { signal: Context.current().cancellationSignal }),
    ]);
    if (verified.status === 'rejected') throw verified.reason;
    if (checked.status === 'rejected') throw checked.reason;
    return { ok: true, durationMs: Date.now() - started };
  } finally {
    progress.stop();
  }
}

/**
 * Proves a fetched file is the database that was backed up, then makes it durable with its
 * directory entry. Run after the flush could have been lost, the hash is also what catches a file
 * a machine crash left short or zero-filled: SQLite's checks pass an empty file as a valid database.
 */
export async function verifyAndFlush(path: string, expected: { sha256: string; sizeBytes: number }): Promise<void> {
  // The flush runs beside the hash (both are needed; neither changes what the other sees).
  const flushed = fsyncPath(path);
  flushed.catch(() => undefined); // awaited below, after a mismatch has been reported
  const found = await sha256OfFile(path);
  if (found.sha256 !== expected.sha256 || found.bytes !== expected.sizeBytes) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `${path} is not the database that was backed up: sha256 ${found.sha256} (${found.bytes} bytes), ` +
        `expected ${expected.sha256} (${expected.sizeBytes} bytes)`,
      'Start the run again (a machine that stopped before the file reached the disk leaves it so); if it fails again, restore another backup. The live database was not touched',
    );
  }
  await flushed;
  await fsyncPath(dirname(path));
}

export interface SwapInput {
  livePath: string;
  stagingPath: string;
  safetyPath: string;
}

export interface SwapResult {
  /** The previous database, kept whole; null when there was no live database. */
  safetyPath: string | null;
  swapped: true;
}

/** The journal files that belong with a database file's bytes (-shm is rebuilt from the WAL). */
const journalSuffixes = ['-wal', '-journal'] as const;

/** -wal and -shm belong to one database file; a stale -wal applied to another file corrupts it. */
const sidecars = (path: string) => [...journalSuffixes, '-shm'].map((suffix) => `${path}${suffix}`);

/**
 * Folds the live database's WAL into its main file so that file alone is the whole database.
 * Fails while another process holds a write lock: restore needs the application stopped. A live
 * database too damaged for SQLite to open, the usual reason to restore, stays as it is: its
 * journal files then go with it to the safety name (see swapIntoPlace).
 */
function foldWal(path: string): void {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 10_000 });
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    if (result && result.busy !== 0) {
      throw new Error(`${path} is busy (another connection holds it); stop the application (hooks.stop) and retry`);
    }
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!isDamage(code)) throw error;
    log.warn('the live database is damaged; it is kept as it is, with its journal files', { path, code, error: (error as Error).message });
  } finally {
    db?.close();
  }
}

async function removeIfEmpty(path: string): Promise<void> {
  const info = await statIfAny(path);
  if (info?.size === 0) await rm(path, { force: true });
}

/** Moves (or, keepSource, links) what exists of one database's journal files to another's names. */
async function carryJournals(from: string, to: string, options: { keepSource: boolean; suffixes?: ReadonlyArray<string> }): Promise<void> {
  for (const suffix of options.suffixes ?? journalSuffixes) {
    const [source, target] = [`${from}${suffix}`, `${to}${suffix}`];
    if (!(await exists(source)) || (await exists(target))) continue;
    if (options.keepSource) await link(source, target);
    else await rename(source, target);
  }
}

/**
 * Puts the verified staging file in place of the live database. The live path always names either
 * the old database or the new one: the old one is hard-linked to the safety path, then one rename
 * replaces it. Idempotent: run again after a crash, it finishes the swap or sees it is done.
 */
export async function swapIntoPlace(input: SwapInput): Promise<SwapResult> {
  const { livePath, stagingPath, safetyPath } = input;
  if (!(await exists(stagingPath))) {
    // Done by an earlier attempt, unless the live path still names the very file kept as safety copy.
    const [live, safety] = await Promise.all([statIfAny(livePath), statIfAny(safetyPath)]);
    if (live && !sameFile(live, safety)) {
      await fsyncPath(dirname(livePath));
      return { safetyPath: safety ? safetyPath : null, swapped: true };
    }
    throw new Error(`the staged database ${stagingPath} is gone and ${livePath} ${live ? 'is still the old database' : 'does not exist'}; the restore must fetch again`);
  }
  let kept: string | null = null;
  if (await exists(livePath)) {
    await takeOwnerAndModeOf(livePath, stagingPath);
    // The safety name belongs to this run alone (the workflow puts its run id in it), so an
    // existing one was linked by an attempt of this very swap that died before the rename.
    if (!(await exists(safetyPath))) {
      // SQLite removes the WAL of a file it cannot read when it closes it: a second name keeps it.
      // After a fold it is empty (the checkpoint truncates it) and goes.
      // (Not a rollback journal: SQLite rolls a hot one back into the file, which is then whole.)
      await carryJournals(livePath, safetyPath, { keepSource: true, suffixes: ['-wal'] });
      foldWal(livePath);
      await removeIfEmpty(`${safetyPath}-wal`);
      await link(livePath, safetyPath);
    }
    kept = safetyPath;
    await carryJournals(livePath, safetyPath, { keepSource: false });
  }
  for (const sidecar of [...sidecars(livePath), ...sidecars(stagingPath)]) await rm(sidecar, { force: true });
  await rename(stagingPath, livePath);
  await fsyncPath(dirname(livePath));
  log.info('database swapped', { livePath, safetyPath: kept });
  return { safetyPath: kept, swapped: true };
}

/**
 * The restored database gets the live one's permissions and owner, so the application can still
 * open it (a worker running as root would otherwise leave a root-owned file). A worker that may
 * not give it that owner stops here, before anything is swapped.
 */
async function takeOwnerAndModeOf(livePath: string, stagingPath: string): Promise<void> {
  const live = await stat(livePath);
  await chmod(stagingPath, live.mode & 0o7777);
  const staged = await stat(stagingPath);
  if (staged.uid !== live.uid || staged.gid !== live.gid) await giveOwner(stagingPath, livePath, live);
  // Metadata too must be on disk before the rename, or a crash could bring back the old owner.
  await fsyncPath(stagingPath);
}

async function giveOwner(stagingPath: string, livePath: string, live: { uid: number; gid: number }): Promise<void> {
  await chown(stagingPath, live.uid, live.gid).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPERM') throw error;
    throw new LifeboatError(
      'InvalidConfig',
      `cannot give the restored database the owner of ${livePath} (uid ${live.uid}, gid ${live.gid}): the worker runs as uid ${process.getuid?.() ?? '?'}`,
      'Run the worker as the database\'s owner or as root; nothing was swapped, the live database is untouched',
      { cause: error },
    );
  });
}

/** Compensation: put the safety copy back (same atomic rename), keeping the safety copy itself. */
export async function rollbackSwap(input: { livePath: string; safetyPath: string | null }): Promise<{ restored: boolean }> {
  const { livePath, safetyPath } = input;
  if (!safetyPath || !(await exists(safetyPath))) return { restored: false };
  const back = `${livePath}.lifeboat-rollback`;
  await rm(back, { force: true });
  await link(safetyPath, back);
  for (const sidecar of sidecars(livePath)) await rm(sidecar, { force: true });
  await rename(back, livePath);
  // After the rename: until then the restored database is live, and no old journal may sit beside it.
  await carryJournals(safetyPath, livePath, { keepSource: true });
  await fsyncPath(dirname(livePath));
  log.warn('restore rolled back to the safety copy', { livePath, safetyPath });
  return { restored: true };
}

/** Removes files and their SQLite sidecars; missing ones are fine (idempotent). */
export async function removeFiles(input: { paths: string[] }): Promise<{ removed: number }> {
  let removed = 0;
  for (const path of input.paths) {
    for (const candidate of [path, `${path}.partial`, ...sidecars(path)]) {
      if (await exists(candidate)) {
        await rm(candidate, { force: true, recursive: true });
        removed++;
      }
    }
  }
  return { removed };
}
