import type { PostgresConnectionConfig } from '../../config/schema.js';
import { LifeboatError } from '../../errors.js';
import { connectTo } from '../../postgres/dump-connection.js';
import { archiveStatus, readWalRecord, type ArchiveStatus } from '../../postgres/wal-archive.js';
import type { Repository } from '../../repository/repository.js';
import type { ArchiverFacts, RepositoryState, WalHead } from '../../state/model.js';
import type { KindRepositoryRead } from '../contract.js';

/** How long monitoring waits for a PostgreSQL server before it reports it unreachable. */
const connectTimeoutMs = 5_000;

/**
 * The server's own account of its WAL archiving (pg_stat_archiver, through archiveStatus), for
 * status and metrics. Never throws: a server that cannot be asked is a fact too.
 */
export async function readArchiver(connection: PostgresConnectionConfig, env: NodeJS.ProcessEnv, now: number): Promise<ArchiverFacts> {
  try {
    const client = await withTimeout(connectTo(connection, env), connectTimeoutMs, (late) => void late.end().catch(() => undefined));
    try {
      const [status, mode] = await Promise.all([archiveStatus(client), client.query<{ archive_mode: string }>('SELECT current_setting(\'archive_mode\') AS archive_mode')]);
      return archiverFacts(status, mode.rows[0]?.archive_mode ?? null, now);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    return {
      reachable: false,
      error: error instanceof LifeboatError ? `${error.type}: ${error.message}` : error instanceof Error ? error.message : String(error),
      archiveMode: null,
      failing: false,
      lastArchivedWal: null,
      lastArchivedAt: null,
      lastFailedWal: null,
      lastFailedAt: null,
      lag: null,
    };
  }
}

/** The promise's value, or a rejection after ms; a value that arrives too late is handed to discard (a connection is closed, not leaked). */
function withTimeout<T>(promise: Promise<T>, ms: number, discard: (late: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`no connection within ${ms / 1000} s`));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) discard(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * Lag in seconds: how long the oldest WAL not in the archive has waited, at most; that is the
 * time since the last file was archived while anything was written after it, else 0 (an idle
 * server whose last segment is archived lags by nothing, however long ago that was).
 */
export function archiverFacts(status: ArchiveStatus, archiveMode: string | null, now: number): ArchiverFacts {
  const lastArchived = status.lastArchivedAt ? Date.parse(status.lastArchivedAt) : NaN;
  return {
    reachable: true,
    error: null,
    archiveMode,
    failing: status.failing,
    lastArchivedWal: status.lastArchivedWal,
    lastArchivedAt: status.lastArchivedAt,
    lastFailedWal: status.lastFailedWal,
    lastFailedAt: status.lastFailedAt,
    lag: status.lag
      ? { segments: status.lag.segments, bytes: status.lag.bytes, seconds: status.lag.bytes > 0 && Number.isFinite(lastArchived) ? Math.max(0, (now - lastArchived) / 1000) : 0 }
      : null,
  };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: the WAL archive's head and the point-in-time recovery window

const segmentName = /^[0-9A-F]{24}(\.partial)?$/;

/** The WAL archive of one repository, for status and metrics: its head and the PITR window it gives. */
export async function readWal(input: KindRepositoryRead): Promise<NonNullable<RepositoryState['wal']>> {
  const { attempt } = input;
  const [head, oldestBase] = await Promise.all([attempt('WAL archive head', () => walHead(input)), attempt('oldest base backup', () => oldestBaseBackup(input))]);
  if (input.memory) {
    if (head) input.memory.walHead = head;
    if (oldestBase) input.memory.oldestBase = oldestBase;
    else delete input.memory.oldestBase;
  }
  return { head, pitrWindow: { start: oldestBase?.stopTime ?? null, end: oldestBase && head ? head.archivedAt : null } };
}

async function walHead(input: KindRepositoryRead): Promise<WalHead | null> {
  const { repository, target } = input;
  // The server archives in order and wal-push succeeds only once every repository holds the
  // file: the server's last archived file is the head of every repository that has it.
  if (input.serverArchivedWal && segmentName.test(input.serverArchivedWal)) {
    const record = await readWalRecord(repository, target, input.serverArchivedWal);
    if (record) return { name: record.name, archivedAt: record.archivedAt };
  }
  const known = input.memory?.walHead;
  const names = known ? await listSegmentsFrom(repository, target, known.name) : await listSegments(repository, `${target}/wal/`);
  const newest = names.at(-1);
  if (newest === undefined) return known ?? null;
  if (known && newest === known.name) return known;
  const record = await readWalRecord(repository, target, newest);
  return record ? { name: record.name, archivedAt: record.archivedAt } : (known ?? null);
}

/** Names of archived segments (by their records) under prefix, sorted. */
async function listSegments(repository: Repository, prefix: string): Promise<string[]> {
  const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  return (await repository.backend.list(prefix))
    .map((object) => object.key.slice(base.length))
    .filter((name) => name.endsWith('.json'))
    .map((name) => name.slice(0, -'.json'.length))
    .filter((name) => segmentName.test(name))
    .sort();
}

/**
 * Segments from the known head's log on (its timeline and the same 4 GiB "log", and the next
 * one): a bounded listing instead of the whole archive. A switch to a new timeline is seen when
 * the server can be asked again, or on the next restart.
 */
async function listSegmentsFrom(repository: Repository, target: string, known: string): Promise<string[]> {
  const timeline = known.slice(0, 8);
  const log = Number.parseInt(known.slice(8, 16), 16);
  const next = (log + 1).toString(16).toUpperCase().padStart(8, '0');
  const [current, following] = await Promise.all([
    listSegments(repository, `${target}/wal/${timeline}${known.slice(8, 16)}`),
    listSegments(repository, `${target}/wal/${timeline}${next}`),
  ]);
  return [...current, ...following];
}

/** The oldest base backup: the remembered one while it exists, else the first one listed. */
async function oldestBaseBackup(input: KindRepositoryRead): Promise<{ id: string; stopTime: string } | null> {
  const { repository, target } = input;
  const known = input.memory?.oldestBase;
  if (known && (await repository.backend.head(repository.manifestKey(target, known.id)))) return known;
  for (const id of (await repository.listBackupIds(target)).reverse()) {
    const manifest = await repository.readManifestIfAny(target, id, 'postgres-base').catch(() => undefined);
    if (manifest?.kind === 'postgres-base') return { id, stopTime: manifest.base.stopTime };
  }
  return null;
}

