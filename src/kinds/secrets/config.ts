import { z } from 'zod';
import { drillObjectives } from '../../config/common.js';
import { drillCommandSchema, treeTargetSchema } from '../../tree/config.js';

/** A target of type secrets in lifeboat.config.yaml: a files target's fields, without names that must exist in a drill (they would be names of secrets). */
export const secretsTargetSchema = treeTargetSchema({
  type: z
    .literal('secrets')
    .describe(
      'Directory trees of secrets (keys, tokens, credentials files): always encrypted; names and contents exist only inside the encrypted payload, never in a manifest, log, result or history.',
    ),
  roots: 'Directories of secrets to back up (their paths are in the config, and so not secret; the names inside them are).',
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
});

export type SecretsTargetConfig = z.output<typeof secretsTargetSchema>;
