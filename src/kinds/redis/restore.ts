import { Context, log } from '@temporalio/activity';
import { chown, link, lstat, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { LifeboatError } from '../../errors.js';
import { fsyncPath } from '../../pipeline/local-file.js';
import { describeRedis, keyspaceTotals, RedisClient } from '../../redis/client.js';
import { checkFailure, checkRdbFile, redisToolsVersion } from '../../redis/rdb.js';
import { startProgress } from '../../../activities/progress.js';
import { fetchPayloadToFile } from '../payload.js';
import type { ResolvedRedisTarget } from './index.js';
import type { RedisManifest } from './manifest.js';

const statIfAny = (path: string) => lstat(path).catch(() => undefined);

/** Where the live server keeps its data, as an in-place restore needs it. */
export interface RedisDataFiles {
  /** dir/dbfilename: where the restored RDB goes. */
  rdbPath: string;
  /** The AOF directory when the server appends (appendonly yes) or one exists: the restore replaces it too. */
  aof: { dir: string; filename: string } | null;
  /** The owner of the data directory: the restored files get it. */
  owner: { uid: number; gid: number };
  /** Where these facts come from. */
  from: 'server' | 'config';
}

/**
 * Asks the live server where its data is (CONFIG GET dir, dbfilename, appendonly, appenddirname,
 * appendfilename), before anything is stopped. A server that does not answer (the disaster a
 * restore is for) is fine when restore.rdbPath says where the RDB goes; an AOF directory found
 * beside it (appendonlydir) is then treated as live (replacing it too is harmless if it is not).
 */
export async function inspectRedisServer(input: { target: ResolvedRedisTarget }, env: NodeJS.ProcessEnv): Promise<RedisDataFiles> {
  const { target } = input;
  const configured = target.restore.rdbPath;
  let asked: { dir: string; dbfilename: string; appendonly: boolean; appenddirname: string; appendfilename: string } | undefined;
  try {
    const client = await RedisClient.connect(target.connection, env);
    try {
      const get = async (name: string) => client.configGet(name).catch(() => undefined);
      const aofEnabled = (await client.info('persistence')).get('aof_enabled') === '1';
      const [dir, dbfilename, appenddirname, appendfilename] = [await get('dir'), await get('dbfilename'), await get('appenddirname'), await get('appendfilename')];
      if (dir && dbfilename) asked = { dir, dbfilename, appendonly: aofEnabled, appenddirname: appenddirname ?? 'appendonlydir', appendfilename: appendfilename ?? 'appendonly.aof' };
      else if (!configured) {
        throw new LifeboatError('InvalidConfig', `${describeRedis(target.connection)} does not answer CONFIG GET dir / dbfilename (renamed or denied)`, 'Set restore.rdbPath of the target to the server\'s RDB file (its dir/dbfilename)');
      }
      if (asked && configured && join(asked.dir, asked.dbfilename) !== configured) {
        throw new LifeboatError(
          'InvalidConfig',
          `restore.rdbPath is ${configured}, but the server at ${describeRedis(target.connection)} loads ${join(asked.dir, asked.dbfilename)}`,
          'Fix restore.rdbPath (or remove it: the server is asked); nothing was changed',
        );
      }
      if (!asked) asked = { dir: dirname(configured!), dbfilename: basename(configured!), appendonly: aofEnabled, appenddirname: 'appendonlydir', appendfilename: 'appendonly.aof' };
    } finally {
      client.close();
    }
  } catch (error) {
    if (!(error instanceof LifeboatError) || error.type !== 'RedisConnectionFailed' || !configured) throw error;
    log.warn('the server does not answer; restoring to restore.rdbPath', { rdbPath: configured });
  }
  const dir = asked?.dir ?? dirname(configured!);
  if (!isAbsolute(dir)) throw new LifeboatError('InvalidConfig', `the server's dir is ${dir}, not an absolute path`, 'Set restore.rdbPath of the target');
  const rdbPath = join(dir, asked?.dbfilename ?? basename(configured!));
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new LifeboatError(
      'InvalidConfig',
      `the server's data directory ${dir} is not on the worker's host (or not a directory)`,
      'A Redis restore in place writes the RDB file: run it from a worker on the Redis host, or restore with --into and copy the file there',
    );
  }
  const aofDir = join(dir, asked?.appenddirname ?? 'appendonlydir');
  // The server says whether it appends; a stopped one cannot: then an AOF directory beside the RDB counts as live.
  const aofLive = asked ? asked.appendonly : (await statIfAny(aofDir))?.isDirectory() === true;
  return { rdbPath, aof: aofLive ? { dir: aofDir, filename: asked?.appendfilename ?? 'appendonly.aof' } : null, owner: { uid: info.uid, gid: info.gid }, from: asked ? 'server' : 'config' };
}

/** What the restored RDB holds, as redis-check-rdb read it (the key-count check compares with it). */
export interface FetchedRdb {
  path: string;
  repository: string;
  sizeBytes: number;
  keys: number;
  expires: number;
  alreadyExpired: number;
}

