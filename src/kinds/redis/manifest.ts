import { z } from 'zod';
import { defineManifestKind, manifestEnvelope, sha256 } from '../../repository/manifest-envelope.js';

/** A Redis backup: one point-in-time RDB, streamed from the server and stored as one object (dump.rdb.zst[.enc]). */
export const redisManifestSchema = z.object({
  ...manifestEnvelope,
  kind: z.literal('redis'),
  source: z.object({
    host: z.string(),
    port: z.number().int(),
    /** redis_version of INFO server. */
    serverVersion: z.string(),
    /** The RDB's format version (10: Redis 7.0). */
    rdbVersion: z.number().int(),
    /** The RDB's size. */
    sizeBytes: z.number().int().nonnegative(),
    /**
     * sha256 of the RDB, when the worker read it (checkOnBackup, and every backup made before
     * 2026-12): checked again on restore. Absent when zstd read redis-cli's output directly; the
     * decoded RDB is then checked by zstd's content checksum, its size and redis-check-rdb.
     */
    sha256: sha256.optional(),
    /**
     * Bytes stored after the RDB in the payload: the 40-byte EOF mark of a diskless transfer, which
     * redis-cli writes to a pipe and which is kept when zstd reads redis-cli's output directly. A
     * restore decodes sizeBytes + eofMarkBytes and drops them. Absent: 0.
     */
    eofMarkBytes: z.number().int().nonnegative().optional(),
    /** Keys in the snapshot, over every database; with keyCountFrom. */
    keys: z.number().int().nonnegative(),
    /** Keys with a TTL. */
    expires: z.number().int().nonnegative(),
    /** "redis-check-rdb": read from the RDB itself; "info": INFO keyspace just before the transfer (checkOnBackup off). */
    keyCountFrom: z.enum(['redis-check-rdb', 'info']),
    /** INFO keyspace before the transfer: keys per database (db0: 12, ...). */
    databases: z.record(z.string(), z.number().int().nonnegative()),
    /** "diskless": the server forked straight into the socket; "disk": it wrote an RDB to its own disk first (repl-diskless-sync no); null: CONFIG GET was denied. */
    transfer: z.enum(['diskless', 'disk']).nullable(),
    /** Whether redis-check-rdb read the whole stream as it was stored. */
    checkedOnBackup: z.boolean(),
  }),
});

export type RedisManifest = z.infer<typeof redisManifestSchema>;

export const redisManifest = defineManifestKind({
  schema: redisManifestSchema,
  sourceBytes: (manifest) => manifest.source.sizeBytes,
  missingHint: (target) => `Run \`lifeboat backup ${target}\` first`,
});
