/**
 * One finished run, as the audit log keeps it. Pure data and pure functions: workflows build the
 * record (from what the run recorded), activities store it.
 */
export const auditFormat = 'lifeboat.audit/v1';

export interface AuditApproval {
  decision: 'approved' | 'rejected';
  /** Who answered, as the answer said (CLI: --by or user@host; chatops: the Slack user id); null when it did not say. */
  by: string | null;
  at: string;
}

export interface AuditRecord {
  /** The workflow type: backup, restore, drill, pitr, verify, ... */
  runbook: string;
  target: string;
  workflowId: string;
  runId: string;
  /** Who asked for the run (the memo requestedBy: cli, schedule, chatops; or the Temporal client's identity); null when unknown. */
  requestedBy: Record<string, unknown> | null;
  startedAt: string;
  finishedAt: string;
  result: 'succeeded' | 'failed' | 'cancelled';
  /** Drills: whether it passed (a drill that finds a broken backup completes, with passed false). */
  passed?: boolean;
  failure: { type: string | null; message: string } | null;
  /** The backup the run made or used. */
  backupId: string | null;
  sizes: { sourceBytes: number | null; storedBytes: number | null };
  /** sha256 of that backup's manifest.json as stored (filled in by the step that writes the record). */
  manifestSha256: string | null;
  approvals: AuditApproval[];
  /** Drills and PITR: where the reports went. */
  reportKeys?: string[];
}

/** What is stored: the record and the sha256 of its JSON, checked when it is read back. */
export interface StoredAuditRecord {
  format: typeof auditFormat;
  sha256: string;
  record: AuditRecord;
}

/**
 * `<target>/audit/<yyyy>/<mm>/<finishedAt>-<workflowId>.json`: one immutable object per finished
 * run (S3 has no append), in the month it finished, so that reading a period lists only its months
 * and the names sort by time within one.
 */
export function auditKey(record: Pick<AuditRecord, 'target' | 'finishedAt' | 'workflowId'>): string {
  const finished = new Date(record.finishedAt);
  if (Number.isNaN(finished.getTime())) throw new Error(`audit record of ${record.workflowId}: finishedAt "${record.finishedAt}" is not a time`);
  return `${auditMonthPrefix(record.target, finished)}${finished.toISOString().replace(/[-:]/g, '')}-${record.workflowId.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`;
}

export function auditMonthPrefix(target: string, month: Date): string {
  return `${target}/audit/${month.getUTCFullYear()}/${String(month.getUTCMonth() + 1).padStart(2, '0')}/`;
}

/** The month prefixes from `since` to `until` (both included): what a reader of that period lists. */
export function auditMonthPrefixes(target: string, since: Date, until: Date): string[] {
  const prefixes: string[] = [];
  const month = new Date(Date.UTC(since.getUTCFullYear(), since.getUTCMonth(), 1));
  while (month.getTime() <= until.getTime()) {
    prefixes.push(auditMonthPrefix(target, month));
    month.setUTCMonth(month.getUTCMonth() + 1);
  }
  return prefixes;
}

/**
 * `--since`: an ISO 8601 date or time (2026-12-01, 2026-12-01T08:00:00Z) or an age: 90m, 36h, 7d, 2w.
 * Undefined when it is neither.
 */
export function parseSince(value: string, now: Date): Date | undefined {
  const age = /^(\d+)\s*(m|h|d|w)$/.exec(value.trim());
  if (age) {
    const unit = { m: 60, h: 3600, d: 86400, w: 7 * 86400 }[age[2] as 'm' | 'h' | 'd' | 'w'];
    return new Date(now.getTime() - Number(age[1]) * unit * 1000);
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) return undefined;
  const date = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value.trim()) ? `${value.trim()}T00:00:00Z` : value.trim());
  return Number.isNaN(date.getTime()) ? undefined : date;
}
