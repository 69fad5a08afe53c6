import { z } from 'zod';

/**
 * Pieces of lifeboat.config.yaml that more than one part of it uses: names, secret references, and
 * what targets of several kinds share (hooks around a restore, drills and their smoke checks). The
 * schema of each kind of target (src/kinds/<kind>/config.ts) is built from these.
 */

export const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, "-" or "_", starting with a letter or digit');

export const envVarName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the NAME of an environment variable (not its value)');

/** The repositories a target's backups go to (every kind has them; the config checks they exist). */
export const targetRepositories = z.array(name).min(1);

/**
 * How many repositories must hold a backup, read back right, for it to count (every kind has it;
 * the config checks it against the number of repositories). Unset: every repository.
 */
export const targetMinCopies = z
  .number()
  .int()
  .min(1)
  .optional()
  .describe(
    'How many of the target\'s repositories must hold a backup, stored and read back right, for the backup to succeed; default: every repository. ' +
      'With fewer, a backup goes on when a repository is unreachable or fails mid-stream: that repository is dropped (its partial upload discarded), ' +
      'the manifest and the result say where the backup is missing and why, and `lifeboat copy` brings the repository up to date later. ' +
      'Restores take the first repository, in the target\'s order, that holds a good copy.',
  );

/**
 * What a target is held to, in one place (lifeboat status and the alert rules of lifeboat serve
 * judge against it). The drill's rtoTargetSeconds / rpoTargetSeconds stay, and win for the drill;
 * when they are unset the drill is measured against these (config/load.ts fills them in).
 */
export const objectivesSchema = z
  .object({
    rpoSeconds: z
      .number()
      .positive()
      .optional()
      .describe(
        'Recovery point objective: the newest backup in every repository must be younger than this (its snapshot time), and a ' +
          'PostgreSQL WAL archive must not lag by more. Default: drill.rpoTargetSeconds.',
      ),
    rtoSeconds: z.number().positive().optional().describe('Recovery time objective: the last drill\'s measured RTO must not be above it. Default: drill.rtoTargetSeconds.'),
    drillEverySeconds: z.number().positive().optional().describe('A drill must have passed within this many seconds (e.g. 604800 for weekly); unset: drills are never overdue.'),
    verifyEverySeconds: z.number().positive().optional().describe('A verify run must have found the repository valid within this many seconds; unset: verification is never overdue.'),
  })
  .strict();

/** Every kind of target has objectives (status and the alert rules judge every target the same way). */
export const targetObjectives = objectivesSchema.optional().describe('Recovery objectives `lifeboat status` and the alert rules judge the target against.');

export const hooksSchema = z
  .object({
    stop: z.string().optional().describe('Shell command run before a restore swaps the database (stop the application).'),
    start: z.string().optional().describe('Shell command run after the swap (start the application).'),
    healthUrl: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional().describe('HTTP URL that must answer 2xx after the start hook.'),
    healthTimeoutSeconds: z.number().int().positive().default(60).describe('How long the health URL may take to answer 2xx before the restore rolls back.'),
    timeoutSeconds: z.number().int().positive().default(120).describe('Time limit for each hook command.'),
  })
  .strict();

export const smokeCheckSchema = z
  .object({
    name: z.string().min(1).describe('Shown in drill results and reports.'),
    sql: z.string().min(1).describe('A read-only query run against the restored database.'),
    expect: z
      .union([z.string(), z.number(), z.null()], { error: 'expected a string, a number or null' })
      .optional()
      .describe('Expected value of the first column of the first row; omit to only require that the query runs.'),
    minRows: z.number().int().nonnegative().optional().describe('The query must return at least this many rows.'),
  })
  .strict();

/** The objectives every drill is measured against, whatever the kind of target. */
export const drillObjectives = {
  rtoTargetSeconds: z.number().positive().optional().describe('Recovery time objective the drill is measured against.'),
  rpoTargetSeconds: z.number().positive().optional().describe('Recovery point objective the drill is measured against.'),
};

/** A drill of a database: objectives, SQL smoke checks, and where the scratch copy goes. */
export const drillSchema = z
  .object({
    ...drillObjectives,
    smokeChecks: z.array(smokeCheckSchema).default([]).describe('Queries a restored copy must pass for the drill to pass.'),
    scratchDir: z.string().optional().describe('Where the drill restores its scratch copy; default: the system temp dir.'),
  })
  .strict();

export type HooksConfig = z.output<typeof hooksSchema>;
export type SmokeCheck = z.output<typeof smokeCheckSchema>;
export type Objectives = z.output<typeof objectivesSchema>;
