import { z } from 'zod';
import { defineManifestKind, manifestEnvelope, sha256 } from '../../repository/manifest-envelope.js';

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
  ...manifestEnvelope,
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
  ...manifestEnvelope,
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

export type PostgresDumpManifest = z.infer<typeof postgresDumpManifestSchema>;
export type PostgresBaseManifest = z.infer<typeof postgresBaseManifestSchema>;
export type DumpFile = z.infer<typeof dumpFileSchema>;
export type TableFingerprintRecord = z.infer<typeof tableFingerprintSchema>;

/** A pg_dump backup (method "dump"): a logical copy of one database. */
export const postgresDumpManifest = defineManifestKind({
  schema: postgresDumpManifestSchema,
  sourceBytes: (manifest) => manifest.source.sizeBytes,
  missingHint: (target) => `Run \`lifeboat backup ${target} --method dump\` first; base backups are restored with \`lifeboat pitr ${target}\``,
  verifiedWhenTaken: (manifest) => manifest.dump.verification?.verifiedAt ?? null,
});

/** A base backup (method "base"): the whole cluster, the start of a point-in-time recovery. */
export const postgresBaseManifest = defineManifestKind({
  schema: postgresBaseManifestSchema,
  sourceBytes: (manifest) => manifest.base.tar.sizeBytes,
  missingHint: (target) => `Run \`lifeboat backup ${target} --method base\` first`,
});
