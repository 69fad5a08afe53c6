import { execa } from 'execa';
import { rmSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/dev/ports.js';
import { RedisClient, type RedisConnection } from '../../src/redis/client.js';
import { osUser } from '../../src/redis/server.js';

/**
 * A Redis 7 server for one test file, deployed as it is in production: Debian's redis-server,
 * running as the `redis` OS user (when the tests run as root) from a redis.conf in a directory it
 * owns, on a free loopback port, with a password (requirepass) and save points (so a shutdown
 * saves, as a real one does). stopCommand / startCommand are the shell commands a target's hooks
 * use to stop and start it.
 */
export interface TestRedis {
  dir: string;
  dataDir: string;
  confPath: string;
  port: number;
  password: string;
  /** Environment variable name -> value the targets reference (connection.passwordEnv). */
  passwordEnv: string;
  connection: RedisConnection;
  stopCommand: string;
  startCommand: string;
  /** A client authenticated as the default user. */
  connect(): Promise<RedisClient>;
  /** Runs one command and returns its reply. */
  call(...args: string[]): Promise<unknown>;
  start(): Promise<void>;
  stop(): Promise<void>;
  running(): Promise<boolean>;
  close(): Promise<void>;
}

export const redisPasswordEnv = 'LIFEBOAT_TEST_REDIS_PASSWORD';

export async function createTestRedis(options: { password?: string; extraConfig?: string[] } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-redis-test-'));
  const removeOnExit = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeOnExit);
  const dataDir = join(dir, 'data');
  const confPath = join(dir, 'redis.conf');
  const pidFile = join(dir, 'redis.pid');
  const port = await freePort();
  const password = options.password ?? 'test-redis-password';
  const asRedis = process.getuid?.() === 0;
  const user = asRedis ? await osUser('redis') : undefined;
  await execa('mkdir', ['-p', dataDir]);
  await writeFile(
    confPath,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dataDir}`,
      'dbfilename dump.rdb',
      `pidfile ${pidFile}`,
      `logfile ${join(dir, 'redis.log')}`,
      'daemonize yes',
      `requirepass ${password}`,
      'save 3600 1 300 100 60 10000',
      'appendonly no',
      'enable-debug-command local',
      // Diskless sync without the 5 s wait for more replicas: a test backup starts at once.
      'repl-diskless-sync yes',
      'repl-diskless-sync-delay 0',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  await chmod(dir, 0o755);
  if (user) for (const path of [dir, dataDir, confPath]) await chown(path, user.uid, user.gid);
  const runAs = asRedis ? 'runuser -u redis -- ' : '';
  const startCommand = `${runAs}redis-server ${confPath}`;
  const stopCommand = `pid=$(cat ${pidFile} 2>/dev/null) || exit 0; kill "$pid" 2>/dev/null || exit 0; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done`;
  const connection: RedisConnection = { host: '127.0.0.1', port, passwordEnv: redisPasswordEnv, connectTimeoutSeconds: 5 };
  const env = { [redisPasswordEnv]: password };
  process.env[redisPasswordEnv] = password;

  const running = async () => {
    const client = await RedisClient.connect(connection, env).catch(() => undefined);
    client?.close();
    return client !== undefined;
  };
  const redis: TestRedis = {
    dir,
    dataDir,
    confPath,
    port,
    password,
    passwordEnv: redisPasswordEnv,
    connection,
    stopCommand,
    startCommand,
    connect: () => RedisClient.connect(connection, env),
    async call(...args) {
      const client = await RedisClient.connect(connection, env);
      try {
        return await client.command(args);
      } finally {
        client.close();
      }
    },
    async start() {
      await execa('sh', ['-c', startCommand]);
      for (const deadline = Date.now() + 30_000; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
        const client = await RedisClient.connect(connection, env).catch(() => undefined);
        if (client) {
          const loading = (await client.info('persistence')).get('loading');
          client.close();
          if (loading === '0') return;
        }
        if (Date.now() > deadline) throw new Error(`redis-server did not start: ${await readFile(join(dir, 'redis.log'), 'utf8').catch(() => '')}`);
      }
    },
    async stop() {
      await execa('sh', ['-c', stopCommand]);
    },
    running,
    async close() {
      await redis.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      process.removeListener('exit', removeOnExit);
    },
  };
  try {
    await redis.start();
  } catch (error) {
    await redis.close();
    throw error;
  }
  return redis;
}
