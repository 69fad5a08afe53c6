import type { Config } from '../config/schema.js';
import { openBackend } from '../repository/open.js';
import { Repository } from '../repository/repository.js';
import { AuditLog } from './log.js';
import type { AuditRecord } from './record.js';

export interface AuditEntry extends AuditRecord {
  /** The record's key, the same in every repository. */
  key: string;
  /** The repositories that hold it (a record is written to every repository of its target). */
  repositories: string[];
}

/**
 * The audit records of the given targets from all their repositories, one entry per run (each
 * repository holds a copy), oldest first; damaged copies and unreadable repositories become warnings.
 */
export async function readAudit(
  config: Config,
  targets: string[],
  since: Date | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ entries: AuditEntry[]; warnings: string[]; damaged: boolean; unreadable: boolean }> {
  const entries = new Map<string, AuditEntry>();
  const warnings: string[] = [];
  let damaged = false;
  let unreadable = false;
  for (const target of targets) {
    for (const name of config.targets[target]!.repositories) {
      try {
        const log = new AuditLog(new Repository(name, openBackend(config.repositories[name]!, env)));
        const read = await log.list(target, since ? { since } : {});
        for (const bad of read.damaged) {
          damaged = true;
          warnings.push(`audit record ${bad.key} in repository "${name}" is damaged: ${bad.problem}`);
        }
        for (const { key, record } of read.records) {
          const entry = entries.get(key);
          if (entry) entry.repositories.push(name);
          else entries.set(key, { ...record, key, repositories: [name] });
        }
      } catch (error) {
        unreadable = true;
        warnings.push(`repository "${name}" (target "${target}") could not be read: ${(error as Error).message}`);
      }
    }
  }
  return { entries: [...entries.values()].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt) || a.key.localeCompare(b.key)), warnings, damaged, unreadable };
}

function who(requestedBy: AuditRecord['requestedBy']): string {
  if (!requestedBy) return '-';
  switch (requestedBy.via) {
    case 'cli':
      return `cli:${String(requestedBy.user)}@${String(requestedBy.host)}`;
    case 'schedule':
      return `schedule:${String(requestedBy.schedule)}`;
    case 'chatops':
      return `slack:${String(requestedBy.user)}`;
    case 'temporal':
      return `temporal:${String(requestedBy.identity)}`;
    default:
      return JSON.stringify(requestedBy);
  }
}

function outcome(entry: AuditRecord): string {
  if (entry.passed !== undefined && entry.result === 'succeeded') return entry.passed ? 'passed' : 'FAILED (drill)';
  return entry.result === 'succeeded' ? 'succeeded' : `${entry.result.toUpperCase()}${entry.failure?.type ? ` ${entry.failure.type}` : ''}`;
}

/** The table `lifeboat audit` prints. */
export function formatAudit(entries: AuditEntry[]): string {
  const rows = entries.map((e) => [
    e.finishedAt.replace(/\.\d{3}Z$/, 'Z'),
    e.target,
    e.runbook,
    outcome(e),
    who(e.requestedBy),
    e.backupId ?? '-',
    e.approvals.map((a) => `${a.decision} by ${a.by ?? '?'}`).join('; ') || '-',
    e.workflowId,
  ]);
  const header = ['FINISHED', 'TARGET', 'RUNBOOK', 'RESULT', 'REQUESTED BY', 'BACKUP', 'APPROVALS', 'WORKFLOW'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
