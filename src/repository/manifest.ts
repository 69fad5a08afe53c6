import { z } from 'zod';

/**
 * manifest.json: written last, so a backup without one does not exist. It alone is enough to
 * restore: what was stored, how it was transformed, and the checksums to verify on the way back.
 */
import { manifestFormat } from './format.js';

export { manifestFormat };

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const storedObjectSchema = z.object({
  name: z.string().min(1),
  sizeBytes: z.number().int().nonnegative(),
  sha256,
});

export const stepRecordSchema = z.object({
  name: z.string(),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  durationMs: z.number().optional(),
  status: z.enum(['running', 'completed', 'failed', 'skipped']),
  attempts: z.number().int().optional(),
  detail: z.string().optional(),
});

/** What every kind of backup records: identity, stored objects, how they were transformed, and who wrote them. */
const commonFields = {
  format: z.literal(manifestFormat),
  id: z.string(),
  target: z.string(),
  createdAt: z.string(),
  snapshotAt: z.string(),
  objects: z.array(storedObjectSchema).min(1),
  compression: z.object({ algorithm: z.literal('zstd'), level: z.number(), implementation: z.string(), version: z.string() }),
  encryption: z.object({ algorithm: z.string(), keyId: z.string() }).nullable(),
  tools: z.record(z.string(), z.string()),
  parent: z.string().nullable(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }),
  timeline: z.array(stepRecordSchema),
};

export const sqliteManifestSchema = z.object({
  ...commonFields,
  kind: z.literal('sqlite'),
  source: z.object({
    path: z.string(),
    sizeBytes: z.number().int().nonnegative(),
    sha256,
    pageSize: z.number().int().positive(),
    pageCount: z.number().int().nonnegative(),
    journalMode: z.string(),
    integrityCheck: z.string(),
  }),
});

/** One file of a dump (toc.dat, <dumpId>.dat, or the custom-format archive) and the object that stores it. */
export const dumpFileSchema = z.object({
  /** The file's name in the dump directory (directory format) or "archive.pgdump" (custom format). */
  name: z.string().min(1),
  /** The stored object's name (see objects). */
  object: z.string().min(1),
  /** Size and sha256 of the file as pg_dump wrote it (before compression and encryption). */
  sizeBytes: z.number().int().nonnegative(),
  sha256,
});

/** A table's data at dump time: its COPY text's row count and sha256, exactly as pg_dump wrote it. */
export const tableFingerprintSchema = z.object({
  dumpId: z.number().int(),
  schema: z.string(),
  name: z.string(),
  /** pg_dump's COPY statement: the columns (and their order) the checksum covers. */
  copy: z.string(),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256,
});

export const postgresDumpManifestSchema = z.object({
  ...commonFields,
  kind: z.literal('postgres-dump'),
  source: z.object({
    database: z.string(),
    host: z.string(),
    port: z.number().int(),
    user: z.string(),
    serverVersion: z.string(),
    encoding: z.string(),
    collate: z.string(),
    ctype: z.string(),
    /** pg_database_size at dump time. */
    databaseSizeBytes: z.number().int().nonnegative(),
    /** Bytes pg_dump wrote (all files, uncompressed). */
    sizeBytes: z.number().int().nonnegative(),
    /**
     * One digest of the whole dump: sha256 of the lines "<sha256>  <name>\n" of every file, sorted
     * by name (what `sha256sum * | sha256sum` prints in the dump directory).
     */
    sha256,
  }),
  dump: z.object({
    format: z.enum(['directory', 'custom']),
    jobs: z.number().int().positive(),
    archiveVersion: z.string(),
    tocEntries: z.number().int().nonnegative(),
    files: z.array(dumpFileSchema).min(1),
    tables: z.array(tableFingerprintSchema),
    /** The scratch restore that checked the dump before its manifest was written; null when dump.verify is off. */
    verification: z
      .object({
        method: z.literal('scratch-restore'),
        verifiedAt: z.string(),
        tables: z.number().int().nonnegative(),
        rows: z.number().int().nonnegative(),
        durationMs: z.number().nonnegative(),
      })
      .nullable(),
  }),
});

const lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);
const isoMicros = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);

/**
 * A physical base backup (pg_basebackup, one zstd-compressed tar stream cut into parts; see
 * src/postgres/base-backup.ts): what PostgreSQL needs to recover from it and what a point-in-time
 * recovery needs to choose it. createdAt is when the backup started, snapshotAt when it stopped
 * (= base.stopTime): the backup alone restores the cluster as of that moment; objects are the
 * parts, in stream order. (Manifests of older backups also hold checkpointLsn, manifestChecksum,
 * tar.members and the raw offsets of parts; they parse, those fields are ignored.)
 */
export const postgresBaseManifestSchema = z.object({
  ...commonFields,
  kind: z.literal('postgres-base'),
  source: z.object({
    host: z.string(),
    port: z.number().int(),
    user: z.string(),
    serverVersion: z.string(),
    serverVersionNum: z.number().int(),
    /** pg_control's system identifier: WAL from another cluster can never be replayed on this backup. */
    systemIdentifier: z.string().regex(/^\d+$/),
    /** The bootstrap superuser: a recovered copy is entered as this role. */
    superuser: z.string(),
    walSegmentSizeBytes: z.number().int().positive(),
    dataChecksums: z.boolean(),
  }),
  base: z.object({
    label: z.string(),
    walMethod: z.literal('fetch'),
    timeline: z.number().int().positive(),
    startLsn: lsn,
    /** Replay of this backup is consistent from here on: no recovery target may lie before it. */
    stopLsn: lsn,
    startTime: isoMicros,
    stopTime: isoMicros,
    /** The first transaction id not yet assigned at stopTime (64-bit, decimal). */
    nextXid: z.string().regex(/^\d+$/),
    fileChecksums: z.string(),
    /** The size of the cluster's files as pg_basebackup counted them (to the kB): about the size of the tar (older backups: plus the backup_manifest inside it). */
    tar: z.object({ sizeBytes: z.number().int().positive() }),
    partSizeBytes: z.number().int().positive(),
    /** The stored objects, in stream order: consecutive pieces of one zstd stream of the tar. */
    parts: z.array(z.object({ object: z.string().min(1) })).min(1),
    /**
     * The backup_manifest (sizes and CRC32C of every file, the WAL range) that pg_verifybackup
     * checks, stored beside the parts: a tar the server compressed cannot have it appended. Absent
     * in backups taken with client-side compression into one stream, whose tar holds it.
     */
    backupManifest: z.object({ object: z.string().min(1) }).optional(),
  }),
});

/**
 * Every kind of backup. 'sqlite' is a SQLite snapshot; 'postgres-dump' a pg_dump archive;
 * 'postgres-base' a physical base backup (the start of a point-in-time recovery).
 */
export const manifestSchema = z.discriminatedUnion('kind', [sqliteManifestSchema, postgresDumpManifestSchema, postgresBaseManifestSchema]);

export type Manifest = z.infer<typeof manifestSchema>;
export type SqliteManifest = z.infer<typeof sqliteManifestSchema>;
export type PostgresDumpManifest = z.infer<typeof postgresDumpManifestSchema>;
export type PostgresBaseManifest = z.infer<typeof postgresBaseManifestSchema>;
export type DumpFile = z.infer<typeof dumpFileSchema>;
export type TableFingerprintRecord = z.infer<typeof tableFingerprintSchema>;
export type StoredObject = z.infer<typeof storedObjectSchema>;
export type StepRecord = z.infer<typeof stepRecordSchema>;
