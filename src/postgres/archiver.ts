import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  clearFailure,
  failedNames,
  formatIdentity,
  identityOf,
  markedNames,
  prepareSpool,
  readHeartbeat,
  readMark,
  removeHeartbeat,
  removeMark,
  renewHeartbeat,
  spoolPaths,
  writeFailure,
  writeHeartbeat,
  writeMark,
  writeStatus,
  type ArchiverStatus,
} from './archive-spool.js';
import { LifeboatError } from '../errors.js';
import { openSpoolSignal } from './spool-signal.js';
import { pushWal, walFileKind, type WalArchive, type WalPushResult } from './wal-archive.js';
import { isProcessAlive } from '../process-alive.js';

/**
 * `lifeboat archiver`: the resident pusher of archive.mode "async", one per database host and
 * target, running as the server's OS user beside PostgreSQL.
 *
 * PostgreSQL marks a WAL file ready (pg_wal/archive_status/<name>.ready) before it calls
 * archive_command for it, one file at a time, in order. The archiver watches that directory and
 * pushes the ready files itself, `parallel` at a time, oldest first, through the same pushWal as
 * `lifeboat wal-push` (so the same records, the same refusal of different content under an
 * archived name, the same "durable in every repository" before success). For each file it makes
 * durable it writes a mark into the spool (archive-spool.ts); archive_command, the quick shell
 * script bin/lifeboat-wal-push, then finds its file done and exits 0 without starting Node.
 *
 * Why a daemon of its own rather than the worker: pg_wal is on the database host and readable by
 * the server's OS user only, while the worker may run anywhere, as another user; and archiving
 * must go on while Temporal is down. Why resident rather than started by archive_command (as
 * pgBackRest's archive-push starts its async process): a systemd unit restarts it, its logs and
 * metrics have one home, and archive_command stays a script that never forks a daemon out of
 * PostgreSQL's archiver. When it is not running, archive_command pushes its file itself, as in
 * mode "on": slower, never unsafe.
 *
 * When the archive cannot be reached, ready files pile up in pg_wal. With queueMaxBytes, once the
 * waiting files exceed it, the archiver drops them all (marks them "dropped": archive_command
 * reports them archived, loudly, so PostgreSQL may recycle them), like pgBackRest's
 * archive-push-queue-max. Without it, nothing is ever dropped.
 */

export interface ArchiverLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface ArchiverOptions {
  archive: WalArchive;
  /** The cluster's data directory (pg_wal and pg_wal/archive_status are under it). */
  dataDir: string;
  /** This target's spool: <archive.spoolDir>/<target>. */
  spool: string;
  parallel: number;
  waitSeconds: number;
  queueMaxBytes?: number;
  log: ArchiverLog;
  signal: AbortSignal;
  /** How often ready files are looked for besides the watch (default 1000 ms). */
  scanIntervalMs?: number;
  /** Told after every change of the counters (metrics). */
  onStatus?: (status: ArchiverStatus) => void;
}

/** A stale heartbeat: the archiver is gone (archive_command uses the same limit). */
export const heartbeatStaleMs = 10_000;
const maxBackoffMs = 5_000;

/**
 * Runs until signal aborts; then lets the pushes under way finish (each is atomic anyway) and
 * removes the heartbeat, so archive_command stops waiting for it at once.
 */
