import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg, { type ClientConfig } from 'pg';
import { freePort } from '../dev/ports.js';
import { LifeboatError } from '../errors.js';
import { chownToServerUser, runPgTool, serverUser } from './tools.js';

/**
 * PostgreSQL clusters Lifeboat starts itself: throwaway clusters for tests and drills, and
 * recovered clusters (a base backup laid out in a new data directory, recovery settings written,
 * started on a free port) for point-in-time recovery.
 *
 * A cluster started here is reachable only from this machine: it listens on 127.0.0.1 and on a
 * Unix socket in a private directory (mode 0700, owned by the server user), never on the
 * machine's default socket directory, so it cannot be mistaken for the production server and
 * two clusters never share a socket. Server-side programs run as the `postgres` OS user when we
 * are root (see tools.ts).
 */

export type ShutdownMode = 'smart' | 'fast' | 'immediate';

/** How TCP connections (loopback only) authenticate; see initCluster for the Unix socket. */
export type HostAuthMethod = 'scram-sha-256' | 'md5' | 'trust' | 'reject';

/** Server settings by name, e.g. { wal_level: 'replica' }; values are written verbatim, quoting is ours. */
export type ClusterSettings = Record<string, string>;

export interface InitClusterOptions {
  /** Created when missing; must be empty. Its parent directories must be searchable by the server user. */
  dataDir: string;
  /** Written to postgresql.auto.conf as the cluster's default port; startCluster may override it per run. */
  port?: number;
  /** Written to postgresql.auto.conf (they survive restarts; ALTER SYSTEM keeps them). */
  settings?: ClusterSettings;
  /** Default 'scram-sha-256': passwords are checked on TCP connections. */
  authMethod?: HostAuthMethod;
  /** Name of the bootstrap superuser; default 'postgres'. */
  superuser?: string;
  /** initdb --wal-segsize, a power of two from 1 to 1024; default PostgreSQL's 16. */
  walSegmentSizeMiB?: number;
  /** Default 'C.UTF-8': the same sort order and messages on every machine. */
  locale?: string;
  /**
   * Default false: initdb skips fsync (a throwaway cluster does not need to survive a power cut,
   * and fsync makes initdb several times slower). Set true for a cluster that must be durable.
   */
  durable?: boolean;
}

export interface InitializedCluster {
  dataDir: string;
  superuser: string;
}

/** Data directory, socket and port of a cluster, and what a client needs to connect. */
export interface ClusterAddress {
  dataDir: string;
  port: number;
  /** Loopback address for TCP connections (password authentication applies there). */
  host: '127.0.0.1';
  /** Private directory holding the Unix socket (trusted local connections). */
  socketDir: string;
  /** The role clients use by default. */
  user: string;
}

export interface ConnectOptions {
  user?: string;
  password?: string;
  /** Default 'postgres'. */
  database?: string;
  /** Default 'socket'; 'tcp' goes through 127.0.0.1 and its password authentication. */
  via?: 'socket' | 'tcp';
  /** Shown in pg_stat_activity. */
  applicationName?: string;
}

export interface RunningCluster extends ClusterAddress {
  /** PID of the postmaster. */
  pid: number;
  /** Server log (pg_ctl -l). */
  logFile: string;
  /** Settings for the `pg` client (node-postgres). */
  clientConfig(options?: ConnectOptions): ClientConfig;
  /** A libpq connection URI (psql, pg_dump, pg_basebackup -d). */
  connectionString(options?: ConnectOptions): string;
  /** A connected `pg` client; the caller ends it. */
  connect(options?: ConnectOptions): Promise<pg.Client>;
  /**
   * Stops the server ('fast' by default: clients are disconnected, a shutdown checkpoint is
   * written) and removes the socket directory when startCluster created it. Safe to call twice.
   */
  stop(options?: { mode?: ShutdownMode; timeoutSeconds?: number }): Promise<void>;
}

