import { readFile, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LifeboatError } from '../errors.js';
import { freePort } from '../dev/ports.js';
import type { CommandSpec } from '../pipeline/command-stream.js';
import { describeRedis, RedisClient, redisPassword, type RedisConnection } from './client.js';

/**
 * redis-cli as a backup runs it, and the scratch redis-server of a drill.
 */

/** `redis-cli --rdb -` for a connection: the password goes in REDISCLI_AUTH, never on the command line. */
export function rdbExport(connection: RedisConnection, env: NodeJS.ProcessEnv): { spec: CommandSpec; env: Record<string, string> } {
  const args = ['-h', connection.host, '-p', String(connection.port)];
  if (connection.user) args.push('--user', connection.user);
  const tls = connection.tls;
  if (tls) {
    args.push('--tls');
    if (tls.caCert) args.push('--cacert', tls.caCert);
    if (tls.cert) args.push('--cert', tls.cert);
    if (tls.key) args.push('--key', tls.key);
    if (tls.serverName) args.push('--sni', tls.serverName);
    if (tls.insecure) args.push('--insecure');
  }
  args.push('--rdb', '-');
  const password = redisPassword(connection, env);
  const childEnv: Record<string, string> = { PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: env.HOME ?? '/' };
  if (password !== undefined) childEnv.REDISCLI_AUTH = password;
  // A transfer step may run for hours; its own limit is the step's (see runbook.ts transferSteps).
  return { spec: { argv: ['redis-cli', ...args], timeoutSeconds: 4 * 3600 }, env: childEnv };
}

/** A failure of redis-cli --rdb, typed when it is the credentials' or the server's reachability. */
export function rdbExportFailure(connection: RedisConnection, stderr: string): LifeboatError | undefined {
  const where = describeRedis(connection);
  if (/WRONGPASS|NOAUTH|NOPERM|AUTH failed|invalid password/i.test(stderr)) {
    return new LifeboatError(
      'RedisAuthFailed',
      `Redis at ${where} refused redis-cli --rdb: ${stderr.split('\n').find((line) => /WRONGPASS|NOAUTH|NOPERM|AUTH/.test(line)) ?? stderr}`,
      'Check connection.passwordEnv and connection.user; the user needs +sync and +replconf to stream an RDB',
    );
  }
  if (/Could not connect|Connection refused|I\/O error/.test(stderr) && !/Transfer/.test(stderr)) {
    return new LifeboatError('RedisConnectionFailed', `redis-cli cannot reach Redis at ${where}: ${stderr.split('\n')[0]}`, 'Check connection.host, connection.port and connection.tls of the target');
  }
  return undefined;
}

/** An OS user by name (getent: it follows NSS), for the scratch server of a drill. */
export async function osUser(name: string): Promise<{ name: string; uid: number; gid: number }> {
  const result = await execa('getent', ['passwd', name], { reject: false, stdin: 'ignore' });
  const fields = String(result.stdout).trim().split(':');
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (result.exitCode !== 0 || fields.length < 7 || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new LifeboatError(
      'InvalidConfig',
      `the worker runs as root, so the drill's scratch redis-server runs as "${name}" (drill.serverUser), which does not exist`,
      'Install redis-server (Debian\'s package creates the user "redis") or set drill.serverUser to an existing unprivileged user',
    );
  }
  if (uid === 0) throw new LifeboatError('InvalidConfig', `drill.serverUser "${name}" is root; a scratch redis-server must not run as root`, 'Set drill.serverUser to an unprivileged user such as "redis"');
  return { name, uid, gid };
}

/** Who a scratch server runs as: the configured user when the worker is root, else the worker itself. */
export async function scratchServerUser(configured: string): Promise<{ name: string; uid: number; gid: number; switched: boolean }> {
  if (process.getuid?.() !== 0) {
    const self = userInfo();
    return { name: self.username, uid: self.uid, gid: self.gid, switched: false };
  }
  return { ...(await osUser(configured)), switched: true };
}

