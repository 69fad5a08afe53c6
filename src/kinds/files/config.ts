import { z } from 'zod';
import { drillObjectives } from '../../config/common.js';
import { drillCommandSchema, treeTargetSchema } from '../../tree/config.js';

/** A target of type files in lifeboat.config.yaml. */
export const filesTargetSchema = treeTargetSchema({
  type: z.literal('files').describe('Directory trees: configuration, TLS certificates, application data (every file with its mode, owner, mtime and sha256).'),
  roots: 'Directories to back up. In a backup, entries are named `<root>/<path inside it>`, where `<root>` is the directory\'s last segment (two roots may not share one).',
  drill: z
    .object({
      ...drillObjectives,
      scratchDir: z.string().optional().describe('Where the drill restores its scratch copy; default: the system temp dir.'),
      mustExist: z.array(z.string().min(1)).default([]).describe('Names (as stored: `<root>/<path>`) that must exist in the restored copy.'),
      commands: z.array(drillCommandSchema).default([]).describe('Commands run in the restored copy that must succeed (e.g. `nginx -t -p nginx/`).'),
    })
    .strict()
    .default({ mustExist: [], commands: [] })
    .describe('What a restore drill checks and measures (every file\'s sha256 is always checked).'),
});

export type FilesTargetConfig = z.output<typeof filesTargetSchema>;
