import { spawn } from 'node:child_process';
import { existsSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { projectRoot } from '../dev/tools.js';
import { LifeboatError } from '../errors.js';
import { openSpoolSignal } from './spool-signal.js';
import { chownToServerUser } from './tools.js';
import { postgresTargetNamed } from '../kinds/postgres/commands.js';
import { fetchWal, openWalArchive, readWalRecord, walArchiveSpec, walFileKind, type WalArchive } from './wal-archive.js';
import { isProcessAlive } from '../process-alive.js';

/**
 * Prefetch during recovery (recovery.prefetchSegments). PostgreSQL runs restore_command once per
 * WAL segment and replays it before it asks for the next, so a recovery that fetches one segment
 * per call pays the fetch (and a Node start) per 16 MiB, one after the other. With prefetch,
 * restore_command is the quick bin/lifeboat-wal-fetch: it moves the requested segment out of a
 * spool when it is there (a rename), and otherwise runs `lifeboat wal-fetch --prefetch <spool>`,
 * which fetches the segment itself and makes sure a prefetcher (a detached `lifeboat wal-prefetch`)
 * fills the spool with the segments that follow, two at a time, up to prefetchSegments of them.
 *
 * The spool (one directory per recovery, beside its data directory):
 *
 *   <spool>/target               the target the spool belongs to (written when the recovery creates it); another target's is never read
 *   <spool>/wanted               the last segment PostgreSQL asked for that was not in the spool
 *   <spool>/prefetcher.pid       the running prefetcher
 *   <spool>/next                 the segment the prefetcher starts next (the quick path waits for it)
 *   <spool>/<segment>            a verified segment (both checksums of its record matched), ready to move
 *   <spool>/<segment>.fetching   a segment being fetched (the quick path waits for it)
 *   <spool>/landed               a FIFO: the prefetcher writes a line to it whenever a fetch ends or what it announces
 *                                changes; the quick path blocks reading it instead of polling
 *   <spool>/calls.log            one line per call of the quick path: the segment and "spool", "waited" or "fallback"
 *
 * A spool never outlives its recovery: the recovery creates it before it starts the server and
 * removes it when it ends (promoted, failed or cancelled; the clean-up of a run removes it too),
 * and a prefetcher exits as soon as its spool is gone. Segments are keyed by their full name,
 * timeline included, so a prefetched file can only be handed over as the file PostgreSQL named;
 * when PostgreSQL asks for a segment the spool does not hold (a timeline switch, a restart
 * elsewhere), what the spool holds up to it, and on other timelines, is removed.
 *
 * A segment that is not in the archive ends the prefetch (the end of the archive, or of what is
 * archived so far: a later miss starts a new prefetcher). A segment that cannot be fetched intact
 * ends it too, without a file: the next call fetches it itself and fails as it always did
 * (ChecksumMismatch, exit 126, recovery stops).
 */

const targetFile = 'target';
const wantedFile = 'wanted';
const pidFile = 'prefetcher.pid';
const nextFile = 'next';
const fetchingSuffix = '.fetching';
const landedFifo = 'landed';
/** A prefetcher with nothing to do for this long exits (PostgreSQL stopped asking). */
const idleExitMs = 120_000;

export interface StartPrefetcherOptions {
  configPath: string;
  target: string;
  spool: string;
  /** The segment wal-fetch is fetching itself (it was not in the spool). */
  after: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Called by `wal-fetch --prefetch` before it fetches a segment the spool did not hold: records it
 * as wanted (the prefetcher restarts after it) and starts a prefetcher unless one runs. Nothing
 * when the spool does not exist (the recovery that owned it ended) or prefetch is off.
 */
export async function startPrefetcher(options: StartPrefetcherOptions): Promise<void> {
  if (walFileKind(options.after) !== 'segment' || !existsSync(options.spool)) return;
  const config = loadConfig(options.configPath);
  const segments = postgresTargetNamed(config, options.target, options.configPath, 'wal-fetch').recovery.prefetchSegments;
  if (segments === 0) return;
  await claimSpool(options.spool, options.target);
  await writeAtomically(join(options.spool, wantedFile), `${options.after}\n`);
  if (await prefetcherRunning(options.spool)) return;
  const child = spawn(
    process.execPath,
    [join(projectRoot, 'bin', 'lifeboat.js'), '--config', options.configPath, 'wal-prefetch', '--target', options.target, '--spool', options.spool],
    { detached: true, stdio: 'ignore', env: options.env ?? process.env },
  );
  child.unref();
}

/** The spool belongs to one target (createPrefetchSpool, or the first wal-fetch, names it); another target is refused. */
async function claimSpool(spool: string, target: string): Promise<void> {
  const path = join(spool, targetFile);
  const claimed = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (claimed === '') {
    await writeAtomically(path, `${target}\n`);
    return;
  }
  if (claimed !== target) {
    throw new LifeboatError('InvalidInput', `the prefetch spool ${spool} belongs to target "${claimed}", not "${target}"`, 'Give each recovery a prefetch spool of its own');
  }
}

/**
 * Makes this process the spool's prefetcher, unless another live one is: the pid file is created
 * whole or not at all (a complete temp file hard-linked to its name, which fails if the name
 * exists), and a pid file of a prefetcher that is gone is replaced.
 */
async function claimPidFile(spool: string): Promise<boolean> {
  const pidPath = join(spool, pidFile);
  const temp = `${pidPath}.tmp-${process.pid}`;
  await writeFile(temp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(temp, pidPath);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (await prefetcherRunning(spool)) return false;
      await unlink(pidPath).catch(() => undefined); // a prefetcher that is gone
    }
    return false;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function prefetcherRunning(spool: string): Promise<boolean> {
  const pid = Number((await readFile(join(spool, pidFile), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 && isProcessAlive(pid);
}

export interface PrefetcherOptions {
  archive: WalArchive;
  spool: string;
  segments: number;
  /** Fetches at once (default 2). */
  parallel?: number;
}

/**
 * `lifeboat wal-prefetch` (started by startPrefetcher): keeps up to `segments` verified segments
 * after the wanted one in the spool, until the end of the archive, a failure, the spool's
 * removal, or idleExitMs without anything to do.
 */
export async function runPrefetcher(options: PrefetcherOptions): Promise<void> {
  const { archive, spool } = options;
  const parallel = Math.max(1, Math.min(options.parallel ?? 2, options.segments));
  const pidPath = join(spool, pidFile);
  // One prefetcher per spool. Two can be started at once: a call that fell back starts one, and
  // the next call falls back too (and starts another) while the first is still loading Node, on a
  // busy machine for seconds. The second would remove the first's temp files (below) and fail its
  // fetches, ending the prefetch; so the pid file is claimed atomically, and the loser leaves.
  if (!(await claimPidFile(spool))) return;
  // What a prefetcher that was killed left: its markers would make the quick path wait for nothing.
  for (const entry of await readdir(spool).catch(() => [] as string[])) {
    if (entry.endsWith(fetchingSuffix) || entry.includes('.lifeboat-')) await unlink(join(spool, entry)).catch(() => undefined);
  }

  let wanted = '';
  let cursor: string | undefined;
  let announced: string | undefined;
  let segmentBytes: number | undefined;
  let ended = false;
  let lastProgress = Date.now();
  const inFlight = new Map<string, Promise<void>>();
  let wake: (() => void) | undefined;
  const wakeUp = (): void => wake?.();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(spool, () => wakeUp());
    watcher.on('error', () => undefined);
  } catch {
    // polled below
  }
  const landed = openSpoolSignal(join(spool, landedFifo));

  const fetchOne = async (name: string): Promise<void> => {
    const marker = join(spool, `${name}${fetchingSuffix}`);
    try {
      // Before the caller announces the segment after it: the quick path waiting for this one
      // must find it either announced or being fetched, never neither.
      writeFileSync(marker, '');
      const outcome = await fetchWal(archive, name, join(spool, name), { onWarning: () => undefined });
      if (outcome === 'missing') ended = true; // the end of the archive
    } catch {
      ended = true; // the next wal-fetch fetches it itself and says what is wrong
    } finally {
      await unlink(marker).catch(() => undefined);
      landed.tell();
    }
  };

  try {
    while (existsSync(spool) && !(ended && inFlight.size === 0)) {
      const asked = (await readFile(join(spool, wantedFile), 'utf8').catch(() => '')).trim();
      if (asked !== wanted && /^[0-9A-F]{24}$/.test(asked)) {
        wanted = asked;
        ended = false;
        segmentBytes ??= await segmentSizeOf(archive, asked);
        cursor = nextSegment(asked, segmentBytes);
        await dropStale(spool, asked, inFlight);
        lastProgress = Date.now();
      }
      if (cursor !== undefined && !ended) {
        const held = (await readySegments(spool)).length;
        while (!ended && inFlight.size < parallel && held + inFlight.size < options.segments) {
          const name: string = cursor;
          cursor = nextSegment(name, segmentBytes!);
          if (existsSync(join(spool, name))) continue;
          inFlight.set(
            name,
            fetchOne(name).finally(() => {
              inFlight.delete(name);
              lastProgress = Date.now();
              wakeUp();
            }),
          );
        }
        // The quick path waits for the segment the prefetcher starts next rather than fetch it
        // beside it; only while there is room to start it (else it would wait for nothing).
        const next = held + inFlight.size < options.segments ? cursor : undefined;
        if (next !== announced) {
          announced = next;
          if (next === undefined) await rm(join(spool, nextFile), { force: true });
          else await writeAtomically(join(spool, nextFile), `${next}\n`).catch(() => undefined);
          landed.tell();
        }
      } else if (announced !== undefined) {
        announced = undefined;
        await rm(join(spool, nextFile), { force: true });
        landed.tell();
      }
      if (Date.now() - lastProgress > idleExitMs) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    await Promise.allSettled(inFlight.values());
  } finally {
    watcher?.close();
    await rm(join(spool, nextFile), { force: true }).catch(() => undefined);
    const pid = (await readFile(pidPath, 'utf8').catch(() => '')).trim();
    if (pid === String(process.pid)) await rm(pidPath, { force: true });
    landed.close();
  }
}

/** Segments in the spool, verified and ready to be moved into place. */
async function readySegments(spool: string): Promise<string[]> {
  return (await readdir(spool).catch(() => [] as string[])).filter((entry) => /^[0-9A-F]{24}$/.test(entry));
}

/**
 * Removes what PostgreSQL will not ask for any more once it asked for `wanted` (which the spool
 * did not hold): segments up to it, and segments of other timelines.
 */
async function dropStale(spool: string, wanted: string, inFlight: Map<string, Promise<void>>): Promise<void> {
  for (const name of await readySegments(spool)) {
    if (inFlight.has(name)) continue;
    if (name.slice(0, 8) !== wanted.slice(0, 8) || name <= wanted) await unlink(join(spool, name)).catch(() => undefined);
  }
}

/** The WAL segment size of the archive, from the record of a segment in it (16 MiB unless initdb said otherwise). */
async function segmentSizeOf(archive: WalArchive, name: string): Promise<number> {
  for (const repository of archive.repositories) {
    const record = await readWalRecord(repository, archive.target, name).catch(() => undefined);
    if (record) return record.original.sizeBytes;
  }
  return 16 << 20;
}

/** The segment after name: timeline, then the segment number split into a 4 GiB "log" and a segment within it. */
export function nextSegment(name: string, segmentBytes: number): string {
  const perLog = 0x1_0000_0000 / segmentBytes;
  let log = parseInt(name.slice(8, 16), 16);
  let segment = parseInt(name.slice(16, 24), 16) + 1;
  if (segment >= perLog) {
    segment = 0;
    log += 1;
  }
  const hex = (value: number) => value.toString(16).toUpperCase().padStart(8, '0');
  return `${name.slice(0, 8)}${hex(log)}${hex(segment)}`;
}

/** `lifeboat wal-prefetch`: opens the target's archive and runs the prefetcher. */
export async function walPrefetchCommand(options: { configPath: string; target: string; spool: string; env?: NodeJS.ProcessEnv }): Promise<void> {
  const config = loadConfig(options.configPath);
  const segments = postgresTargetNamed(config, options.target, options.configPath, 'wal-prefetch').recovery.prefetchSegments;
  if (segments === 0 || !existsSync(options.spool)) return;
  const spec = walArchiveSpec(config, options.target, options.configPath);
  await runPrefetcher({ archive: openWalArchive({ ...spec, compression: { ...spec.compression, threads: 1 } }, options.env ?? process.env), spool: options.spool, segments });
}

/**
 * A private spool for one recovery of target (the recovery owns it: created before the server
 * starts, removed when it ends). What an earlier attempt left there is removed first.
 */
export async function createPrefetchSpool(spool: string, target: string): Promise<void> {
  await rm(spool, { recursive: true, force: true });
  await mkdir(spool, { mode: 0o700 });
  await writeFile(join(spool, targetFile), `${target}\n`, { mode: 0o600 });
  await chownToServerUser(spool, { recursive: true });
}

/**
 * Ends a recovery's prefetch: stops its prefetcher (it holds nothing of value: its files are in
 * the spool) and removes the spool, retrying while a fetch that was under way still lands in it.
 */
export async function removePrefetchSpool(spool: string): Promise<void> {
  const pid = Number((await readFile(join(spool, pidFile), 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 0) {
    // Only the prefetcher of this spool: a pid may have been reused since.
    const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (commandLine.includes('wal-prefetch') && commandLine.includes(spool)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  await rm(spool, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

/** Where the prefetch spool of a recovery into dataDir goes: beside it, on the same file system (the quick path renames). */
export function prefetchSpoolFor(dataDir: string): string {
  return `${dataDir}.wal-prefetch`;
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}