/**
 * Fetches a backup's RDB into `destination` (verified: stored sha256, zstd's checksum, the RDB's
 * size, and its sha256 when the manifest has one), then redis-check-rdb reads it. With `refuseExisting` (--into) the destination must be
 * an absolute path that does not exist yet. `owner`: the file's owner (the server reads it).
 */
export async function fetchRdb(
  input: { target: ResolvedRedisTarget; manifest: RedisManifest; destination: string; owner?: { uid: number; gid: number }; refuseExisting?: boolean },
  env: NodeJS.ProcessEnv,
): Promise<FetchedRdb> {
  const { target, manifest, destination } = input;
  if (input.refuseExisting) {
    if (!isAbsolute(destination)) throw new LifeboatError('InvalidInput', `--into ${destination} is not an absolute path`, 'Give the absolute path of a file that does not exist yet; nothing was changed');
    if (await statIfAny(destination)) throw new LifeboatError('InvalidInput', `${destination} already exists`, 'Choose a path that does not exist yet; nothing was changed');
  }
  const context = Context.current();
  const progress = startProgress('download', manifest.objects[0]!.sizeBytes);
  try {
    const fetched = await fetchPayloadToFile({
      target,
      // A payload stored with the EOF mark after the RDB decodes to both; the file keeps the RDB.
      payload: { manifest, object: manifest.objects[0]!, decoded: { sizeBytes: manifest.source.sizeBytes + (manifest.source.eofMarkBytes ?? 0), sha256: manifest.source.sha256 } },
      truncateTo: manifest.source.sizeBytes,
      destination,
      progress,
      signal: context.cancellationSignal,
      env,
      owner: input.owner,
    });
    progress.setPhase('check');
    const check = await checkRdbFile(destination, context.cancellationSignal);
    if (!check.ok) {
      await rm(destination, { force: true });
      throw checkFailure(check, `the RDB of backup ${manifest.id}`, { version: manifest.source.rdbVersion, aux: { 'redis-ver': manifest.source.serverVersion } }, await redisToolsVersion());
    }
    return { path: destination, repository: fetched.repository, sizeBytes: fetched.sizeBytes, keys: check.keys, expires: check.expires, alreadyExpired: check.alreadyExpired };
  } finally {
    progress.stop();
  }
}

/** The names an in-place restore uses beside the live files (per run: two restores never share one). */
export function restoreNames(files: RedisDataFiles, run: string) {
  return {
    staging: `${files.rdbPath}.lifeboat-restore-${run}`,
    safety: `${files.rdbPath}.lifeboat-safety-${run}`,
    aofSafety: files.aof ? `${files.aof.dir}.lifeboat-safety-${run}` : null,
  };
}

async function serverAnswers(target: ResolvedRedisTarget, env: NodeJS.ProcessEnv): Promise<boolean> {
  try {
    const client = await RedisClient.connect({ ...target.connection, connectTimeoutSeconds: Math.min(target.connection.connectTimeoutSeconds, 5) }, env);
    client.close();
    return true;
  } catch (error) {
    return !(error instanceof LifeboatError && error.type === 'RedisConnectionFailed');
  }
}

/**
 * The swap, with the server stopped: the live RDB is kept whole as the safety copy (a hard link),
 * the staged one renamed over it (atomic). With an AOF, the live AOF directory is renamed to its
 * safety name and a new one holds the restored RDB as its base (Redis 7's multi-part AOF: a
 * manifest naming one base file), since a server that appends loads its AOF, not the RDB.
 * Idempotent: a retry after a crash finds the swap done and says so.
 */
export async function swapRdb(
  input: { target: ResolvedRedisTarget; files: RedisDataFiles; run: string },
  env: NodeJS.ProcessEnv,
): Promise<{ safetyCopy: string | null; aofSafetyCopy: string | null }> {
  const { target, files } = input;
  const names = restoreNames(files, input.run);
  const staged = await statIfAny(names.staging);
  if (!staged) {
    if (await statIfAny(names.safety)) return { safetyCopy: names.safety, aofSafetyCopy: names.aofSafety && (await statIfAny(names.aofSafety)) ? names.aofSafety : null };
    throw new LifeboatError('RestoreFailed', `the staged RDB ${names.staging} is gone before the swap`, 'Run the restore again; nothing was changed');
  }
  if (await serverAnswers(target, env)) {
    throw new LifeboatError(
      'HookFailed',
      `the server at ${describeRedis(target.connection)} still answers after the stop hook: replacing its files now would be undone (or overwritten) when it saves`,
      'Make hooks.stop stop the server and wait until it has exited (e.g. `systemctl stop redis-server`); nothing was swapped',
    );
  }
  const live = await statIfAny(files.rdbPath);
  if (live) {
    await rm(names.safety, { force: true });
    await link(files.rdbPath, names.safety);
  }
  if (files.aof) {
    const aofLive = await statIfAny(files.aof.dir);
    if (aofLive && names.aofSafety && !(await statIfAny(names.aofSafety))) await rename(files.aof.dir, names.aofSafety);
    await rm(files.aof.dir, { recursive: true, force: true });
    await mkdir(files.aof.dir, { mode: 0o755 });
    const base = `${files.aof.filename}.1.base.rdb`;
    await link(names.staging, join(files.aof.dir, base));
    const manifestPath = join(files.aof.dir, `${files.aof.filename}.manifest`);
    await writeFile(manifestPath, `file ${base} seq 1 type b\n`, { mode: 0o644 });
    await chown(files.aof.dir, files.owner.uid, files.owner.gid);
    await chown(manifestPath, files.owner.uid, files.owner.gid);
    await fsyncPath(files.aof.dir);
  }
  await rename(names.staging, files.rdbPath);
  await fsyncPath(dirname(files.rdbPath));
  log.warn('redis data replaced', { rdbPath: files.rdbPath, safetyCopy: live ? names.safety : null, aof: files.aof?.dir ?? null });
  return { safetyCopy: live ? names.safety : null, aofSafetyCopy: files.aof && names.aofSafety && (await statIfAny(names.aofSafety)) ? names.aofSafety : null };
}

