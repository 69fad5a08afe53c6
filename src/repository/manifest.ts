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

export const manifestSchema = z.object({
  format: z.literal(manifestFormat),
  id: z.string(),
  target: z.string(),
  kind: z.literal('sqlite'),
  createdAt: z.string(),
  snapshotAt: z.string(),
  source: z.object({
    path: z.string(),
    sizeBytes: z.number().int().nonnegative(),
    sha256,
    pageSize: z.number().int().positive(),
    pageCount: z.number().int().nonnegative(),
    journalMode: z.string(),
    integrityCheck: z.string(),
  }),
  objects: z.array(storedObjectSchema).min(1),
  compression: z.object({ algorithm: z.literal('zstd'), level: z.number(), implementation: z.string(), version: z.string() }),
  encryption: z.object({ algorithm: z.string(), keyId: z.string() }).nullable(),
  tools: z.record(z.string(), z.string()),
  parent: z.string().nullable(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }),
  timeline: z.array(stepRecordSchema),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type StoredObject = z.infer<typeof storedObjectSchema>;
export type StepRecord = z.infer<typeof stepRecordSchema>;
