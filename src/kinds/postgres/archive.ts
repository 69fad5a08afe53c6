import { Context } from '@temporalio/activity';
import { openRepositories } from '../../../activities/repositories.js';
import { awaitArchivedStop, type ArchiveCheckResult } from '../../postgres/archive-check.js';
import { connectTo } from '../../postgres/dump-connection.js';
import { archiveStatus, type ArchiveStatus } from '../../postgres/wal-archive.js';
import type { ResolvedPostgresTarget } from './index.js';
import type { PostgresBaseManifest } from './manifest.js';

/** Archive health of a postgres target from pg_stat_archiver: last archived segment, failures, lag. */
export async function checkArchive(input: { target: ResolvedPostgresTarget }, env: NodeJS.ProcessEnv): Promise<ArchiveStatus> {
  const client = await connectTo(input.target.connection, env);
  try {
    return await archiveStatus(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * After a base backup: waits (archive.checkTimeoutSeconds) until the WAL segment holding its stop
 * point is archived in every repository of the target, heartbeating while it waits; else
 * ArchiveNotWorking quoting pg_stat_archiver. Reads only: safe to run again.
 */
export async function awaitArchivedStopStep(input: { target: ResolvedPostgresTarget; manifest: PostgresBaseManifest }, env: NodeJS.ProcessEnv): Promise<ArchiveCheckResult> {
  const { target, manifest } = input;
  const context = Context.current();
  const client = await connectTo(target.connection, env);
  try {
    return await awaitArchivedStop({
      client,
      server: `${target.connection.host}:${target.connection.port}`,
      archive: { target: target.name, repositories: openRepositories(target, env) },
      stop: { backupId: manifest.id, timeline: manifest.base.timeline, stopLsn: manifest.base.stopLsn, walSegmentSizeBytes: manifest.source.walSegmentSizeBytes },
      timeoutSeconds: target.archive?.checkTimeoutSeconds ?? 60,
      signal: context.cancellationSignal,
      onPoll: (waitedMs) => context.heartbeat({ waitedMs }),
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}