export interface StartClusterOptions {
  dataDir: string;
  /** Default: a free port picked by the OS (another one is tried if it is taken before the server binds it). */
  port?: number;
  /**
   * Directory for the Unix socket; default a new private temp directory, removed by stop(). A
   * given directory is created when missing and made private (0700, owned by the server user),
   * because local connections are trusted.
   */
  socketDir?: string;
  /** Server log; default <socketDir>/postgresql.log (removed with a default socket directory). */
  logFile?: string;
  /** Settings for this run only (postgres -c), overriding the data directory's configuration. */
  settings?: ClusterSettings;
  /**
   * Extra environment of the server and therefore of its archive_command and restore_command
   * (e.g. the S3 credentials a WAL archive command reads). See tools.ts serverEnvironment.
   */
  env?: Record<string, string>;
  /** Role that clients use by default; default 'postgres'. */
  user?: string;
  /** How long to wait until the server accepts connections; default 60 s (recovery may need more). */
  timeoutSeconds?: number;
  /** Default true: if this process exits without stop(), the server is shut down (immediate) rather than orphaned. */
  stopOnExit?: boolean;
}

const loopback = '127.0.0.1';
/** sun_path is 108 bytes including the terminating NUL. */
const maxSocketPathBytes = 107;
const autoConfFile = 'postgresql.auto.conf';

/**
 * Creates a new cluster with initdb, as the server user. Local (Unix socket) connections are
 * trusted: the socket only ever lives in a private directory (see startCluster). TCP connections
 * are accepted on loopback only, with authMethod.
 */
