import { z } from 'zod';
import { drillSchema, hooksSchema, targetMinCopies, targetObjectives, targetRepositories } from '../../config/common.js';
import { targetRetention } from '../../config/retention.js';
import { targetSchedules } from '../../config/schedules.js';

const checkKind = z.enum(['integrity_check', 'quick_check']);

/** A target of type sqlite in lifeboat.config.yaml. */
export const sqliteTargetSchema = z
  .object({
    type: z.literal('sqlite').describe('A SQLite database file (WAL or rollback journal).'),
    path: z.string().min(1).describe('Path of the live SQLite database file.'),
    repositories: targetRepositories.describe('Names of the repositories every backup is written to.'),
    hooks: hooksSchema.optional().describe('Commands and checks around the swap of a restore.'),
    drill: drillSchema.default({ smokeChecks: [] }).describe('What a restore drill checks and measures.'),
    minCopies: targetMinCopies,
    objectives: targetObjectives,
    schedules: targetSchedules,
    retention: targetRetention,
    checks: z
      .object({
        backup: checkKind.default('quick_check').describe('The check of every backup\'s snapshot, while it streams.'),
        restore: checkKind.default('integrity_check').describe('The check of a restored copy before it goes live (restore) or is smoke-tested (drill).'),
      })
      .strict()
      .default({ backup: 'quick_check', restore: 'integrity_check' })
      .describe(
        'SQLite checks. quick_check verifies every page and b-tree (about 1.5 s per GiB here); integrity_check also cross-checks ' +
          'every index against its table (about 12 s per GiB with one index).',
      ),
  })
  .strict();

export type SqliteTargetConfig = z.output<typeof sqliteTargetSchema>;
