import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { LifeboatError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import { listBaseBackups, type BaseBackupManifest } from './base-backup.js';
import { restoreBaseBackup, type RestoredBaseBackup } from './base-restore.js';
import { isClusterRunning, markForRecovery, removeCluster, startCluster, stopCluster, writeClusterSettings, type RunningCluster } from './cluster.js';
import { classifyRecoveryFailure, missingSegment, parseRecoveryLog, type RecoveryStop } from './recovery-log.js';
import { chooseBaseBackup, describeRecoveryTarget, parseLsn, parseRecoveryTarget, parseTimestamp, type RecoveryTarget, type RecoveryTimeline, recoveryTargetSettings } from './recovery-target.js';
import { chownToServerUser } from './tools.js';
import { describeArchiver } from './archive-check.js';
import { readWalRecord, type ArchiveStatus } from './wal-archive.js';
import { isProcessAlive } from '../process-alive.js';

/**
 * Point-in-time recovery: a base backup restored into a new data directory (base-restore.ts),
 * recovery settings written, PostgreSQL started on a free loopback port with a private socket, WAL
 * replayed from the archive through `lifeboat wal-fetch` until the target, then promoted to a
 * timeline of its own. Nothing live is touched: the recovered copy never archives (archive_mode
 * off, no archive_cleanup_command, no recovery_end_command), and failures are read from its log
 * and reported as typed errors (RecoveryTargetUnreachable, WalSegmentMissing, TimelineNotFound,
 * RecoveryTargetBeforeBackup, ChecksumMismatch).
 *
 * The steps are separate functions so that a runbook can run each as an activity: chooseBaseBackup
 * (pure), restoreBaseBackup, recoverToTarget. pointInTimeRecovery runs them in order.
 */

export interface RecoveryProgress {
  phase: 'fetch' | 'verify' | 'recover';
  /** fetch/verify: stored bytes; recover: WAL bytes replayed since the backup's start. */
  bytesDone: number;
  /** 0 when unknown (recovering to a time, a name, or the end of the archive). */
  bytesTotal: number;
  /** recover: the last replayed LSN. */
  replayLsn?: string;
}

/** Where a recovered cluster runs: plain data, so it can be an activity's result. */
export interface RecoveredCluster {
  dataDir: string;
  port: number;
  host: '127.0.0.1';
  /** Private directory of the Unix socket (trusted connections); removed by stopRecoveredCluster. */
  socketDir: string;
  logFile: string;
  /** The source's bootstrap superuser: connect as this role through the socket. */
  user: string;
  pid: number;
}

export interface RecoveryResult {
  cluster: RecoveredCluster;
  backupId: string;
  /** The target, in words. */
  target: string;
  reached: {
    /** The end of the last WAL record replayed. */
    lsn: string;
    /** Commit time of the last transaction replayed (UTC, microseconds), null when none was. */
    lastTransactionTime: string | null;
    /** PostgreSQL's "recovery stopping ..." line, null when replay ran to the end of the archive. */
    stop: RecoveryStop | null;
  };
  /** The timeline the recovered cluster now writes (a new one: the promotion branched off). */
  timeline: number;
  /** WAL files restore_command delivered. */
  walFilesRestored: number;
  durationMs: number;
}

export interface RecoverOptions {
  /** The restored base backup (restoreBaseBackup) and its manifest. */
  dataDir: string;
  manifest: BaseBackupManifest;
  recoveryTarget: RecoveryTarget;
  /** recovery_target_timeline; default 'latest'. */
  timeline?: RecoveryTimeline;
  /**
   * restore_command, e.g. walFetchCommand(...). PostgreSQL runs it through /bin/sh, as the server
   * user, in the data directory, with the server's environment (serverEnv).
   */
  restoreCommand: string;
  /** Environment of the server and so of restore_command (e.g. the S3 credentials wal-fetch reads). */
  serverEnv?: Record<string, string>;
  /** The WAL archive, listed when recovery stops early to tell a missing segment from the end of the archive. */
  archive?: { repositories: Repository[]; target: string };
  /**
   * The source server's archiver (pg_stat_archiver), asked when recovery stops for want of WAL: a
   * failing archive_command is the usual reason. It may be unreachable (it is often why one recovers).
   */
  sourceArchiver?: () => Promise<ArchiveStatus>;
  /** "host:port" of the source, for messages. */
  sourceName?: string;
  /** Give up (and stop the server) after this long; default 3600. */
  timeoutSeconds?: number;
  /** Default: a free port. */
  port?: number;
  onProgress?: (progress: RecoveryProgress) => void;
  signal?: AbortSignal;
  /** Default true: the server is shut down when this process exits. */
  stopOnExit?: boolean;
}

const hbaMarker = '# Lifeboat: recovered copy';
const logName = 'lifeboat-recovery.log';
const pollMs = 250;

/**
 * Recovers the restored base backup in dataDir to the target and returns the promoted cluster,
 * running. Safe to run again: a server left running by an earlier attempt is stopped and started
 * again, which resumes replay (or, when it had already promoted, just starts it); the result is
 * read from the same log.
 */
export async function recoverToTarget(options: RecoverOptions): Promise<RecoveryResult> {
  const started = Date.now();
  const { manifest, recoveryTarget, signal } = options;
  const dataDir = resolve(options.dataDir);
  const timeoutSeconds = options.timeoutSeconds ?? 3600;
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new LifeboatError('InvalidInput', `${dataDir} is not a data directory (no PG_VERSION)`, 'Restore a base backup there first (restoreBaseBackup)');
  }
  if (await isClusterRunning(dataDir)) await stopCluster(dataDir, { mode: 'fast' });
  const fresh = existsSync(join(dataDir, 'backup_label'));
  const promotedBefore = !fresh && !existsSync(join(dataDir, 'recovery.signal'));

  await prepareConfiguration(dataDir, options);
  if (fresh) await markForRecovery(dataDir, 'recovery');

  const logDir = join(dataDir, 'log');
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  await chownToServerUser(logDir);
  const logFile = join(logDir, logName);
  const socketDir = await mkdtemp(join(tmpdir(), 'lifeboat-pitr-'));
  const logText = async (from = 0): Promise<string> => (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(from).toString('utf8');
  // A failure is judged from this attempt's lines only; a result from the whole log (an earlier
  // attempt may have reached the target already).
  const thisAttempt = (await stat(logFile).catch(() => undefined))?.size ?? 0;
  const failure = async (cause: unknown): Promise<never> => {
    await stopCluster(dataDir, { mode: 'immediate' }).catch(() => undefined);
    await rm(socketDir, { recursive: true, force: true });
    const log = parseRecoveryLog(await logText(thisAttempt));
    const archivedSegments = options.archive ? await listArchivedSegments(options.archive.repositories, options.archive.target).catch(() => undefined) : undefined;
    const typed = classifyRecoveryFailure(log, {
      target: recoveryTarget,
      backupId: manifest.id,
      walSegmentSizeBytes: manifest.source.walSegmentSizeBytes,
      archivedSegments,
      logFile,
      backupStop: { timeline: manifest.base.timeline, stopLsn: manifest.base.stopLsn, stopTime: manifest.base.stopTime },
      ...(options.archive ? { archiveTarget: options.archive.target } : {}),
      ...(options.archive && archivedSegments ? { newestArchived: await newestArchived(options.archive, archivedSegments) } : {}),
      ...(options.sourceArchiver ? { sourceArchiver: await describeSourceArchiver(options.sourceArchiver, options.sourceName ?? 'the source') } : {}),
    });
    if (typed) throw typed;
    throw cause;
  };

  let cluster: RunningCluster;
  try {
    cluster = await startCluster({
      dataDir,
      socketDir,
      logFile,
      ...(options.port === undefined ? {} : { port: options.port }),
      settings: runSettings(),
      ...(options.serverEnv ? { env: options.serverEnv } : {}),
      user: manifest.source.superuser,
      timeoutSeconds,
      stopOnExit: options.stopOnExit ?? true,
    });
  } catch (error) {
    return failure(error);
  }

  const startLsn = parseLsn(manifest.base.startLsn);
  const targetLsn = recoveryTarget.kind === 'lsn' ? parseLsn(recoveryTarget.lsn) : undefined;
  const deadline = started + timeoutSeconds * 1000;
  let client: pg.Client | undefined;
  try {
    for (;;) {
      if (signal?.aborted) {
        const aborted = new Error('the point-in-time recovery was aborted', { cause: signal.reason });
        aborted.name = 'AbortError';
        await stopCluster(dataDir, { mode: 'immediate' });
        await rm(socketDir, { recursive: true, force: true });
        throw aborted;
      }
      if (!isProcessAlive(cluster.pid)) return await failure(new Error(`PostgreSQL stopped during recovery; see ${logFile}:\n${tail(await logText(thisAttempt))}`));
      try {
        client ??= await connectAs(cluster);
        const { rows } = await client.query<{ recovering: boolean; replay: string | null }>('SELECT pg_is_in_recovery() AS recovering, pg_last_wal_replay_lsn()::text AS replay');
        const row = rows[0]!;
        if (row.replay) {
          const replayed = parseLsn(row.replay) - startLsn;
          options.onProgress?.({
            phase: 'recover',
            bytesDone: Number(replayed > 0n ? replayed : 0n),
            bytesTotal: targetLsn !== undefined && targetLsn > startLsn ? Number(targetLsn - startLsn) : 0,
            replayLsn: row.replay,
          });
        }
        if (!row.recovering) break;
      } catch {
        // Not consistent yet (57P03), or going down: the liveness check above tells which.
        await client?.end().catch(() => undefined);
        client = undefined;
      }
      if (Date.now() > deadline) {
        await stopCluster(dataDir, { mode: 'immediate' });
        await rm(socketDir, { recursive: true, force: true });
        throw new Error(`recovery to ${describeRecoveryTarget(recoveryTarget)} did not finish within ${timeoutSeconds} s; the server was stopped. Last lines of ${logFile}:\n${tail(await logText())}`);
      }
      await new Promise((resolveSleep) => setTimeout(resolveSleep, pollMs));
    }

    const { rows } = await client!.query<{ replay: string | null; last_xact: string | null; wal: string }>(
      `SELECT pg_last_wal_replay_lsn()::text AS replay,
              to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_xact,
              pg_walfile_name(pg_current_wal_lsn()) AS wal`,
    );
    const row = rows[0]!;
    const log = parseRecoveryLog(await logText());
    if (recoveryTarget.kind === 'latest' && options.archive && !promotedBefore) {
      // Replay to the end of the archive stops quietly at a missing segment: check for a gap.
      const archivedSegments = await listArchivedSegments(options.archive.repositories, options.archive.target);
      const gap = missingSegment(log, { archivedSegments, walSegmentSizeBytes: manifest.source.walSegmentSizeBytes, backupId: manifest.id });
      if (gap) {
        await client!.end().catch(() => undefined);
        client = undefined;
        await stopCluster(dataDir, { mode: 'immediate' });
        await rm(socketDir, { recursive: true, force: true });
        throw gap;
      }
    }
    return {
      cluster: { dataDir, port: cluster.port, host: '127.0.0.1', socketDir, logFile, user: manifest.source.superuser, pid: cluster.pid },
      backupId: manifest.id,
      target: describeRecoveryTarget(recoveryTarget),
      reached: { lsn: row.replay ?? log.redoDoneAt ?? manifest.base.stopLsn, lastTransactionTime: row.last_xact ?? logTimeAsIso(log.lastTransactionTime), stop: log.stop ?? null },
      timeline: parseInt(row.wal.slice(0, 8), 16),
      walFilesRestored: log.restoredFiles.length,
      durationMs: Date.now() - started,
    };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/**
 * The recovered copy's configuration, written into its data directory so it also holds when
 * someone starts the copy again by hand: WAL comes from restore_command only and never goes
 * anywhere (a copy must not archive into, or clean up, the source's archive, nor wait for the
 * source's synchronous standbys), and it listens on loopback only. pg_hba.conf is replaced by one
 * that trusts the private socket and refuses TCP (the source's is kept as pg_hba.conf.lifeboat-source):
 * the source's rules may name users and networks that mean nothing here.
 */
async function prepareConfiguration(dataDir: string, options: RecoverOptions): Promise<void> {
  // Debian-style clusters keep these outside the data directory; PostgreSQL refuses to start without them.
  if (!existsSync(join(dataDir, 'postgresql.conf'))) await writeServerFile(join(dataDir, 'postgresql.conf'), '# Lifeboat: the source kept postgresql.conf outside its data directory\n');
  if (!existsSync(join(dataDir, 'pg_ident.conf'))) await writeServerFile(join(dataDir, 'pg_ident.conf'), '');
  const hba = join(dataDir, 'pg_hba.conf');
  const current = await readFile(hba, 'utf8').catch(() => undefined);
  if (current !== undefined && !current.startsWith(hbaMarker)) await rename(hba, `${hba}.lifeboat-source`);
  await writeServerFile(
    hba,
    [
      `${hbaMarker}: only the private Unix socket of Lifeboat's recovery reaches it (the source's rules are in pg_hba.conf.lifeboat-source).`,
      'local   all          all                  trust',
      'host    all          all   0.0.0.0/0      reject',
      'host    all          all   ::/0           reject',
      '',
    ].join('\n'),
  );
  await writeClusterSettings(dataDir, {
    restore_command: options.restoreCommand,
    archive_mode: 'off',
    archive_command: '',
    archive_cleanup_command: '',
    recovery_end_command: '',
    listen_addresses: '127.0.0.1',
    synchronous_standby_names: '',
    hot_standby: 'on',
    primary_conninfo: '',
    primary_slot_name: '',
    // Last, in this order: see recoveryTargetSettings.
    ...recoveryTargetSettings(options.recoveryTarget, options.timeline ?? 'latest'),
  });
}

/** Settings for this run only: the log is parsed, so it must be complete, in one file, and in English. */
function runSettings(): Record<string, string> {
  return {
    lc_messages: 'C',
    logging_collector: 'off',
    log_destination: 'stderr',
    log_line_prefix: '%m [%p] ',
    log_min_messages: 'warning',
    cluster_name: 'lifeboat-recovery',
  };
}

async function writeServerFile(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await chownToServerUser(path);
}

async function connectAs(cluster: Pick<RecoveredCluster, 'socketDir' | 'port' | 'user'>, database = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: cluster.user, database, application_name: 'lifeboat-recovery' });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/** A client connected to the recovered cluster through its private socket, as the source's superuser; the caller ends it. */
export function connectRecovered(cluster: RecoveredCluster, database = 'postgres'): Promise<pg.Client> {
  return connectAs(cluster, database);
}

/** Stops a recovered cluster (fast: a shutdown checkpoint) and removes its socket directory; the data directory stays. */
export async function stopRecoveredCluster(cluster: Pick<RecoveredCluster, 'dataDir' | 'socketDir'>, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  await stopCluster(cluster.dataDir, { mode });
  await rm(cluster.socketDir, { recursive: true, force: true });
}

/** Stops it and deletes the data directory too (a drill's scratch copy). */
export async function removeRecoveredCluster(cluster: Pick<RecoveredCluster, 'dataDir' | 'socketDir'>): Promise<void> {
  await removeCluster(cluster.dataDir);
  await rm(cluster.socketDir, { recursive: true, force: true });
}

/** Names of the WAL segments archived for target, from the first repository that answers. */
export async function listArchivedSegments(repositories: Repository[], target: string): Promise<string[]> {
  const problems: string[] = [];
  for (const repository of repositories) {
    try {
      const prefix = `${target}/wal/`;
      return (await repository.backend.list(prefix))
        .map((object) => object.key.slice(prefix.length))
        .filter((name) => /^[0-9A-F]{24}\.json$/.test(name))
        .map((name) => name.slice(0, -'.json'.length));
    } catch (error) {
      problems.push(`${repository.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new Error(`no repository answered for the WAL archive of "${target}": ${problems.join('; ')}`);
}

/** The newest segment of the archive, and when it was archived (from its record, when readable). */
async function newestArchived(archive: { repositories: Repository[]; target: string }, segments: readonly string[]): Promise<{ name: string; archivedAt: string | undefined } | null> {
  const name = [...segments].sort().at(-1);
  if (name === undefined) return null;
  for (const repository of archive.repositories) {
    const record = await readWalRecord(repository, archive.target, name).catch(() => undefined);
    if (record) return { name, archivedAt: record.archivedAt };
  }
  return { name, archivedAt: undefined };
}

/** The source's pg_stat_archiver in words, or why it could not be asked; bounded, the source may be gone. */
async function describeSourceArchiver(ask: () => Promise<ArchiveStatus>, server: string): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
  });
  try {
    return describeArchiver(await Promise.race([ask(), timeout]), server);
  } catch (error) {
    return `the source's pg_stat_archiver could not be read (${error instanceof Error ? error.message : String(error)})`;
  } finally {
    clearTimeout(timer);
  }
}

export { walFetchCommand } from './archive-commands.js';

/**
 * The log's "last completed transaction was at log time ..." as UTC ISO: what a re-run reports when
 * an earlier attempt's server already promoted (pg_last_xact_replay_timestamp() is then null).
 */
function logTimeAsIso(time: string | undefined): string | null {
  try {
    return time === undefined ? null : parseTimestamp(time).iso;
  } catch {
    return null;
  }
}

function tail(text: string, lines = 25): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// All steps

export interface PointInTimeRecoveryOptions extends Omit<RecoverOptions, 'manifest' | 'onProgress' | 'archive'> {
  /** The Lifeboat target: where base backups and WAL are in the repositories. */
  target: string;
  /** Base backups come from the first that has them; the WAL archive is checked in the same repositories. */
  repositories: Repository[];
  /** Pin a base backup instead of choosing the newest one before the target. */
  backupId?: string;
  encryptionKey?: Buffer;
  onProgress?: (progress: RecoveryProgress) => void;
  /** Default false: on failure the new data directory is removed (the error quotes the log). */
  keepOnFailure?: boolean;
}

export interface PointInTimeRecoveryResult extends RecoveryResult {
  /** Why this base backup. */
  choice: string;
  restore: RestoredBaseBackup;
}

/**
 * The base backup a recovery target needs (the newest that stopped before it, or the pinned one),
 * chosen from what the repositories hold; listing problems (unreadable manifests) are returned
 * for the caller to log.
 */
export async function chooseBaseBackupFrom(repositories: Repository[], target: string, recoveryTarget: RecoveryTarget, backupId?: string) {
  const listing = await listBaseBackups(repositories, target);
  const points = listing.backups.map(({ manifest }) => ({
    id: manifest.id,
    stopLsn: manifest.base.stopLsn,
    stopTime: manifest.base.stopTime,
    nextXid: manifest.base.nextXid,
    timeline: manifest.base.timeline,
    manifest,
  }));
  const choice = chooseBaseBackup(points, recoveryTarget, { targetName: target, ...(backupId ? { backupId } : {}) });
  return { ...choice, problems: listing.problems };
}

/**
 * Chooses the base backup, restores it into a new data directory and recovers it to the target.
 * The target is validated first (InvalidInput), and the choice made before anything is written
 * (RecoveryTargetBeforeBackup, BackupNotFound).
 */
export async function pointInTimeRecovery(options: PointInTimeRecoveryOptions): Promise<PointInTimeRecoveryResult> {
  const recoveryTarget = parseRecoveryTarget(options.recoveryTarget);
  const dataDir = resolve(options.dataDir);
  const choice = await chooseBaseBackupFrom(options.repositories, options.target, recoveryTarget, options.backupId);
  const restore = await restoreBaseBackup({
    manifest: choice.backup.manifest,
    repositories: options.repositories,
    dataDir,
    ...(options.encryptionKey ? { encryptionKey: options.encryptionKey } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // From here on dataDir holds what restoreBaseBackup put there (it refuses a directory in use).
  const { target: _target, repositories: _repositories, backupId: _backupId, encryptionKey: _key, keepOnFailure: _keep, ...recoverOptions } = options;
  try {
    const result = await recoverToTarget({
      ...recoverOptions,
      recoveryTarget,
      dataDir,
      manifest: choice.backup.manifest,
      archive: { repositories: options.repositories, target: options.target },
    });
    return { ...result, choice: choice.reason, restore };
  } catch (error) {
    if (!options.keepOnFailure) await removeCluster(dataDir).catch(() => undefined);
    throw error;
  }
}
