import { z } from 'zod';
import { defineManifestKind, manifestEnvelope } from '../../repository/manifest-envelope.js';
import { treeCounts, treeObjects } from '../../tree/manifest.js';

/**
 * A secrets backup: encrypted tar parts and an encrypted index. The plaintext manifest holds
 * counts, sizes and sha256s only: no name of anything inside the roots.
 */
export const secretsManifestSchema = z.object({
  ...manifestEnvelope,
  kind: z.literal('secrets'),
  source: z.object({
    ...treeCounts,
    /** How many files changed while they were read (twice); which ones is not said outside the payload. */
    changedWhileRead: z.number().int().nonnegative(),
    skipped: z.number().int().nonnegative(),
  }),
  ...treeObjects,
});

export type SecretsManifest = z.infer<typeof secretsManifestSchema>;

export const secretsManifest = defineManifestKind({
  schema: secretsManifestSchema,
  sourceBytes: (manifest) => manifest.source.bytes,
  missingHint: (target) => `Run \`lifeboat backup ${target}\` first`,
});