export async function initCluster(options: InitClusterOptions): Promise<InitializedCluster> {
  const dataDir = resolve(options.dataDir);
  const superuser = options.superuser ?? 'postgres';
  const settings: ClusterSettings = {
    listen_addresses: loopback,
    ...(options.port === undefined ? {} : { port: String(options.port) }),
    ...options.settings,
  };
  for (const [name, value] of Object.entries(settings)) assertSetting(name, value);
  const segmentSize = options.walSegmentSizeMiB;
  if (segmentSize !== undefined && !(Number.isInteger(segmentSize) && segmentSize >= 1 && segmentSize <= 1024 && (segmentSize & (segmentSize - 1)) === 0)) {
    throw new LifeboatError('InvalidInput', `walSegmentSizeMiB must be a power of two from 1 to 1024, got ${segmentSize}`);
  }

  const created = !existsSync(dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if ((await readdir(dataDir)).length > 0) {
    throw new LifeboatError('InvalidInput', `cannot create a cluster in ${dataDir}: the directory is not empty`, 'Use a new or empty directory');
  }
  await chmod(dataDir, 0o700);
  await chownToServerUser(dataDir);
  try {
    await runPgTool(
      'initdb',
      [
        '--pgdata',
        dataDir,
        '--username',
        superuser,
        '--auth',
        'trust', // replaced by our own pg_hba.conf below
        '--encoding',
        'UTF8',
        '--locale',
        options.locale ?? 'C.UTF-8',
        ...(options.durable ? [] : ['--no-sync']),
        ...(segmentSize === undefined ? [] : ['--wal-segsize', String(segmentSize)]),
      ],
      { timeoutMs: 300_000 },
    );
    await writeServerFile(join(dataDir, 'pg_hba.conf'), hbaConf(options.authMethod ?? 'scram-sha-256'));
    await writeClusterSettings(dataDir, settings);
  } catch (error) {
    // Leave the directory as we found it, so that a retry can initdb again.
    if (created) await rm(dataDir, { recursive: true, force: true });
    else await emptyDirectory(dataDir);
    throw await withAccessHint(error, dataDir);
  }
  return { dataDir, superuser };
}

function hbaConf(method: HostAuthMethod): string {
  return [
    '# Written by Lifeboat (src/postgres/cluster.ts).',
    '# Unix socket: trusted. Lifeboat only ever puts the socket in a private directory (mode 0700,',
    '# owned by the server user), so only that user and root can reach it.',
    '# TYPE  DATABASE     USER  ADDRESS        METHOD',
    'local   all          all                  trust',
    'local   replication  all                  trust',
    `# TCP: loopback only (listen_addresses = ${loopback}), ${method}.`,
    `host    all          all   127.0.0.1/32   ${method}`,
    `host    replication  all   127.0.0.1/32   ${method}`,
    '',
  ].join('\n');
}

/**
 * Sets server settings in the data directory's postgresql.auto.conf, where ALTER SYSTEM and
 * `pg_basebackup -R` put theirs: they override postgresql.conf, and ALTER SYSTEM keeps them.
 * A name already set there is replaced rather than repeated, so writing the same settings again
 * (e.g. a retried recovery step) leaves one line per name. Use it while the server is stopped,
 * e.g. to give a restored base backup its restore_command and recovery target (and to switch off
 * the source's archive_command, which must never write into the source's archive).
 */
export async function writeClusterSettings(dataDir: string, settings: ClusterSettings): Promise<void> {
  const entries = Object.entries(settings);
  for (const [name, value] of entries) assertSetting(name, value);
  const file = join(dataDir, autoConfFile);
  let existing = '';
  try {
    existing = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    existing = '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n';
  }
  // GUC names are case-insensitive.
  const replaced = new Set(entries.map(([name]) => name.toLowerCase()));
  const kept = existing.split('\n').filter((line) => {
    const name = /^\s*([A-Za-z_][\w.$]*)\s*(?:=|\s)/.exec(line)?.[1];
    return name === undefined || !replaced.has(name.toLowerCase());
  });
  while (kept.length > 0 && kept.at(-1)?.trim() === '') kept.pop();
  const lines = [...kept, ...entries.map(([name, value]) => `${name} = ${quoteSettingValue(value)}`)];
  await writeServerFile(file, `${lines.join('\n')}\n`);
}

/**
 * Makes the next start of dataDir a recovery: 'recovery' replays WAL through restore_command up
 * to the recovery target (or the end of the archive) and then becomes a normal server;
 * 'standby' keeps following. The caller writes restore_command and the target with
 * writeClusterSettings.
 */
export async function markForRecovery(dataDir: string, kind: 'recovery' | 'standby' = 'recovery'): Promise<void> {
  await writeServerFile(join(dataDir, `${kind}.signal`), '');
}

/**
 * Hands a data directory laid out by this process (e.g. a base backup restored as root) to the
 * server user, with the 0700 mode PostgreSQL insists on.
 */
export async function adoptDataDirectory(dataDir: string): Promise<void> {
  await chmod(dataDir, 0o700);
  await chownToServerUser(dataDir, { recursive: true });
}

/**
 * Starts the cluster in dataDir with pg_ctl, as the server user, listening on 127.0.0.1:port and
 * on a socket in a private directory, and resolves once the server accepts connections on that
 * socket. Works the same for a fresh cluster and for a restored base backup.
 */
export async function startCluster(options: StartClusterOptions): Promise<RunningCluster> {
  const dataDir = resolve(options.dataDir);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new LifeboatError('InvalidInput', `${dataDir} is not a PostgreSQL data directory (it has no PG_VERSION file)`, 'Create one with initCluster, or lay out a base backup there');
  }
  const settings = options.settings ?? {};
  for (const [name, value] of Object.entries(settings)) assertSetting(name, value);
  const timeoutSeconds = options.timeoutSeconds ?? 60;

  const ownSocketDir = options.socketDir === undefined;
  const socketDir = resolve(options.socketDir ?? (await mkdtemp(join(tmpdir(), 'lifeboat-pg-'))));
  try {
    if (Buffer.byteLength(join(socketDir, '.s.PGSQL.65535')) > maxSocketPathBytes) {
      throw new LifeboatError('InvalidInput', `socket directory ${socketDir} is too long for a Unix socket path (${maxSocketPathBytes} bytes at most)`, 'Use a shorter directory, e.g. under /tmp');
    }
    if (/[\s,"]/.test(socketDir)) {
      throw new LifeboatError('InvalidInput', `socket directory ${JSON.stringify(socketDir)} contains whitespace, a comma or a quote`, 'Use a plain path');
    }
    await mkdir(socketDir, { recursive: true, mode: 0o700 });
    await chmod(socketDir, 0o700);
    await chownToServerUser(socketDir);
    const logFile = resolve(options.logFile ?? join(socketDir, 'postgresql.log'));
    // pg_ctl appends to the log as the server user; create it so it can.
    await (await open(logFile, 'a', 0o600)).close();
    await chownToServerUser(logFile);

    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      const logOffset = (await stat(logFile)).size;
      try {
        await pgCtlStart({ dataDir, port, socketDir, logFile, settings, timeoutSeconds, env: options.env ?? {} });
      } catch (error) {
        const log = await readFrom(logFile, logOffset);
        const portTaken = /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(log);
        if (portTaken && options.port === undefined && attempt < 3) continue;
        const message = error instanceof Error ? error.message : String(error);
        throw await withAccessHint(new Error(`could not start the PostgreSQL cluster in ${dataDir} on port ${port}: ${message}\nserver log (${logFile}):\n${tail(log)}`, { cause: error }), dataDir);
      }
      return await running({ dataDir, port, socketDir, logFile, user: options.user ?? 'postgres', ownSocketDir, stopOnExit: options.stopOnExit ?? true });
    }
  } catch (error) {
    if (ownSocketDir) await rm(socketDir, { recursive: true, force: true });
    throw error;
  }
}

