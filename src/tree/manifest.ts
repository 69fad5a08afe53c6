/** Manifest fields of directory-tree backups (`files`, `secrets`): counts, the parts, the index object. */
import { z } from 'zod';
import { storedObjectSchema } from '../repository/manifest-envelope.js';

export const partRecordSchema = storedObjectSchema.extend({
  entries: z.number().int().nonnegative(),
  tarBytes: z.number().int().nonnegative(),
});

export const indexObjectSchema = storedObjectSchema.extend({ entries: z.number().int().nonnegative() });

/** What a tree backup holds, in numbers (no name but the roots'). */
export const treeCounts = {
  roots: z.array(z.object({ name: z.string(), path: z.string() })),
  entries: z.number().int().nonnegative(),
  files: z.number().int().nonnegative(),
  directories: z.number().int().nonnegative(),
  symlinks: z.number().int().nonnegative(),
  hardlinks: z.number().int().nonnegative(),
  /** Bytes of the files' contents. */
  bytes: z.number().int().nonnegative(),
};

export const treeObjects = {
  /** The tar parts, in order; entry i of the index names the part that holds it. */
  parts: z.array(partRecordSchema).min(1),
  /** The index object: every entry (name, type, size, mode, owner, mtime, sha256, link target, part). */
  index: indexObjectSchema,
};
