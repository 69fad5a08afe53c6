import { Context } from '@temporalio/activity';
import { execa } from 'execa';
import { chown, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LifeboatError } from '../../errors.js';
import { RedisClient, RedisErrorReply, keyspaceTotals } from '../../redis/client.js';
import { killScratchServer, scratchServerUser, startScratchServer } from '../../redis/server.js';
import { startProgress } from '../../../activities/progress.js';
import type { SmokeCheckResult } from '../contract.js';
import type { RedisSmokeCheck } from './config.js';
import type { ResolvedRedisTarget } from './index.js';

/** The RDB's name in a drill's scratch directory. */
const scratchRdb = 'dump.rdb';

/** Where a drill's scratch copy goes; the same run gets the same directory (idempotent). */
export function redisScratchDir(target: ResolvedRedisTarget, runName: string): string {
  return join(target.drill.scratchDir ?? tmpdir(), `lifeboat-${runName}`);
}

/**
 * A fresh scratch directory, owned by the user the scratch server runs as (it writes its log and
 * pid file there). A server an earlier attempt left running in it is stopped first.
 */
export async function prepareRedisScratch(input: { target: ResolvedRedisTarget; runName: string }): Promise<{ dir: string; rdbPath: string; owner: { uid: number; gid: number } }> {
  const dir = redisScratchDir(input.target, input.runName);
  const user = await scratchServerUser(input.target.drill.serverUser);
  await killScratchServer(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (user.switched) {
    await chown(dir, user.uid, user.gid);
    // The server changes into the directory as that user: every directory above must let it through.
    const reachable = await execa('test', ['-w', dir], { reject: false, uid: user.uid, gid: user.gid, stdin: 'ignore' });
    if (reachable.exitCode !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new LifeboatError(
        'InvalidConfig',
        `the scratch redis-server runs as "${user.name}" (drill.serverUser), which cannot reach ${dir}`,
        `Set drill.scratchDir to a directory whose parents ${user.name} may enter (e.g. under /var/tmp), or leave it unset (the system temp dir)`,
      );
    }
  }
  return { dir, rdbPath: join(dir, scratchRdb), owner: { uid: user.uid, gid: user.gid } };
}

/** Compensation: the scratch server stopped (if one runs there) and the directory removed (registered before prepareRedisScratch makes it). */
export async function removeRedisScratch(input: { target: ResolvedRedisTarget; runName: string }): Promise<{ stoppedServer: boolean }> {
  const dir = redisScratchDir(input.target, input.runName);
  const stoppedServer = await killScratchServer(dir);
  await rm(dir, { recursive: true, force: true });
  return { stoppedServer };
}

/** What a smoke check asks for, in words, as the drill's report shows it beside what the copy answered. */
export function expectedOfRedisCheck(check: RedisSmokeCheck): string {
  if (check.dbsizeAtLeast !== undefined) return `DBSIZE of db ${check.db} at least ${check.dbsizeAtLeast}`;
  if (check.keyExists !== undefined) return `${JSON.stringify(check.keyExists)} exists in db ${check.db}`;
  return check.equals === undefined ? `GET ${JSON.stringify(check.get)} in db ${check.db} returns a value` : `GET ${JSON.stringify(check.get)} in db ${check.db} = ${JSON.stringify(check.equals)}`;
}

type CheckOutcome = Omit<SmokeCheckResult, 'name' | 'durationMs' | 'expected'>;

async function runCheck(client: RedisClient, check: RedisSmokeCheck): Promise<CheckOutcome> {
  const selected = await client.call(['SELECT', String(check.db)]);
  if (selected instanceof RedisErrorReply) return { passed: false, detail: `SELECT ${check.db}: ${selected.message}`, actual: `SELECT failed: ${selected.message}` };
  if (check.dbsizeAtLeast !== undefined) {
    const size = Number(await client.command(['DBSIZE']));
    return {
      passed: size >= check.dbsizeAtLeast,
      detail: `DBSIZE of db ${check.db} is ${size}${size >= check.dbsizeAtLeast ? '' : `, expected at least ${check.dbsizeAtLeast}`}`,
      actual: `${size}`,
    };
  }
  if (check.keyExists !== undefined) {
    const exists = Number(await client.command(['EXISTS', check.keyExists])) === 1;
    return { passed: exists, detail: `${JSON.stringify(check.keyExists)} ${exists ? 'exists' : 'does not exist'} in db ${check.db}`, actual: exists ? 'exists' : 'does not exist' };
  }
  const key = check.get!;
  const reply = await client.call(['GET', key]);
  if (reply instanceof RedisErrorReply) return { passed: false, detail: `GET ${JSON.stringify(key)}: ${reply.message}`, actual: reply.message };
  if (reply === null) return { passed: false, detail: `${JSON.stringify(key)} does not exist in db ${check.db}`, actual: 'no such key' };
  const value = Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply);
  const shown = JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (check.equals === undefined) return { passed: true, detail: `GET ${JSON.stringify(key)} returned ${shown}`, actual: shown };
  return { passed: value === check.equals, detail: `GET ${JSON.stringify(key)} returned ${shown}${value === check.equals ? '' : `, expected ${JSON.stringify(check.equals)}`}`, actual: shown };
}

