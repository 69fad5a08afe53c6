import { connectTo } from '../../postgres/dump-connection.js';
import { archiveStatus, type ArchiveStatus } from '../../postgres/wal-archive.js';
import type { ResolvedPostgresTarget } from './index.js';

/** Archive health of a postgres target from pg_stat_archiver: last archived segment, failures, lag. */
export async function checkArchive(input: { target: ResolvedPostgresTarget }, env: NodeJS.ProcessEnv): Promise<ArchiveStatus> {
  const client = await connectTo(input.target.connection, env);
  try {
    return await archiveStatus(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
