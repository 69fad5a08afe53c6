import { z } from 'zod';
import { defineManifestKind, manifestEnvelope, sha256 } from '../../repository/manifest-envelope.js';

/** A SQLite backup: one snapshot of the database file, stored as one object (db.sqlite.zst[.enc]). */
export const sqliteManifestSchema = z.object({
  ...manifestEnvelope,
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

export type SqliteManifest = z.infer<typeof sqliteManifestSchema>;

export const sqliteManifest = defineManifestKind({
  schema: sqliteManifestSchema,
  sourceBytes: (manifest) => manifest.source.sizeBytes,
  missingHint: (target) => `Run \`lifeboat backup ${target}\` first`,
});