/**
 * The drill's proof: a scratch redis-server (the configured user, a free loopback port, no
 * persistence) loads the fetched RDB; it must hold the keys the RDB holds, then the configured
 * smoke checks run against it; the server is always stopped before the step ends (and the pid
 * file lets the cleanup stop one left behind by a dead worker).
 */
export async function runRedisDrill(input: {
  target: ResolvedRedisTarget;
  dir: string;
  expected: { keys: number; expires: number; alreadyExpired: number };
}): Promise<{ checks: SmokeCheckResult[]; port: number; loadMs: number }> {
  const { target, dir, expected } = input;
  const progress = startProgress('load', 0);
  const started = Date.now();
  try {
    const user = await scratchServerUser(target.drill.serverUser);
    const server = await startScratchServer({ dir, dbfilename: scratchRdb, user, loadTimeoutSeconds: target.drill.loadTimeoutSeconds, signal: Context.current().cancellationSignal });
    const loadMs = Date.now() - started;
    try {
      progress.setPhase('smoke-checks');
      const client = await RedisClient.connect(server.connection, {});
      try {
        const checks: SmokeCheckResult[] = [];
        const loadedAt = Date.now();
        const totals = keyspaceTotals(await client.info('keyspace'));
        const least = expected.keys - expected.expires;
        const most = expected.keys - expected.alreadyExpired;
        const loaded = totals.keys >= least && totals.keys <= most;
        checks.push({
          name: 'all keys loaded',
          passed: loaded,
          detail: `${totals.keys} keys loaded, the RDB holds ${expected.keys}${expected.expires > 0 ? ` (${expected.expires} with a TTL)` : ''}`,
          durationMs: Date.now() - loadedAt,
          // Keys with a TTL may expire between the snapshot and the load.
          expected: least === most ? `${most} keys` : `${least} to ${most} keys`,
          actual: `${totals.keys} keys`,
        });
        for (const check of target.drill.smokeChecks) {
          const checkStarted = Date.now();
          try {
            checks.push({ name: check.name, ...(await runCheck(client, check)), durationMs: Date.now() - checkStarted, expected: expectedOfRedisCheck(check) });
          } catch (error) {
            const failed = `failed: ${(error as Error).message}`;
            checks.push({ name: check.name, passed: false, detail: failed, durationMs: Date.now() - checkStarted, expected: expectedOfRedisCheck(check), actual: failed });
          }
        }
        return { checks, port: server.port, loadMs };
      } finally {
        client.close();
      }
    } finally {
      await server.stop();
    }
  } finally {
    progress.stop();
  }
}
