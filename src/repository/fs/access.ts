import { access, chmod, chown, constants, lstat, stat, type FileHandle } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, relative, sep } from 'node:path';

/**
 * Who may do what in an fs repository: the repository's root decides, and Lifeboat keeps to it.
 *
 * Two programs write into one fs repository: the worker (base backups, dumps, manifests,
 * reports) and PostgreSQL's archive_command (`lifeboat wal-push`, as the server's OS user). They
 * are often different users (the worker as root or as its own user, PostgreSQL as `postgres`),
 * and each must be able to create directories where the other created the parent. So everything
 * Lifeboat creates inside the root copies the root:
 *
 * - owner and group: a writer running as root gives what it creates the root's owner and group
 *   (a root worker writing into a repository owned by postgres leaves everything owned by
 *   postgres); any other writer gives it the root's group when it is a member of that group
 *   (a setgid root does this by itself);
 * - directories: the root's owner and group permission bits and its setgid bit, never any for
 *   others (root 0700 -> 0700; 2770 -> 2770; 0750 -> 0750);
 * - files: read and write for the owner, read for the group when the root lets the group read,
 *   never anything for others (root 0700 -> 0600; 2770 or 0750 -> 0640). Files are never
 *   written in place (a put renames a new file over the old one, a delete unlinks it), so
 *   writing and removing them is a matter of the directory's permissions, not the file's.
 *
 * The modes are set explicitly after creation, so the writer's umask does not narrow them.
 */
export interface RootAccess {
  uid: number;
  gid: number;
  dirMode: number;
  fileMode: number;
}

/** What a repository root with this owner, group and mode asks of everything created inside it. */
export function accessFromRoot(root: { uid: number; gid: number; mode: number }): RootAccess {
  const groupBits = root.mode & 0o070;
  return {
    uid: root.uid,
    gid: root.gid,
    dirMode: 0o700 | groupBits | (root.mode & 0o2000),
    fileMode: 0o600 | (groupBits & 0o040),
  };
}

/** This process's identity, as far as ownership goes. */
export interface Writer {
  uid: number;
  /** Every group the process has (effective and supplementary). */
  groups: number[];
}

export function currentWriter(): Writer {
  const uid = process.geteuid?.() ?? -1;
  const groups = [process.getegid?.() ?? -1, ...(process.getgroups?.() ?? [])];
  return { uid, groups };
}

/**
 * The owner and group to give a new entry: root may give any; anyone else only a group of its own
 * (and never another owner). undefined: leave it as created.
 */
export function ownershipFor(access: RootAccess, writer: Writer): { uid: number; gid: number } | undefined {
  if (writer.uid === 0) return { uid: access.uid, gid: access.gid };
  if (writer.groups.includes(access.gid)) return { uid: -1, gid: access.gid };
  return undefined;
}

/** Gives a directory Lifeboat just created the root's owner, group and mode. */
export async function adoptDirectory(path: string, access: RootAccess, writer: Writer): Promise<void> {
  const owner = ownershipFor(access, writer);
  // chown before chmod: a change of owner may clear the setgid bit.
  if (owner) await chown(path, owner.uid, owner.gid).catch(ignorePermissionError);
  await chmod(path, access.dirMode);
}

/** The same for a file Lifeboat just created, through its open handle (before it is renamed into place). */
export async function adoptFile(handle: FileHandle, access: RootAccess, writer: Writer): Promise<void> {
  const owner = ownershipFor(access, writer);
  if (owner) await handle.chown(owner.uid, owner.gid).catch(ignorePermissionError);
  await handle.chmod(access.fileMode);
}

/**
 * A directory between the root and a new object that an older Lifeboat, running as root, created
 * as root:root 0700 in a repository the root of which belongs to another user: PostgreSQL's
 * archive_command (as that user) can no longer write below it. A root writer gives it back to the
 * root's owner; true when it did.
 */
export async function repairRootOwnedDirectory(path: string, access: RootAccess, writer: Writer): Promise<boolean> {
  if (writer.uid !== 0 || access.uid === 0) return false;
  const info = await lstat(path).catch(() => undefined);
  if (!info?.isDirectory() || info.uid !== 0) return false;
  await adoptDirectory(path, access, writer);
  return true;
}

function ignorePermissionError(error: unknown): void {
  // A writer that may not give the entry this owner or group leaves it as created (e.g. a group
  // it is not in after all); the modes still apply.
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== 'EPERM') throw error;
}

/**
 * Why this process may not read or write the object at path inside root, in words: the first
 * directory on the way that it may not enter (or, to write, create entries in), or the file it
 * may not read, with owner and mode, and who the process is. undefined when everything looks
 * accessible (then the error was about something else).
 */
export async function describeDenial(root: string, path: string, intent: 'read' | 'write'): Promise<string | undefined> {
  const dirs: string[] = [];
  for (let dir = dirname(path); dir.startsWith(root + sep) || dir === root; dir = dirname(dir)) {
    dirs.unshift(dir);
    if (dir === root) break;
  }
  let lastExisting: string | undefined;
  for (const dir of dirs) {
    if (!(await exists(dir))) break;
    if (!(await allowed(dir, constants.X_OK))) return await denial(root, dir, 'enter it');
    lastExisting = dir;
  }
  if (intent === 'write' && lastExisting !== undefined && !(await allowed(lastExisting, constants.W_OK))) return await denial(root, lastExisting, 'create entries in it');
  if (intent === 'read' && (await exists(path)) && !(await allowed(path, constants.R_OK))) return await denial(root, path, 'read it');
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function allowed(path: string, mode: number): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}

async function denial(root: string, path: string, what: string): Promise<string> {
  const info = await stat(path);
  const shown = path === root ? `the repository root ${path}` : `${relative(root, path)} (in ${root})`;
  return `${shown} is owned by uid ${info.uid}, gid ${info.gid}, mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}; this process runs as ${whoAmI()} and may not ${what}`;
}

function whoAmI(): string {
  const writer = currentWriter();
  let name = '';
  try {
    name = ` (${userInfo().username})`;
  } catch {
    // no passwd entry: the uid alone
  }
  return `uid ${writer.uid}${name}, groups ${[...new Set(writer.groups)].join(',')}`;
}
