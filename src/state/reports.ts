import { z } from 'zod';
import type { DrillFacts, MeasuredObjective, VerifyFacts } from './model.js';

/**
 * Reports as the runbooks store them (reports/latest-<runbook>.json), read defensively: a report
 * is written by whichever version of Lifeboat ran, so unknown fields are ignored and a report
 * that lacks what is needed is "unreadable", never a crash of status or serve.
 */

const isoTime = z.string().refine((value) => Number.isFinite(Date.parse(value)), 'a timestamp');

const measured = z
  .object({ seconds: z.number(), targetSeconds: z.number().nullable().optional(), met: z.boolean().nullable().optional() })
  .nullable()
  .optional();

const drillReportSchema = z.object({
  runbook: z.literal('drill').optional(),
  workflowId: z.string().optional(),
  startedAt: isoTime,
  passed: z.boolean(),
  backupId: z.string().nullable().optional(),
  method: z.string().optional(),
  rto: measured,
  rpo: measured,
  failure: z.object({ type: z.string().nullable().optional(), message: z.string() }).nullable().optional(),
});

const verifiedBackupSchema = z.object({ backupId: z.string(), valid: z.boolean(), problems: z.array(z.unknown()).optional(), lastReadInFullAt: z.string().nullable().optional() });

const verifyReportSchema = z.object({
  runbook: z.literal('verify'),
  workflowId: z.string().optional(),
  finishedAt: isoTime,
  valid: z.boolean(),
  repositories: z
    .array(
      z.object({
        repository: z.string(),
        valid: z.boolean(),
        backups: z.array(verifiedBackupSchema).optional(),
        wal: z.object({ gaps: z.union([z.array(z.unknown()), z.number()]).optional() }).nullable().optional(),
      }),
    )
    .optional(),
});

export type ParsedReport<T> = { facts: T } | { error: string };

function problemOf(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}`;
}

function measuredOf(value: z.output<typeof measured>): MeasuredObjective | null {
  if (!value) return null;
  return { seconds: value.seconds, objectiveSeconds: value.targetSeconds ?? null, met: value.met ?? null };
}

export function drillFacts(report: unknown): ParsedReport<DrillFacts> {
  const parsed = drillReportSchema.safeParse(report);
  if (!parsed.success) return { error: `not a drill report (${problemOf(parsed.error)})` };
  const r = parsed.data;
  return {
    facts: {
      workflowId: r.workflowId ?? null,
      startedAt: r.startedAt,
      passed: r.passed,
      backupId: r.backupId ?? null,
      method: r.method ?? null,
      rto: measuredOf(r.rto),
      rpo: measuredOf(r.rpo),
      failure: r.failure ? { type: r.failure.type ?? null, message: r.failure.message } : null,
    },
  };
}

export interface VerifyReportFacts extends VerifyFacts {
  /** Backups this repository's section found valid and whose every object has been read back in full (for the newest verified backup). */
  validBackupIds: string[];
}

/** A verify report's verdict on one repository: its own section when it has one, else the whole report's. */
export function verifyFacts(report: unknown, repository: string): ParsedReport<VerifyReportFacts> {
  const parsed = verifyReportSchema.safeParse(report);
  if (!parsed.success) return { error: `not a verify report (${problemOf(parsed.error)})` };
  const r = parsed.data;
  const section = r.repositories?.find((entry) => entry.repository === repository);
  const backups = section?.backups ?? [];
  const gaps = section?.wal?.gaps;
  return {
    facts: {
      workflowId: r.workflowId ?? null,
      finishedAt: r.finishedAt,
      valid: section ? section.valid : r.valid,
      backupsChecked: backups.length,
      damaged: backups.filter((b) => !b.valid).map((b) => ({ backupId: b.backupId, problems: (b.problems ?? []).map(describeProblem) })),
      walGaps: Array.isArray(gaps) ? gaps.length : (gaps ?? 0),
      // Verified means read back whole and found right: a run without --read-data only saw the objects exist.
      validBackupIds: backups.filter((b) => b.valid && typeof b.lastReadInFullAt === 'string').map((b) => b.backupId),
    },
  };
}

function describeProblem(problem: unknown): string {
  if (typeof problem === 'string') return problem;
  const message = (problem as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : JSON.stringify(problem);
}
