/**
 * Many complete backups of one target, made in seconds by writing objects and manifests straight
 * into a repository (no database, no Temporal): for retention, verification and status tests and
 * benchmarks that need hundreds of backups at chosen times. Every manifest is a valid SQLite
 * manifest whose objects exist with the right sizes and sha256, so verification with read-data
 * finds them valid; the payloads are random bytes, not restorable databases.
 *
 *   const manifests = await writeFixtureBackups(repository, 'orders', { count: 1000, objectsPerBackup: 3 });
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { makeBackupId } from '../../src/backup-id.js';
import { mapInParallel } from '../../src/in-parallel.js';
import { manifestFormat, type Manifest, type SqliteManifest } from '../../src/repository/manifest.js';
import type { Repository } from '../../src/repository/repository.js';

export interface FixtureOptions {
  count: number;
  /** The newest backup's time; default now. */
  newest?: Date;
  /** Time between two backups, in ms; default one hour. */
  intervalMs?: number;
  /** Or explicit times (then count is their number), any order. */
  times?: Date[];
  objectsPerBackup?: number;
  /** Bytes per object; default 64. */
  objectBytes?: number;
  /** Writes at once; default 16. */
  concurrency?: number;
}

/** Writes the backups (objects first, manifest last, as a real backup does) and returns their manifests, newest first. */
export async function writeFixtureBackups(repository: Repository, target: string, options: FixtureOptions): Promise<Manifest[]> {
  const newest = options.newest ?? new Date();
  const interval = options.intervalMs ?? 3_600_000;
  const times = options.times ?? Array.from({ length: options.count }, (_, i) => new Date(newest.getTime() - i * interval));
  const manifests = await mapInParallel(times, options.concurrency ?? 16, async (time) => {
    const id = makeBackupId(time, randomBytes(3).toString('hex'));
    const objects: SqliteManifest['objects'] = [];
    for (let i = 0; i < (options.objectsPerBackup ?? 1); i++) {
      const bytes = randomBytes(options.objectBytes ?? 64);
      const name = i === 0 ? 'db.sqlite.zst' : `part-${String(i).padStart(4, '0')}`;
      await repository.backend.put(repository.objectKey(target, id, name), Readable.from([bytes]));
      objects.push({ name, sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
    const manifest: SqliteManifest = {
      format: manifestFormat,
      id,
      target,
      kind: 'sqlite',
      createdAt: time.toISOString(),
      snapshotAt: time.toISOString(),
      objects,
      compression: { algorithm: 'zstd', level: 3, implementation: 'fixture', version: '0' },
      encryption: null,
      tools: {},
      parent: null,
      workflow: { workflowId: 'fixture', runId: 'fixture' },
      timeline: [],
      source: { path: '/fixture.sqlite', sizeBytes: 4096, sha256: objects[0]!.sha256, pageSize: 4096, pageCount: 1, journalMode: 'wal', integrityCheck: 'ok' },
    };
    await repository.writeManifest(manifest);
    return manifest;
  });
  return manifests.sort((a, b) => (a.id < b.id ? 1 : -1));
}

/** A base backup's manifest and one small stored part (not restorable): for WAL window, verify and retention tests. */
export async function writeFixtureBaseBackup(
  repository: Repository,
  target: string,
  base: { time: Date; timeline?: number; startLsn: string; stopLsn: string; walSegmentSizeBytes?: number },
): Promise<Manifest> {
  const id = makeBackupId(base.time, randomBytes(3).toString('hex'));
  const bytes = randomBytes(64);
  await repository.backend.put(repository.objectKey(target, id, 'base.tar.zst.0000'), Readable.from([bytes]));
  const object = { name: 'base.tar.zst.0000', sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  const micros = `${base.time.toISOString().slice(0, 19)}.000000Z`;
  const manifest: Manifest = {
    format: manifestFormat,
    id,
    target,
    kind: 'postgres-base',
    createdAt: base.time.toISOString(),
    snapshotAt: base.time.toISOString(),
    objects: [object],
    compression: { algorithm: 'zstd', level: 1, implementation: 'fixture', version: '0' },
    encryption: null,
    tools: {},
    parent: null,
    workflow: { workflowId: 'fixture', runId: 'fixture' },
    timeline: [],
    source: {
      host: 'fixture',
      port: 5432,
      user: 'postgres',
      serverVersion: '15.0',
      serverVersionNum: 150000,
      systemIdentifier: '1',
      superuser: 'postgres',
      walSegmentSizeBytes: base.walSegmentSizeBytes ?? 16 * 1024 * 1024,
      dataChecksums: false,
    },
    base: {
      label: 'fixture',
      walMethod: 'fetch',
      timeline: base.timeline ?? 1,
      startLsn: base.startLsn,
      stopLsn: base.stopLsn,
      startTime: micros,
      stopTime: micros,
      nextXid: '1000',
      fileChecksums: 'none',
      tar: { sizeBytes: 4096 },
      partSizeBytes: 64,
      parts: [{ object: object.name }],
    },
  };
  await repository.writeManifest(manifest);
  return manifest;
}