async function pgCtlStart(run: {
  dataDir: string;
  port: number;
  socketDir: string;
  logFile: string;
  settings: ClusterSettings;
  timeoutSeconds: number;
  env: Record<string, string>;
}): Promise<void> {
  const serverArgs = [
    '-c',
    `port=${run.port}`,
    '-c',
    `listen_addresses=${loopback}`,
    '-c',
    `unix_socket_directories=${run.socketDir}`,
    ...Object.entries(run.settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
  await runPgTool(
    'pg_ctl',
    // pg_ctl hands -o to /bin/sh, hence the shell quoting; -w waits until the server is ready.
    ['start', '--pgdata', run.dataDir, '--log', run.logFile, '--wait', '--timeout', String(run.timeoutSeconds), '--silent', '-o', serverArgs.map(shellQuote).join(' ')],
    { env: run.env, timeoutMs: (run.timeoutSeconds + 30) * 1000 },
  );
  // pg_ctl reads readiness from postmaster.pid; also prove the socket we hand out answers.
  // Exit 1 ("rejecting connections") is a recovering server without hot standby: it is up.
  try {
    await runPgTool('pg_isready', ['--host', run.socketDir, '--port', String(run.port), '--timeout', '10', '--quiet'], { timeoutMs: 20_000 });
  } catch (error) {
    if ((error as { exitCode?: number }).exitCode !== 1) throw error;
  }
}

async function running(cluster: {
  dataDir: string;
  port: number;
  socketDir: string;
  logFile: string;
  user: string;
  ownSocketDir: boolean;
  stopOnExit: boolean;
}): Promise<RunningCluster> {
  const { dataDir, port, socketDir, logFile, user, ownSocketDir } = cluster;
  const pid = await postmasterPid(dataDir);
  if (pid === undefined) throw new Error(`the cluster in ${dataDir} started but has no postmaster.pid`);
  // If this process ends without stop() (an uncaught error, process.exit), shut the server down
  // (SIGQUIT = immediate) instead of leaving it holding its port and data directory.
  const killOnExit = (): void => {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // already gone
    }
  };
  if (cluster.stopOnExit) process.once('exit', killOnExit);

  const clientConfig = (options: ConnectOptions = {}): ClientConfig => ({
    host: options.via === 'tcp' ? loopback : socketDir,
    port,
    user: options.user ?? user,
    database: options.database ?? 'postgres',
    ...(options.password === undefined ? {} : { password: options.password }),
    ...(options.applicationName === undefined ? {} : { application_name: options.applicationName }),
  });
  let stopping: Promise<void> | undefined;
  return {
    dataDir,
    port,
    host: loopback,
    socketDir,
    user,
    pid,
    logFile,
    clientConfig,
    connectionString(options = {}) {
      const role = encodeURIComponent(options.user ?? user);
      const secret = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}`;
      const database = encodeURIComponent(options.database ?? 'postgres');
      const name = options.applicationName === undefined ? '' : `&application_name=${encodeURIComponent(options.applicationName)}`;
      return options.via === 'tcp'
        ? `postgresql://${role}${secret}@${loopback}:${port}/${database}${name ? `?${name.slice(1)}` : ''}`
        : `postgresql://${role}${secret}@/${database}?host=${encodeURIComponent(socketDir)}&port=${port}${name}`;
    },
    async connect(options = {}) {
      const client = new pg.Client(clientConfig(options));
      await client.connect();
      return client;
    },
    stop(options = {}) {
      stopping ??= (async () => {
        await stopCluster(dataDir, options);
        process.removeListener('exit', killOnExit);
        if (ownSocketDir) await rm(socketDir, { recursive: true, force: true });
      })().finally(() => {
        stopping = undefined; // a failed stop may be retried
      });
      return stopping;
    },
  };
}

/**
 * Stops the server running in dataDir, if any, and waits until it has exited. 'fast' (default)
 * disconnects clients and writes a shutdown checkpoint; 'immediate' is a crash without data loss
 * (the next start replays WAL), for throwaway clusters and stuck servers. Idempotent.
 */
