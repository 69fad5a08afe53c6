import { z } from 'zod';
import { isSpan, isTimeZone } from '../retention/calendar.js';
import { effectivePolicy, isEmptyPolicy } from '../retention/plan.js';
import { name } from './common.js';

/**
 * `retention:` of a target: which backups `lifeboat forget` keeps. Every kind of target has it
 * (targetRetention); that it names only the target's repositories and keeps something in each is
 * checked by checkRetention, from the config's superRefine (schema.ts).
 */

const retentionCount = (what: string) =>
  z.number().int().nonnegative().optional().describe(`Keep the newest backup of each of the n newest ${what} that hold one (0: the rule is off).`);

/** The rules of a retention policy; also what a repository may override, field by field. */
const retentionRules = {
  keepLast: z.number().int().nonnegative().optional().describe('Keep the n newest backups.'),
  keepHourly: retentionCount('hours'),
  keepDaily: retentionCount('days'),
  keepWeekly: retentionCount('ISO weeks (Monday to Sunday)'),
  keepMonthly: retentionCount('months'),
  keepYearly: retentionCount('years'),
  keepWithin: z
    .string()
    .refine(isSpan, 'a duration such as "30d", "1y6m", "2w" or "36h" (years, months, weeks, days, hours in that order; "m" is months)')
    .optional()
    .describe('Keep every backup newer than this before the newest backup (restic\'s --keep-within: relative to the newest backup, not to now).'),
  minimumRedundancy: z.number().int().min(1).optional().describe('The newest this-many backups are never removed, whatever the rules say (default 1).'),
  timezone: z
    .string()
    .refine(isTimeZone, 'an IANA time zone such as "UTC" or "Europe/Berlin"')
    .optional()
    .describe('The calendar whose hours, days, weeks, months and years the rules count (default "UTC").'),
};

export const retentionSchema = z
  .object({
    ...retentionRules,
    deadUploadAfterHours: z
      .number()
      .positive()
      .optional()
      .describe(
        'A backup folder without a manifest whose backup id is older than this is a dead upload (a backup killed before its manifest) and is removed (default 48; keep it above the longest backup run).',
      ),
    approvalTimeoutSeconds: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('How long `lifeboat forget` without --yes waits for the answer to its plan before it ends, removing nothing (default 3600).'),
    repositories: z
      .record(name, z.object(retentionRules).strict())
      .optional()
      .describe('Per repository of the target: fields that replace the target\'s for that repository (e.g. a longer keepMonthly in S3).'),
  })
  .strict()
  .describe(
    'Which backups `lifeboat forget` (the retention runbook) keeps, with restic\'s forget semantics: the rules are ORed, each keeps the newest ' +
      'backup of its n newest calendar buckets, a count not used up keeps the oldest backup too. Applied per repository and per kind of backup ' +
      '(dumps and base backups of one target are counted apart); archived WAL older than the oldest kept base backup goes with it.',
  );

/** Every kind of target may have a retention policy (absent: `lifeboat forget` refuses the target). */
export const targetRetention = retentionSchema.optional();

/**
 * A retention section names only the target's repositories, and keeps something in each of them:
 * a policy without a rule would remove every backup but the newest, so it is refused here already.
 */
export function checkRetention(retention: z.output<typeof retentionSchema>, repositories: string[], path: PropertyKey[], ctx: z.RefinementCtx): void {
  for (const repository of Object.keys(retention.repositories ?? {})) {
    if (!repositories.includes(repository)) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'repositories', repository],
        message: `the target does not store backups in repository "${repository}"; it uses ${repositories.join(', ')}`,
      });
    }
  }
  for (const repository of repositories) {
    const policy = effectivePolicy(retention, repository);
    if (isEmptyPolicy(policy)) {
      ctx.addIssue({
        code: 'custom',
        path: retention.repositories?.[repository] ? [...path, 'repositories', repository] : path,
        message:
          `the policy for repository "${repository}" has no rule that keeps a backup; set at least one of keepLast, keepHourly, keepDaily, ` +
          'keepWeekly, keepMonthly, keepYearly or keepWithin (an empty policy would remove every backup but the newest)',
      });
    }
  }
}

export type RetentionConfig = z.output<typeof retentionSchema>;
