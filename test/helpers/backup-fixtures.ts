import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { makeBackupId } from '../../src/backup-id.js';
import { manifestFormat, type SqliteManifest } from '../../src/repository/manifest.js';
import type { Repository } from '../../src/repository/repository.js';

/**
 * Small but complete SQLite backups (a manifest and `objectsPerBackup` tiny payload objects), for
 * tests and benchmarks that need a repository holding many backups without making them for real.
 * The backups are `everySeconds` apart and end `endsAgoSeconds` before now; returns their ids,
 * oldest first.
 */
export async function writeFixtureBackups(
  repository: Repository,
  target: string,
  count: number,
  options: { objectsPerBackup?: number; everySeconds?: number; endsAgoSeconds?: number; concurrency?: number } = {},
): Promise<string[]> {
  const objectsPerBackup = options.objectsPerBackup ?? 1;
  const every = options.everySeconds ?? 3600;
  const newestAt = Date.now() - (options.endsAgoSeconds ?? 60) * 1000;
  const ids = Array.from({ length: count }, (_, index) => makeBackupId(new Date(newestAt - (count - 1 - index) * every * 1000), index.toString(16)));
  let next = 0;
  const writeOne = async (index: number): Promise<void> => {
    const id = ids[index]!;
    const objects = [];
    for (let part = 0; part < objectsPerBackup; part++) {
      const body = Buffer.from(`fixture ${target} ${id} part ${part}\n`);
      const name = `part-${String(part).padStart(4, '0')}.zst`;
      await repository.backend.put(repository.objectKey(target, id, name), Readable.from([body]));
      objects.push({ name, sizeBytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    }
    const at = new Date(newestAt - (count - 1 - index) * every * 1000).toISOString();
    const manifest: SqliteManifest = {
      format: manifestFormat,
      id,
      target,
      kind: 'sqlite',
      createdAt: at,
      snapshotAt: at,
      objects,
      compression: { algorithm: 'zstd', level: 3, implementation: 'fixture', version: '0' },
      encryption: null,
      tools: {},
      parent: null,
      workflow: { workflowId: `backup-${target}-fixture`, runId: id },
      timeline: [{ name: 'snapshot-and-upload', startedAt: at, endedAt: at, durationMs: 0, status: 'completed' }],
      source: { path: `/fixture/${target}.sqlite`, sizeBytes: 4096, sha256: '0'.repeat(64), pageSize: 4096, pageCount: 1, journalMode: 'wal', integrityCheck: 'ok' },
    };
    await repository.writeManifest(manifest);
  };
  // Oldest first in each lane, so the newest-backup pointer moves forward as it would in real life.
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency ?? 8, count) }, async () => {
      while (next < count) await writeOne(next++);
    }),
  );
  return ids;
}
