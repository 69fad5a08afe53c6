import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { LifeboatError } from '../errors.js';
import { readTextIfAny } from '../repository/backend.js';
import type { Repository } from '../repository/repository.js';
import { auditFormat, auditKey, auditMonthPrefixes, type AuditRecord, type StoredAuditRecord } from './record.js';

export function recordSha256(record: AuditRecord): string {
  return createHash('sha256').update(JSON.stringify(record)).digest('hex');
}

export function storedForm(record: AuditRecord): string {
  const stored: StoredAuditRecord = { format: auditFormat, sha256: recordSha256(record), record };
  return `${JSON.stringify(stored, null, 2)}\n`;
}

export interface ReadAuditRecord {
  key: string;
  record: AuditRecord;
}

export interface DamagedAuditRecord {
  key: string;
  problem: string;
}

/**
 * The audit log of one repository: append-only, one immutable object per finished run
 * (auditKey). Nothing here rewrites or removes a record.
 */
export class AuditLog {
  constructor(readonly repository: Repository) {}

  /**
   * Stores the record unless it is there already. The same record again (a retried step) is
   * fine; another record under its key is AuditRecordConflict, and the stored one stays.
   */
  async append(record: AuditRecord): Promise<{ key: string; written: boolean }> {
    const key = auditKey(record);
    const body = storedForm(record);
    const existing = await readTextIfAny(this.repository.backend, key);
    if (existing !== undefined) {
      if (existing === body) return { key, written: false };
      throw new LifeboatError(
        'AuditRecordConflict',
        `repository "${this.repository.name}" already holds another audit record under ${key}`,
        'The audit log is append-only: the stored record was kept',
      );
    }
    await this.repository.backend.put(key, Readable.from([Buffer.from(body)]));
    return { key, written: true };
  }

  /**
   * The records of a target that finished at or after `since` (all of them without it), oldest
   * first. Lists only the months from `since` on. A record whose checksum or shape is wrong is
   * returned as damaged, not dropped.
   */
  async list(target: string, options: { since?: Date; now?: Date } = {}): Promise<{ records: ReadAuditRecord[]; damaged: DamagedAuditRecord[] }> {
    const prefixes = options.since ? auditMonthPrefixes(target, options.since, options.now ?? new Date()) : [`${target}/audit/`];
    const keys = (await Promise.all(prefixes.map((prefix) => this.repository.backend.list(prefix))))
      .flat()
      .map((object) => object.key)
      .filter((key) => key.endsWith('.json'));
    const records: ReadAuditRecord[] = [];
    const damaged: DamagedAuditRecord[] = [];
    for (const key of keys) {
      const text = await readTextIfAny(this.repository.backend, key);
      if (text === undefined) continue;
      const problem = checkStored(text);
      if (typeof problem === 'string') {
        damaged.push({ key, problem });
        continue;
      }
      if (options.since && Date.parse(problem.finishedAt) < options.since.getTime()) continue;
      records.push({ key, record: problem });
    }
    return { records: records.sort((a, b) => a.record.finishedAt.localeCompare(b.record.finishedAt)), damaged };
  }
}

/** The record of a stored object, or what is wrong with it. */
function checkStored(text: string): AuditRecord | string {
  let parsed: Partial<StoredAuditRecord>;
  try {
    parsed = JSON.parse(text) as Partial<StoredAuditRecord>;
  } catch {
    return 'not valid JSON';
  }
  if (parsed.format !== auditFormat) return `format is ${JSON.stringify(parsed.format)}, not ${auditFormat}`;
  const record = parsed.record;
  if (!record || typeof record.workflowId !== 'string' || typeof record.finishedAt !== 'string' || typeof record.target !== 'string') return 'not an audit record';
  const sha256 = recordSha256(record);
  if (sha256 !== parsed.sha256) return `its sha256 is ${sha256}, the record says ${String(parsed.sha256)}: it was changed after it was written`;
  return record;
}
