import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The asynchronous archiver's spool (archive.mode "async"): how `lifeboat archiver` tells
 * archive_command (bin/lifeboat-wal-push, a POSIX shell script) that a WAL file is done.
 *
 *   <spoolDir>/<target>/archiver.heartbeat   "<pid> <waitSeconds>"; its mtime is renewed every second while the archiver runs
 *   <spoolDir>/<target>/archived/<name>      the mark of a file the archiver made durable in every repository (or dropped)
 *   <spoolDir>/<target>/failed/<name>        why the archiver's last attempt at <name> failed (it retries)
 *   <spoolDir>/<target>/status.json          the archiver's queue and counters (as its metrics serve them; for a look by hand)
 *
 * A mark is one line, read by the shell script with `read`:
 *
 *   lifeboat-archived-1 <archived|dropped> <identity> <sha256> <archivedAt>
 *
 * where identity is `<dev>:<inode>:<size>:<mtime>:<ctime>` of pg_wal/<name> as the archiver found
 * it before and after storing it (stat -c '%d:%i:%s:%.9Y:%.9Z' prints the same). archive_command
 * trusts a mark only when the file PostgreSQL hands it has that identity: the very file, unchanged
 * since the archiver hashed and stored it (any write changes mtime and ctime, a recycled segment
 * has another name, another cluster another device or inode). Checking the identity costs one
 * stat; hashing 16 MiB again would cost more than pgBackRest's whole per-segment budget.
 *
 * Invariant: a mark saying "archived" is written only after every repository of the target holds
 * the file and its record durably (wal-push's guarantee), and it is renamed into place whole, so
 * no crash can leave a mark for a file that is not durable. Losing a mark (a crash before it
 * reached the disk) only makes archive_command push the file again, which is idempotent.
 */

export const markFormat = 'lifeboat-archived-1';

export type MarkStatus = 'archived' | 'dropped';

/** What a file is on disk: enough to tell that it is the same, unchanged file later. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface ArchiveMark {
  status: MarkStatus;
  identity: string;
  sha256: string;
  archivedAt: string;
}

export function spoolDirOf(spoolRoot: string, target: string): string {
  return join(spoolRoot, target);
}

export const spoolPaths = (spool: string) => ({
  heartbeat: join(spool, 'archiver.heartbeat'),
  archived: join(spool, 'archived'),
  failed: join(spool, 'failed'),
  status: join(spool, 'status.json'),
  /** A FIFO: the archiver writes a line to it after every mark or failure (spool-signal.ts). */
  news: join(spool, 'news'),
  mark: (name: string) => join(spool, 'archived', name),
  failure: (name: string) => join(spool, 'failed', name),
});

/** The identity of the file at path, undefined when it does not exist. */
export async function identityOf(path: string): Promise<FileIdentity | undefined> {
  try {
    const s = await stat(path, { bigint: true });
    return { dev: s.dev, ino: s.ino, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** As stat(1) prints '%d:%i:%s:%.9Y:%.9Z'. */
export function formatIdentity(identity: FileIdentity): string {
  const time = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
  return `${identity.dev}:${identity.ino}:${identity.size}:${time(identity.mtimeNs)}:${time(identity.ctimeNs)}`;
}

export async function prepareSpool(spool: string): Promise<void> {
  const paths = spoolPaths(spool);
  for (const dir of [spool, paths.archived, paths.failed]) await mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Writes the mark of name: a temp file renamed into place, neither fsynced. A mark is written only
 * after the file is durable in every repository, so it needs no durability of its own: a mark
 * lost in a crash costs one more push, and one cut short or left empty by a crash (a prefix of
 * what was written, or zeros) never matches a file's identity, so it is no mark at all, never a
 * wrong answer. (It was fsynced until the third WAL speed attempt: one journal commit per segment
 * beside the three of the push itself.)
 */
export async function writeMark(spool: string, name: string, mark: ArchiveMark): Promise<void> {
  await writeAtomically(spoolPaths(spool).mark(name), `${markFormat} ${mark.status} ${mark.identity} ${mark.sha256} ${mark.archivedAt}\n`);
}

export async function readMark(spool: string, name: string): Promise<ArchiveMark | undefined> {
  const text = await readFile(spoolPaths(spool).mark(name), 'utf8').catch(() => undefined);
  const [format, status, identity, sha256, archivedAt] = text?.trim().split(' ') ?? [];
  if (format !== markFormat || (status !== 'archived' && status !== 'dropped') || !identity || !sha256 || !archivedAt) return undefined;
  return { status, identity, sha256, archivedAt };
}

export async function removeMark(spool: string, name: string): Promise<void> {
  await unlink(spoolPaths(spool).mark(name)).catch(() => undefined);
}

export async function markedNames(spool: string): Promise<string[]> {
  return (await readdir(spoolPaths(spool).archived).catch(() => [])).filter((entry) => !entry.includes('.tmp-'));
}

/** Why the archiver's last attempt at name failed; archive_command prints it and fails the call (PostgreSQL retries). */
export async function writeFailure(spool: string, name: string, message: string): Promise<void> {
  await writeAtomically(spoolPaths(spool).failure(name), `${message.replace(/\s+/g, ' ')}\n`);
}

export async function clearFailure(spool: string, name: string): Promise<void> {
  await unlink(spoolPaths(spool).failure(name)).catch(() => undefined);
}

export async function failedNames(spool: string): Promise<string[]> {
  return (await readdir(spoolPaths(spool).failed).catch(() => [])).filter((entry) => !entry.includes('.tmp-'));
}

/** "<pid> <waitSeconds>", renewed (mtime) every second while the archiver runs. */
export async function writeHeartbeat(spool: string, waitSeconds: number): Promise<void> {
  await writeAtomically(spoolPaths(spool).heartbeat, `${process.pid} ${waitSeconds}\n`);
}

export async function renewHeartbeat(spool: string): Promise<void> {
  const now = new Date();
  await utimes(spoolPaths(spool).heartbeat, now, now);
}

export async function removeHeartbeat(spool: string): Promise<void> {
  await rm(spoolPaths(spool).heartbeat, { force: true });
}

/** The archiver's heartbeat: its pid and how old it is, undefined when there is none. */
export async function readHeartbeat(spool: string): Promise<{ pid: number; ageMs: number } | undefined> {
  try {
    const path = spoolPaths(spool).heartbeat;
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { pid: Number(text.split(' ')[0]), ageMs: Date.now() - info.mtimeMs };
  } catch {
    return undefined;
  }
}

export interface ArchiverStatus {
  target: string;
  pid: number;
  updatedAt: string;
  /** Ready files not archived (nor dropped) yet. */
  queue: { files: number; bytes: number };
  queueMaxBytes: number | null;
  archivedFiles: number;
  droppedFiles: number;
  failedAttempts: number;
  lastArchived: { name: string; at: string } | null;
  lastDropped: { names: string[]; at: string } | null;
  lastFailure: { name: string; at: string; message: string } | null;
}

export async function writeStatus(spool: string, status: ArchiverStatus): Promise<void> {
  await writeAtomically(spoolPaths(spool).status, `${JSON.stringify(status, null, 2)}\n`);
}

export async function readStatus(spool: string): Promise<ArchiverStatus | undefined> {
  try {
    return JSON.parse(await readFile(spoolPaths(spool).status, 'utf8')) as ArchiverStatus;
  } catch {
    return undefined;
  }
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temp, content, { mode: 0o600 });
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