/** The pid file of a drill's scratch server, inside its scratch directory. */
export function scratchPidFile(dir: string): string {
  return join(dir, 'redis-server.pid');
}

/** Stops a scratch server left running in `dir` (by a worker that died): SIGKILL to the pid in its pid file, if that process is a redis-server. */
export async function killScratchServer(dir: string): Promise<boolean> {
  const pid = Number((await readFile(scratchPidFile(dir), 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return false;
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!command.includes('redis-server')) return false;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return false;
  }
  for (let i = 0; i < 100; i++) {
    const alive = await readFile(`/proc/${pid}/stat`, 'utf8').then((stat) => !/^\d+ \(.*\) Z/.test(stat), () => false);
    if (!alive) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await rm(scratchPidFile(dir), { force: true });
  return true;
}

export interface ScratchServer {
  port: number;
  pid: number | undefined;
  connection: RedisConnection;
  stop(): Promise<void>;
}

/**
 * A redis-server on a free loopback port, with `dir` as its directory, loading `dir/dbfilename`:
 * no persistence of its own (save "", appendonly no), not daemonized (a child of the worker), its
 * pid in scratchPidFile(dir) so that a later step can stop it if this worker dies. Resolves once
 * it has loaded the file and answers; a server that exits first fails with its log's tail.
 */
export async function startScratchServer(options: {
  dir: string;
  dbfilename: string;
  user: { uid: number; gid: number; switched: boolean };
  loadTimeoutSeconds: number;
  signal?: AbortSignal;
}): Promise<ScratchServer> {
  const { dir } = options;
  const logFile = join(dir, 'redis-server.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    await rm(logFile, { force: true });
    const child = execa(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes',
        '--dir', dir, '--dbfilename', options.dbfilename,
        '--save', '', '--appendonly', 'no', '--daemonize', 'no',
        '--pidfile', scratchPidFile(dir), '--logfile', logFile,
      ],
      {
        reject: false,
        stdin: 'ignore',
        stdout: 'ignore',
        stderr: 'pipe',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        extendEnv: false,
        ...(options.user.switched ? { uid: options.user.uid, gid: options.user.gid } : {}),
      },
    );
    let exited = false;
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    const ended = child.then(() => {
      exited = true;
    });
    const connection: RedisConnection = { host: '127.0.0.1', port, connectTimeoutSeconds: 5 };
    const stop = async () => {
      if (!exited) child.kill('SIGKILL');
      await ended;
      await rm(scratchPidFile(dir), { force: true });
    };
    const deadline = Date.now() + options.loadTimeoutSeconds * 1000;
    try {
      for (;;) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (exited) break;
        const client = await RedisClient.connect(connection, {}).catch(() => undefined);
        if (client) {
          try {
            const loading = (await client.info('persistence')).get('loading');
            if (loading === '0') return { port, pid: child.pid, connection, stop };
          } catch {
            // LOADING replies to some commands while the file loads: ask again.
          } finally {
            client.close();
          }
        }
        if (Date.now() > deadline) throw new LifeboatError('VerificationFailed', `the scratch redis-server did not load the RDB within ${options.loadTimeoutSeconds} s`, 'Raise drill.loadTimeoutSeconds, or check the server log in the report');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } catch (error) {
      await stop();
      throw error;
    }
    await stop();
    const log = `${await readFile(logFile, 'utf8').catch(() => '')}\n${stderr}`;
    // Another process took the port between freePort() and the bind: try another one.
    if (/Address already in use/.test(log) && attempt < 5) continue;
    throw new LifeboatError(
      'VerificationFailed',
      `the scratch redis-server exited before it answered: ${log.trim().split('\n').slice(-6).join(' | ') || '(no log)'}`,
      'The RDB does not load in this redis-server (a newer format? a module it lacks?); see the message',
    );
  }
}
