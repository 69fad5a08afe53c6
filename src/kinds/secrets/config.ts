import { z } from 'zod';
import { drillObjectives, hooksSchema, targetObjectives, targetRepositories, targetMinCopies } from '../../config/common.js';
import { targetRetention } from '../../config/retention.js';
import { targetSchedules } from '../../config/schedules.js';
import { drillCommandSchema, excludeSchema, includeSchema, partSizeSchema, symlinksOutsideRootSchema, treeRootsSchema } from '../../tree/config.js';

/** A target of type secrets in lifeboat.config.yaml. */
export const secretsTargetSchema = z
  .object({
    type: z.literal('secrets').describe(
      'Directory trees of secrets (keys, tokens, credentials files): always encrypted; names and contents exist only inside the encrypted payload, never in a manifest, log, result or history.',
    ),
    roots: treeRootsSchema.describe('Directories of secrets to back up (their paths are in the config, and so not secret; the names inside them are).'),
    include: includeSchema,
    exclude: excludeSchema,
    partSizeMiB: partSizeSchema,
    symlinksOutsideRoot: symlinksOutsideRootSchema,
    repositories: targetRepositories.describe('Names of the repositories every backup is written to.'),
    minCopies: targetMinCopies,
    hooks: hooksSchema.optional().describe('Commands and checks around the swap of a restore in place.'),
    drill: z
      .object({
        ...drillObjectives,
        scratchDir: z.string().optional().describe('Where the drill restores its scratch copy (a private 0700 directory); default: the system temp dir.'),
        commands: z
          .array(drillCommandSchema)
          .default([])
          .describe('Commands run in the restored copy that must succeed; their output is never reported (only the exit status), as it could show a secret.'),
      })
      .strict()
      .default({ commands: [] })
      .describe('What a restore drill checks and measures (every file\'s sha256 is always checked).'),
    objectives: targetObjectives,
    schedules: targetSchedules,
    retention: targetRetention,
  })
  .strict();

export type SecretsTargetConfig = z.output<typeof secretsTargetSchema>;