/**
 * The check of the restarted server: it answers, has finished loading, and holds the keys the
 * restored RDB holds (over every database): exactly, or, with keys that carry a TTL, between the
 * count without them and the count without those already expired when the RDB was checked.
 */
export async function checkRedisKeys(
  input: { target: ResolvedRedisTarget; expected: { keys: number; expires: number; alreadyExpired: number }; timeoutSeconds: number },
  env: NodeJS.ProcessEnv,
): Promise<{ keys: number; databases: Record<string, number>; waitedMs: number }> {
  const { target, expected } = input;
  const started = Date.now();
  const progress = startProgress('load', 0);
  let last = 'no answer';
  try {
    for (;;) {
      try {
        const client = await RedisClient.connect({ ...target.connection, connectTimeoutSeconds: Math.min(target.connection.connectTimeoutSeconds, 5) }, env);
        try {
          const loading = (await client.info('persistence')).get('loading');
          if (loading === '0') {
            const totals = keyspaceTotals(await client.info('keyspace'));
            const most = expected.keys - expected.alreadyExpired;
            const least = expected.keys - expected.expires;
            if (totals.keys > most || totals.keys < least) {
              throw new LifeboatError(
                'VerificationFailed',
                `the restarted server at ${describeRedis(target.connection)} holds ${totals.keys} keys, the restored RDB ${expected.keys}` +
                  (expected.expires > 0 ? ` (${expected.expires} with a TTL: between ${least} and ${most} expected)` : '') +
                  ': it did not load the restored file',
                'The restore is rolled back to the safety copy. Check that the server loads dir/dbfilename (and, with appendonly yes, its AOF directory)',
              );
            }
            return { keys: totals.keys, databases: totals.databases, waitedMs: Date.now() - started };
          }
          last = 'still loading';
        } finally {
          client.close();
        }
      } catch (error) {
        if (error instanceof LifeboatError && error.type !== 'RedisConnectionFailed') throw error;
        last = (error as Error).message;
      }
      if (Date.now() - started > input.timeoutSeconds * 1000) {
        throw new LifeboatError('VerificationFailed', `the restarted server at ${describeRedis(target.connection)} did not finish loading within ${input.timeoutSeconds} s (last: ${last})`, 'The restore is rolled back to the safety copy; raise restore.loadTimeoutSeconds if loading takes longer');
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    progress.stop();
  }
}

/** Compensation: the safety copies back in place (the RDB, and the AOF directory); nothing to do when the swap never happened. */
export async function rollbackRdb(input: { files: RedisDataFiles; safetyCopy: string | null; aofSafetyCopy: string | null }): Promise<{ restored: boolean }> {
  const { files } = input;
  let restored = false;
  if (input.safetyCopy && (await statIfAny(input.safetyCopy))) {
    const back = `${files.rdbPath}.lifeboat-rollback`;
    await rm(back, { force: true });
    await link(input.safetyCopy, back);
    await rename(back, files.rdbPath);
    restored = true;
  }
  if (files.aof && input.aofSafetyCopy && (await statIfAny(input.aofSafetyCopy))) {
    await rm(files.aof.dir, { recursive: true, force: true });
    await rename(input.aofSafetyCopy, files.aof.dir);
    restored = true;
  }
  await fsyncPath(dirname(files.rdbPath));
  if (restored) log.warn('redis restore rolled back to the safety copy', { rdbPath: files.rdbPath, safetyCopy: input.safetyCopy });
  return { restored };
}

/** Removes files a run made (staged RDBs and their .partial); missing ones are fine (idempotent). */
export async function removeRedisFiles(input: { paths: string[] }): Promise<{ removed: number }> {
  let removed = 0;
  for (const path of input.paths) {
    for (const candidate of [path, `${path}.partial`]) {
      if (await statIfAny(candidate)) {
        await rm(candidate, { force: true, recursive: true });
        removed++;
      }
    }
  }
  return { removed };
}
