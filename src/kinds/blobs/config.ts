import { z } from 'zod';
import { drillObjectives, hooksSchema, targetObjectives, targetRepositories, targetMinCopies } from '../../config/common.js';
import { targetRetention } from '../../config/retention.js';
import { targetSchedules } from '../../config/schedules.js';

/** A target of type blobs in lifeboat.config.yaml: a directory tree of uploads or media. */
export const blobsTargetSchema = z
  .object({
    type: z.literal('blobs').describe('A directory tree of uploads or media, backed up incrementally by content (each distinct content stored once per repository).'),
    path: z.string().min(1).describe('Root directory of the tree.'),
    repositories: targetRepositories.describe('Names of the repositories every backup is written to.'),
    minCopies: targetMinCopies,
    hooks: hooksSchema.optional().describe('Commands and checks around the swap of a restore in place.'),
    concurrency: z.number().int().min(1).max(64).default(8).describe('Files read at once during a backup, and stored objects fetched at once during a restore.'),
    packSizeMiB: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(8)
      .describe('Contents are stored in packs of about this many MiB (before compression), so a tree of many small files makes few objects; a file larger than 4 MiB is cut into 4 MiB blobs.'),
    drill: z
      .object({
        ...drillObjectives,
        scratchDir: z.string().optional().describe('Where the drill restores its scratch copy; default: the system temp dir.'),
        mustExist: z.array(z.string().min(1)).default([]).describe('Paths (relative to the root) the restored tree must hold for the drill to pass.'),
        minFiles: z.number().int().nonnegative().optional().describe('The restored tree must hold at least this many files.'),
      })
      .strict()
      .default({ mustExist: [] })
      .describe('What a restore drill checks and measures (every restored blob is checked against its sha256 in any case).'),
    objectives: targetObjectives,
    schedules: targetSchedules,
    retention: targetRetention,
  })
  .strict();

export type BlobsTargetConfig = z.output<typeof blobsTargetSchema>;
