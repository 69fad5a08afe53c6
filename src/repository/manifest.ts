import { z } from 'zod';
import { manifestKinds, type Manifest } from '../kinds/index.js';

/**
 * manifest.json: written last, so a backup without one does not exist. It alone is enough to
 * restore: what was stored, how it was transformed, and the checksums to verify on the way back.
 *
 * Every stored manifest is read with this one schema: the envelope every kind shares
 * (manifest-envelope.ts) plus the fields of its kind, joined from the kinds of target that the
 * registry lists (src/kinds/index.ts), told apart by `kind`.
 */
export const manifestSchema = z.discriminatedUnion(
  'kind',
  manifestKinds.map((kind) => kind.schema) as unknown as [(typeof manifestKinds)[number]['schema'], ...Array<(typeof manifestKinds)[number]['schema']>],
) as unknown as z.ZodType<Manifest>;

export type { Manifest };
export { manifestEnvelope, manifestFormat, stepRecordSchema, storedObjectSchema, type StepRecord, type StoredObject } from './manifest-envelope.js';
// The kinds' own schemas, where code outside their folders has always found them.
export { sqliteManifestSchema, type SqliteManifest } from '../kinds/sqlite/manifest.js';
export {
  dumpFileSchema,
  postgresBaseManifestSchema,
  postgresDumpManifestSchema,
  tableFingerprintSchema,
  type DumpFile,
  type PostgresBaseManifest,
  type PostgresDumpManifest,
  type TableFingerprintRecord,
} from '../kinds/postgres/manifest.js';
