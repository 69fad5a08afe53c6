import { z } from 'zod';
import { defineManifestKind, manifestEnvelope } from '../../repository/manifest-envelope.js';

/**
 * A blobs backup: its index (one of its own objects: every path with its metadata and blob ids,
 * and where each blob is stored) and the listing of the shared objects (packs under
 * `<target>/blobs/`) it references. The counts here say what changed since its parent.
 */
export const blobsManifestSchema = z.object({
  ...manifestEnvelope,
  kind: z.literal('blobs'),
  source: z.object({
    path: z.string(),
    files: z.number().int().nonnegative(),
    directories: z.number().int().nonnegative(),
    symlinks: z.number().int().nonnegative(),
    sizeBytes: z.number().int().nonnegative(),
  }),
  /** The index object (compressed, encrypted when configured): name and entries. */
  index: z.object({ object: z.string(), entries: z.number().int().nonnegative(), blobs: z.number().int().nonnegative() }),
  changes: z.object({
    newFiles: z.number().int().nonnegative(),
    changedFiles: z.number().int().nonnegative(),
    unchangedFiles: z.number().int().nonnegative(),
    removedFiles: z.number().int().nonnegative(),
    /** Files read (new, changed, or every file with --rehash). */
    readFiles: z.number().int().nonnegative(),
    readBytes: z.number().int().nonnegative(),
    newBlobs: z.number().int().nonnegative(),
    newBlobBytes: z.number().int().nonnegative(),
    rehash: z.boolean(),
    /** Files whose size or mtime changed while they were read, twice: stored as read, named in the result. */
    changedWhileRead: z.number().int().nonnegative(),
  }),
});

export type BlobsManifest = z.infer<typeof blobsManifestSchema>;

export const blobsManifest = defineManifestKind({
  schema: blobsManifestSchema,
  sourceBytes: (manifest) => manifest.source.sizeBytes,
  missingHint: (target) => `Run \`lifeboat backup ${target}\` first`,
});
