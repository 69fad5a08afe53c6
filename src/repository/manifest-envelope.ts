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
export type StepRecord = z.infer<typeof stepRecordSchema>;
