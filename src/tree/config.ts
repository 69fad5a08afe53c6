/**
 * Config pieces of the kinds that back up directory trees (`files`, `secrets`): roots, globs,
 * parts, and the drill's checks. Each kind's schema (src/kinds/<kind>/config.ts) is built from them.
 */
import { basename } from 'node:path';
import { z } from 'zod';
import { hooksSchema, targetMinCopies, targetObjectives, targetRepositories } from '../config/common.js';
import { targetRetention } from '../config/retention.js';
import { targetSchedules } from '../config/schedules.js';

export const treeRootsSchema = z
  .array(z.string().min(1))
  .min(1)
  .superRefine((roots, context) => {
    const names = roots.map((root) => basename(root));
    names.forEach((name, index) => {
      if (name === '' || name === '.' || name === '..') context.addIssue({ code: 'custom', path: [index], message: `"${roots[index]}" has no last segment to name it by (not "/")` });
      else if (names.indexOf(name) !== index) context.addIssue({ code: 'custom', path: [index], message: `two roots end in "${name}": a backup names entries by their root's last segment; back them up as two targets` });
    });
  });

export const globList = z.array(z.string().min(1));

export const includeSchema = globList
  .default(['**'])
  .describe('Globs (picomatch, dotfiles included) of the paths inside each root to back up, e.g. `**/*.conf`; a directory is kept when it holds something kept. Default: everything.');

export const excludeSchema = globList
  .default([])
  .describe('Globs of paths inside each root to leave out, e.g. `cache/**` or `**/*.tmp`; an excluded directory is not entered. Left out of the restore too: a restore in place carries them over from the live root.');

export const partSizeSchema = z
  .number()
  .int()
  .positive()
  .max(4096)
  .default(64)
  .describe('The tar stream is cut into parts of about this many MiB (before compression), each its own object: restoring one path downloads only the parts that hold it.');

export const symlinksOutsideRootSchema = z
  .enum(['refuse', 'keep'])
  .default('refuse')
  .describe('A symlink pointing outside its root (absolute, or `..` above the root): refused by backup and restore (UnsafeEntry), or kept and restored as a link, never followed.');

export const drillCommandSchema = z
  .object({
    name: z.string().min(1).describe('Shown in drill results and reports.'),
    run: z.string().min(1).describe('Shell command run in the restored copy\'s directory (each root is a directory there, named as in the backup; also $LIFEBOAT_RESTORED_DIR); it must exit 0.'),
    timeoutSeconds: z.number().int().positive().default(60).describe('Time limit of the command.'),
  })
  .strict();

export type DrillCommandConfig = z.output<typeof drillCommandSchema>;

/**
 * The config schema of a tree kind: the fields every one has, in the order the reference lists
 * them, around what the kind says itself (its type, what its roots hold, what its drill checks).
 */
export function treeTargetSchema<Type extends string, Drill extends z.ZodType>(kind: { type: z.ZodLiteral<Type>; roots: string; drill: Drill }) {
  return z
    .object({
      type: kind.type,
      roots: treeRootsSchema.describe(kind.roots),
      include: includeSchema,
      exclude: excludeSchema,
      partSizeMiB: partSizeSchema,
      symlinksOutsideRoot: symlinksOutsideRootSchema,
      repositories: targetRepositories.describe('Names of the repositories every backup is written to.'),
      minCopies: targetMinCopies,
      hooks: hooksSchema.optional().describe('Commands and checks around the swap of a restore in place.'),
      drill: kind.drill,
      objectives: targetObjectives,
      schedules: targetSchedules,
      retention: targetRetention,
    })
    .strict();
}
