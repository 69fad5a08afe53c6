import { existsSync } from 'node:fs';
import { lchown, readdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * The PostgreSQL 15 programs Lifeboat drives, and the OS user they run as.
 *
 * PostgreSQL's server-side programs (initdb, pg_ctl, postgres) refuse to run as root, because a
 * server running as root would hand every database superuser the whole machine. Lifeboat's worker
 * and tests often run as root (containers, CI), so those programs run as the `postgres` OS user
 * that Debian's postgresql package creates, and every directory the server writes to (data
 * directory, socket directory, log, a test's fs repository) is handed to that user first.
 */

/** Debian's location of the PostgreSQL 15 binaries (postgresql-15, installed by `npm run bootstrap`). */
export const defaultPgBinDir = '/usr/lib/postgresql/15/bin';

/** Overrides defaultPgBinDir, e.g. for another installation of PostgreSQL 15. */
export const pgBinDirEnv = 'LIFEBOAT_PG_BINDIR';

/** Overrides the OS user the server runs as when Lifeboat runs as root (default "postgres"). */
export const serverOsUserEnv = 'LIFEBOAT_PG_OS_USER';

export type PgTool =
  | 'initdb'
  | 'pg_ctl'
  | 'postgres'
  | 'pg_isready'
  | 'pg_basebackup'
  | 'pg_dump'
  | 'pg_restore'
  | 'pg_verifybackup'
  | 'pg_waldump'
  | 'pg_controldata'
  | 'psql'
  | 'pgbench';

/** The directory holding the PostgreSQL binaries: $LIFEBOAT_PG_BINDIR, else Debian's PostgreSQL 15 directory. */
export function pgBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return env[pgBinDirEnv] || defaultPgBinDir;
}

/** Absolute path of a PostgreSQL program; throws with the command to run when it is not installed. */
export function pgBinary(tool: PgTool, env: NodeJS.ProcessEnv = process.env): string {
  const dir = pgBinDir(env);
  const path = join(dir, tool);
  if (!existsSync(path)) {
    const origin = env[pgBinDirEnv] ? `${pgBinDirEnv}=${dir}` : `the default ${defaultPgBinDir}`;
    throw new Error(
      `PostgreSQL program ${tool} not found at ${path} (from ${origin}). Run \`npm run bootstrap\` (it installs postgresql-15), ` +
        `or point ${pgBinDirEnv} at the bin directory of a PostgreSQL 15 installation`,
    );
  }
  return path;
}

/** Who PostgreSQL's programs run as. */
export interface ServerUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** True when Lifeboat runs as root and switches to this user for server-side programs. */
  switched: boolean;
}

let cachedUser: Promise<ServerUser> | undefined;

/**
 * The OS user that owns clusters and runs server-side programs: the `postgres` user (or
 * $LIFEBOAT_PG_OS_USER) when we are root, otherwise ourselves (a non-root user can run PostgreSQL
 * directly, and could not switch users anyway).
 */
export function serverUser(env: NodeJS.ProcessEnv = process.env): Promise<ServerUser> {
  cachedUser ??= lookUpServerUser(env).catch((error: unknown) => {
    cachedUser = undefined; // e.g. the package was installed meanwhile: look again next time
    throw error;
  });
  return cachedUser;
}

async function lookUpServerUser(env: NodeJS.ProcessEnv): Promise<ServerUser> {
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  if (uid !== 0) {
    const self = userInfo();
    return { name: self.username, uid, gid, home: self.homedir, switched: false };
  }
  const name = env[serverOsUserEnv] || 'postgres';
  // getent rather than parsing /etc/passwd: it follows the machine's NSS setup (LDAP, sssd, ...).
  const result = await execa('getent', ['passwd', name], { reject: false, stdin: 'ignore' });
  const fields = String(result.stdout).trim().split(':');
  const userId = Number(fields[2]);
  const groupId = Number(fields[3]);
  if (result.exitCode !== 0 || fields.length < 7 || !Number.isInteger(userId) || !Number.isInteger(groupId)) {
    throw new Error(
      `Lifeboat runs as root, and PostgreSQL refuses to, so its programs run as the OS user "${name}", which does not exist. ` +
        `Run \`npm run bootstrap\` (the postgresql-15 package creates the user "postgres"), or set ${serverOsUserEnv} to an existing unprivileged user`,
    );
  }
  if (userId === 0) {
    throw new Error(`${serverOsUserEnv}=${name} names a root account; PostgreSQL refuses to run as root. Use an unprivileged user such as "postgres"`);
  }
  return { name, uid: userId, gid: groupId, home: fields[5] || '/', switched: true };
}

export interface RunOptions {
  /** Extra environment on top of {@link serverEnvironment}. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a PostgreSQL program as the server user and returns its output; throws an Error quoting
 * the program's stderr when it fails.
 *
 * The switch uses the uid/gid options of child_process rather than runuser/su/setpriv: no PAM
 * session, no shell, no quoting of arguments, and libuv drops root's supplementary groups before
 * exec. The child gets a small, explicit environment (see serverEnvironment) instead of root's.
 */
export async function runPgTool(tool: PgTool, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const binary = pgBinary(tool);
  const user = await serverUser();
  const result = await execa(binary, args, {
    reject: false,
    stdin: 'ignore',
    env: serverEnvironment(user, options.env),
    extendEnv: false,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    ...(user.switched ? { uid: user.uid, gid: user.gid } : {}),
  });
  const stdout = String(result.stdout);
  const stderr = String(result.stderr);
  if (result.failed) {
    const how = result.timedOut
      ? `timed out after ${options.timeoutMs} ms`
      : result.exitCode !== undefined
        ? `exited with status ${result.exitCode}`
        : `failed (${result.originalMessage ?? result.shortMessage})`;
    const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-15).join('\n');
    const error = new Error(`${tool} ${args.join(' ')} ${how}${user.switched ? ` (as OS user ${user.name})` : ''}${detail ? `:\n${detail}` : ''}`, {
      cause: result,
    });
    throw Object.assign(error, { exitCode: result.exitCode });
  }
  return { stdout, stderr };
}

/**
 * The environment of server-side programs and of everything the server itself runs
 * (archive_command, restore_command): PATH (zstd, node), locale and time zone from our own
 * environment, HOME of the server user (root's home is not readable by it), plus `extra`.
 * Nothing else: root's environment may hold credentials and PG* variables that would silently
 * change what the programs do.
 */
export function serverEnvironment(user: ServerUser, extra: Record<string, string> = {}): Record<string, string> {
  const inherited: Record<string, string> = {};
  for (const name of ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) inherited[name] = value;
  }
  inherited.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return { ...inherited, HOME: user.home, USER: user.name, LOGNAME: user.name, ...extra };
}

/**
 * Hands path (and, with recursive, everything below it) to the server user, e.g. a directory
 * the server will write to, or a data directory laid out by root from a base backup. Symbolic
 * links are changed themselves, never followed. A no-op when we are not root.
 */
export async function chownToServerUser(path: string, options: { recursive?: boolean } = {}): Promise<void> {
  const user = await serverUser();
  if (!user.switched) return;
  await lchown(path, user.uid, user.gid);
  if (!options.recursive) return;
  const entries = await readdir(path, { recursive: true });
  for (const entry of entries) await lchown(join(path, entry), user.uid, user.gid);
}