export async function stopCluster(dataDir: string, options: { mode?: ShutdownMode; timeoutSeconds?: number } = {}): Promise<void> {
  const directory = resolve(dataDir);
  if (!(await isClusterRunning(directory))) return;
  const timeoutSeconds = options.timeoutSeconds ?? 60;
  try {
    await runPgTool('pg_ctl', ['stop', '--pgdata', directory, '--mode', options.mode ?? 'fast', '--wait', '--timeout', String(timeoutSeconds), '--silent'], {
      timeoutMs: (timeoutSeconds + 30) * 1000,
    });
  } catch (error) {
    // It may have exited on its own between the status check and the signal.
    if (await isClusterRunning(directory)) throw error;
  }
}

/** True when a server is running in dataDir (pg_ctl status). */
export async function isClusterRunning(dataDir: string): Promise<boolean> {
  if (!existsSync(join(dataDir, 'postmaster.pid'))) return false;
  try {
    await runPgTool('pg_ctl', ['status', '--pgdata', dataDir], { timeoutMs: 30_000 });
    return true;
  } catch (error) {
    // 3: not running (a stale postmaster.pid); 4: no data directory.
    const code = (error as { exitCode?: number }).exitCode;
    if (code === 3 || code === 4) return false;
    throw error;
  }
}

/** Stops the server in dataDir if one runs (immediate: the data is being thrown away) and deletes the directory. */
export async function removeCluster(dataDir: string): Promise<void> {
  const directory = resolve(dataDir);
  if (!existsSync(directory)) return;
  await stopCluster(directory, { mode: 'immediate' });
  await rm(directory, { recursive: true, force: true });
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A setting value as postgresql.conf wants it: always single-quoted (valid for every type), with
 * quotes doubled and backslashes doubled (the file's parser reads backslash escapes), the same
 * escaping ALTER SYSTEM writes.
 */
export function quoteSettingValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function assertSetting(name: string, value: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$/.test(name)) {
    throw new LifeboatError('InvalidInput', `invalid PostgreSQL setting name ${JSON.stringify(name)}`, 'Use a name like "wal_level" or "myext.option"');
  }
  if (/[\r\n\0]/.test(value)) {
    throw new LifeboatError('InvalidInput', `the value of PostgreSQL setting ${name} contains a line break or NUL`, 'Settings are single-line values');
  }
}

function shellQuote(argument: string): string {
  return `'${argument.replace(/'/g, `'\\''`)}'`;
}

/** Writes a file the server reads (and may rewrite, like postgresql.auto.conf): temp + rename, owned by the server user. */
async function writeServerFile(path: string, content: string): Promise<void> {
  const temp = `${path}.lifeboat-tmp`;
  await writeFile(temp, content, { mode: 0o600 });
  await chownToServerUser(temp);
  await rename(temp, path);
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

async function readFrom(file: string, offset: number): Promise<string> {
  try {
    return (await readFile(file)).subarray(offset).toString('utf8');
  } catch {
    return '(log file unreadable)';
  }
}

function tail(text: string, lines = 20): string {
  const trimmed = text.trimEnd();
  return trimmed === '' ? '(empty)' : trimmed.split('\n').slice(-lines).join('\n');
}

/**
 * When the server user cannot reach a directory, initdb and pg_ctl fail with a bare "Permission
 * denied"; name the directory that blocks it. Judged from owner, primary group and mode bits only
 * (supplementary groups are not considered), so it is a hint added to an error, never a check.
 */
async function withAccessHint(error: unknown, path: string): Promise<unknown> {
  if (!(error instanceof Error)) return error;
  const user = await serverUser().catch(() => undefined);
  if (!user?.switched) return error;
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const info = await stat(dir).catch(() => undefined);
    if (info) {
      const searchable = info.uid === user.uid ? info.mode & 0o100 : info.gid === user.gid ? info.mode & 0o010 : info.mode & 0o001;
      if (!searchable) {
        error.message += `\nLikely cause: the server runs as OS user "${user.name}", which cannot enter ${dir} (mode ${(info.mode & 0o777).toString(8)}, owner uid ${info.uid}). Use a directory it can reach, or chown/chmod ${dir}`;
        return error;
      }
    }
    if (dir === dirname(dir)) return error;
  }
}
