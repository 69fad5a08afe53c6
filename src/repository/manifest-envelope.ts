import { z } from 'zod';
import { manifestFormat } from './format.js';

/**
 * What every manifest.json holds, whatever the kind of backup: the envelope (identity, stored
 * objects and their sha256, how they were transformed, who wrote them). Each kind of target adds
 * its own fields in its manifest schema (src/kinds/<kind>/manifest.ts, built on manifestEnvelope);
 * src/repository/manifest.ts joins them into the one schema every stored manifest is read with.
 */

export { manifestFormat };

export const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

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

/**
 * Objects a backup references outside its own folder: content-addressed objects shared between
 * backups (blobs: `<target>/blobs/<sha256>`). Too many to list in the manifest (it travels through
 * workflow history), so they are listed in one of the backup's own objects, `listing`: plain JSON
 * lines of {key (relative to the target), sizeBytes, sha256, addedBy (the backup that stored it)}
 * (src/repository/shared-objects.ts reads it for verify-stored, verify, copy and retention).
 */
export const sharedObjectsSchema = z.object({
  listing: z.string().min(1),
  count: z.number().int().nonnegative(),
  sizeBytes: z.number().int().nonnegative(),
  /** Of those, stored by this backup (the others were already in the repository). */
  added: z.number().int().nonnegative(),
  addedBytes: z.number().int().nonnegative(),
});
/** A repository a backup did not land in, and why. */
export const missingCopySchema = z.object({ repository: z.string(), reason: z.string() });

/** What every kind of backup records: identity, stored objects, how they were transformed, and who wrote them. */
export const manifestEnvelope = {
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
  /** Shared objects this backup references (absent: it has none; see sharedObjectsSchema). */
  shared: sharedObjectsSchema.optional(),
  /**
   * Where the backup run stored the backup (its objects whole, and this manifest), as it knew when
   * it wrote the manifest; absent in manifests written before minCopies (every repository). A
   * record of that run, not the state of other repositories: whether a repository holds the backup
   * now is whether that repository holds its manifest (a copy may be withdrawn later, or added by
   * `lifeboat copy`, which writes this manifest as it is).
   */
  copies: z.array(z.string()).optional(),
  /** The target's repositories the backup run did not store it in, and why (unreachable, failed mid-stream). */
  missing: z.array(missingCopySchema).optional(),
};


/**
 * One kind of backup (the manifest's `kind`): its schema and what generic code asks of it. A kind
 * of target may make several (PostgreSQL: pg_dump backups and base backups).
 */
export interface ManifestKind<Schema extends ManifestSchema = ManifestSchema> {
  readonly kind: z.output<Schema>['kind'];
  readonly schema: Schema;
  /** Bytes of the source as backed up (the SIZE column of `lifeboat backups`). */
  sourceBytes(manifest: z.output<Schema>): number;
  /** What to do when a target has no backup of this kind: the hint of BackupNotFound. */
  missingHint(target: string): string;
  /** When the backup was proven restorable as it was taken (e.g. a pg_dump restored into a scratch database), if it was. */
  verifiedWhenTaken?(manifest: z.output<Schema>): string | null;
}

/** A manifest schema: the envelope plus a literal `kind` and the kind's own fields. */
export type ManifestSchema = z.ZodObject<typeof manifestEnvelope & { kind: z.ZodLiteral<string> }>;

export function defineManifestKind<Schema extends ManifestSchema>(definition: Omit<ManifestKind<Schema>, 'kind'> & { schema: Schema }): ManifestKind<Schema> {
  return { ...definition, kind: definition.schema.shape.kind.value as z.output<Schema>['kind'] };
}

export type StoredObject = z.infer<typeof storedObjectSchema>;
export type SharedObjects = z.infer<typeof sharedObjectsSchema>;
export type MissingCopy = z.infer<typeof missingCopySchema>;
export type StepRecord = z.infer<typeof stepRecordSchema>;

/** Bytes a backup stored: its own objects, and the shared objects it added (those it reuses were stored by earlier backups). */
export function storedBytesOf(manifest: { objects: StoredObject[]; shared?: SharedObjects | undefined }): number {
  return manifest.objects.reduce((sum, object) => sum + object.sizeBytes, 0) + (manifest.shared?.addedBytes ?? 0);
}
