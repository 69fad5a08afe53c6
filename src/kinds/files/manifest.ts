import { z } from 'zod';
import { defineManifestKind, manifestEnvelope } from '../../repository/manifest-envelope.js';
import { treeCounts, treeObjects } from '../../tree/manifest.js';

/**
 * A files backup: tar parts (part-NNNNNN.tar.zst[.enc]) and an index object (index.json.zst[.enc])
 * that lists every entry and its part. The manifest holds the counts, and names only what needs
 * the operator's attention: files that changed while they were read, entries left out.
 */
export const filesManifestSchema = z.object({
  ...manifestEnvelope,
  kind: z.literal('files'),
  source: z.object({
    ...treeCounts,
    /** Files whose size or mtime changed while they were read (twice): stored as read, not torn silently. */
    changedWhileRead: z.array(z.string()),
    skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
  }),
  ...treeObjects,
});

export type FilesManifest = z.infer<typeof filesManifestSchema>;

export const filesManifest = defineManifestKind({
  schema: filesManifestSchema,
  sourceBytes: (manifest) => manifest.source.bytes,
  missingHint: (target) => `Run \`lifeboat backup ${target}\` first`,
});
