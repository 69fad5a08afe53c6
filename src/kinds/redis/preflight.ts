/**
 * A Redis target is ready when Lifeboat can log in and read the server's facts, and the worker's
 * Redis programs (redis-cli streams the RDB, redis-check-rdb checks it, redis-server runs drills)
 * are there and not older than the server: an older redis-check-rdb cannot read a newer RDB format.
 */
import { execa } from 'execa';
import { Finding, messageOf } from '../../check/result.js';
import { LifeboatError } from '../../errors.js';
import { describeRedis, keyspaceTotals, RedisClient } from '../../redis/client.js';
import { scratchServerUser } from '../../redis/server.js';
import type { PreflightContext } from '../contract.js';
import type { RedisTargetConfig } from './config.js';

const fixOf = (error: unknown): string =>
  error instanceof LifeboatError && error.hint ? error.hint : 'Check the target\'s connection (host, port, user, passwordEnv, tls) and that the server accepts connections from this host';

/** "7.0.15" -> [7, 0, 15]; compares versions part by part. */
function olderThan(version: string, than: string): boolean {
  const parts = (v: string) => v.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const [a, b] = [parts(version), parts(than)];
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
  }
  return false;
}

async function programVersion(program: string): Promise<string> {
  const result = await execa(program, ['--version'], { reject: false, stdin: 'ignore' });
  const version = /(?:v=|\s)(\d+\.\d+\.\d+)/.exec(String(result.stdout))?.[1];
  if (result.failed || !version) throw new Finding(`${program} does not run on the worker (${result.shortMessage ?? 'no version'})`, 'Install the Redis programs where the worker runs (Debian: apt-get install redis-tools redis-server)');
  return version;
}

export async function preflightRedis(name: string, target: RedisTargetConfig, context: PreflightContext): Promise<void> {
  let serverVersion: string | undefined;
  await context.check('redis', name, context.timeoutMs, async () => {
    const client = await RedisClient.connect(target.connection, context.env);
    try {
      serverVersion = (await client.info('server')).get('redis_version') ?? 'unknown';
      const { keys } = keyspaceTotals(await client.info('keyspace'));
      return `Redis ${serverVersion} at ${describeRedis(target.connection)}: ${keys} keys`;
    } finally {
      client.close();
    }
  }, fixOf);

  await context.check('tools', `${name}: Redis programs`, context.timeoutMs, async () => {
    const programs = ['redis-cli', 'redis-check-rdb', 'redis-server'];
    const versions = await Promise.all(programs.map(programVersion));
    const described = programs.map((program, i) => `${program} ${versions[i]}`).join(', ');
    const older = serverVersion && serverVersion !== 'unknown' ? programs.filter((_, i) => olderThan(versions[i]!, serverVersion!)) : [];
    if (older.length > 0) {
      throw new Finding(
        `${described}: ${older.join(', ')} older than the server (${serverVersion}); an RDB of a newer format cannot be checked, restored or drilled`,
        `Install the Redis programs of the server's version (${serverVersion}) or newer on the worker`,
      );
    }
    // The drill's scratch server runs as drill.serverUser when the worker is root.
    const user = await scratchServerUser(target.drill.serverUser);
    return `${described}; drills run redis-server as ${user.name}`;
  }, (error) => (error instanceof LifeboatError && error.hint ? error.hint : messageOf(error)));
}