export async function runArchiver(options: ArchiverOptions): Promise<void> {
  const { archive, spool, log, signal } = options;
  const walDir = join(options.dataDir, 'pg_wal');
  const statusDir = join(walDir, 'archive_status');
  await readdir(statusDir).catch((error: NodeJS.ErrnoException) => {
    throw new LifeboatError(
      'InvalidInput',
      `${statusDir} cannot be read (${error.code ?? error.message}): the archiver needs the data directory of the cluster that archives into target "${archive.target}"`,
      'Pass --data-dir <the data directory> and run the archiver as the server\'s OS user (e.g. postgres)',
    );
  });
  await prepareSpool(spool);
  const running = await readHeartbeat(spool);
  if (running && running.ageMs < heartbeatStaleMs && running.pid !== process.pid && isProcessAlive(running.pid)) {
    throw new LifeboatError('InvalidInput', `an archiver (pid ${running.pid}) already runs for target "${archive.target}" with spool ${spool}`, 'Run one archiver per target and spool');
  }
  await writeHeartbeat(spool, options.waitSeconds);
  // archive_command waits on it for its mark instead of polling (bin/lifeboat-wal-push).
  const news = openSpoolSignal(spoolPaths(spool).news);

  const status: ArchiverStatus = {
    target: archive.target,
    pid: process.pid,
    updatedAt: new Date().toISOString(),
    queue: { files: 0, bytes: 0 },
    queueMaxBytes: options.queueMaxBytes ?? null,
    archivedFiles: 0,
    droppedFiles: 0,
    failedAttempts: 0,
    lastArchived: null,
    lastDropped: null,
    lastFailure: null,
  };
  const active = new Map<string, Promise<void>>();
  let consecutiveFailures = 0;
  let pausedUntil = 0;
  let wake: (() => void) | undefined;
  const wakeUp = (): void => {
    wake?.();
  };

  const publish = async (): Promise<void> => {
    status.updatedAt = new Date().toISOString();
    options.onStatus?.(status);
    await writeStatus(spool, status).catch(() => undefined);
  };

  const push = async (name: string): Promise<void> => {
    const path = join(walDir, name);
    await clearFailure(spool, name);
    try {
      const before = await identityOf(path);
      if (before === undefined) return; // archived and recycled meanwhile (by archive_command itself)
      const result: WalPushResult = await pushWal(archive, path);
      const after = await identityOf(path);
      if (after === undefined || formatIdentity(after) !== formatIdentity(before) || BigInt(result.sizeBytes) !== before.size) {
        log.warn({ name }, 'the WAL file changed while it was archived; not marked, it is pushed again');
        return;
      }
      // Durable in every repository (pushWal returned): only now may archive_command be told.
      await writeMark(spool, name, { status: 'archived', identity: formatIdentity(before), sha256: result.sha256, archivedAt: new Date().toISOString() });
      news.tell();
      consecutiveFailures = 0;
      status.archivedFiles += 1;
      status.lastArchived = { name, at: new Date().toISOString() };
      log.info({ name, repositories: result.repositories.map((r) => `${r.name}: ${r.outcome}`) }, 'archived');
    } catch (error) {
      consecutiveFailures += 1;
      pausedUntil = Date.now() + Math.min(maxBackoffMs, 500 * 2 ** Math.min(consecutiveFailures, 8));
      const message = `${error instanceof LifeboatError ? `${error.type}: ` : ''}${error instanceof Error ? error.message : String(error)}`;
      status.failedAttempts += 1;
      status.lastFailure = { name, at: new Date().toISOString(), message };
      await writeFailure(spool, name, `the archiver could not archive ${name} (it retries): ${message}`).catch(() => undefined);
      news.tell();
      log.error({ name, err: message, retryInMs: pausedUntil - Date.now() }, 'archiving failed');
    }
  };

  const scan = async (): Promise<void> => {
    const entries = await readdir(statusDir).catch(() => [] as string[]);
    const ready = entries
      .filter((entry) => entry.endsWith('.ready'))
      .map((entry) => entry.slice(0, -'.ready'.length))
      .filter(isArchivable)
      .sort(archiveOrder);
    const readySet = new Set(ready);
    // Marks of files PostgreSQL is done with (their .ready became .done) are of no further use.
    for (const name of await markedNames(spool)) if (!readySet.has(name) && !active.has(name)) await removeMark(spool, name);
    for (const name of await failedNames(spool)) if (!readySet.has(name) && !active.has(name)) await clearFailure(spool, name);

    const waiting: Array<{ name: string; identity: string; size: number }> = [];
    for (const name of ready) {
      const identity = await identityOf(join(walDir, name));
      if (identity === undefined) continue;
      const mark = await readMark(spool, name);
      if (mark && mark.identity === formatIdentity(identity)) continue;
      waiting.push({ name, identity: formatIdentity(identity), size: Number(identity.size) });
    }
    status.queue = { files: waiting.length, bytes: waiting.reduce((sum, file) => sum + file.size, 0) };

    if (options.queueMaxBytes !== undefined && status.queue.bytes > options.queueMaxBytes) {
      // All of them, the oldest (PostgreSQL's current call, often being retried) included: pg_wal
      // shrinks only once PostgreSQL gets past it. A push of it still under way may store it all
      // the same; its mark then says so.
      const dropped = waiting;
      for (const file of dropped) await writeMark(spool, file.name, { status: 'dropped', identity: file.identity, sha256: '-', archivedAt: new Date().toISOString() });
      news.tell();
      if (dropped.length > 0) {
        status.droppedFiles += dropped.length;
        status.lastDropped = { names: dropped.map(({ name }) => name), at: new Date().toISOString() };
        log.error(
          { dropped: dropped.map(({ name }) => name), queueBytes: status.queue.bytes, queueMaxBytes: options.queueMaxBytes, lastFailure: status.lastFailure?.message },
          `WAL DROPPED: ${dropped.length} WAL files (${status.queue.bytes} bytes) waited for an archive that cannot be reached, more than archive.queueMaxBytes; ` +
            `they are reported archived WITHOUT being stored, so point-in-time recovery cannot cross ${dropped[0]!.name} to ${dropped.at(-1)!.name} until the next base backup`,
        );
        status.queue = { files: 0, bytes: 0 };
      }
      await publish();
      return;
    }

    if (Date.now() >= pausedUntil) {
      for (const { name } of waiting) {
        if (active.size >= options.parallel) break;
        if (active.has(name)) continue;
        const pushing = push(name).finally(() => {
          active.delete(name);
          void publish();
          wakeUp();
        });
        active.set(name, pushing);
        // After a failure, one file at a time until one succeeds: the archive is probably unreachable.
        if (consecutiveFailures > 0) break;
      }
    }
    await publish();
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(statusDir, () => wakeUp());
    watcher.on('error', () => undefined);
  } catch (error) {
    log.warn({ err: (error as Error).message }, 'cannot watch archive_status; looking every scan interval');
  }
  const heartbeat = setInterval(() => void renewHeartbeat(spool).catch(() => writeHeartbeat(spool, options.waitSeconds).catch(() => undefined)), 1000);
  signal.addEventListener('abort', wakeUp, { once: true });
  log.info({ target: archive.target, dataDir: options.dataDir, spool, parallel: options.parallel, queueMaxBytes: options.queueMaxBytes ?? null }, 'archiver running');
  try {
    while (!signal.aborted) {
      await scan();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(10, Math.min(options.scanIntervalMs ?? 1000, pausedUntil > Date.now() ? pausedUntil - Date.now() : Infinity)));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    clearInterval(heartbeat);
    watcher?.close();
    await removeHeartbeat(spool);
    await Promise.allSettled(active.values());
    news.close();
    await publish();
    log.info({ target: archive.target, archived: status.archivedFiles, dropped: status.droppedFiles }, 'archiver stopped');
  }
}

function isArchivable(name: string): boolean {
  try {
    walFileKind(name);
    return true;
  } catch {
    return false;
  }
}

/** Timeline history files first (a recovery needs them to follow a timeline), then by name: PostgreSQL's own order. */
function archiveOrder(a: string, b: string): number {
  const history = (name: string) => (name.endsWith('.history') ? 0 : 1);
  return history(a) - history(b) || (a < b ? -1 : a > b ? 1 : 0);
}
