import { Context, log } from '@temporalio/activity';
import { AuditLog } from '../src/audit/log.js';
import { LifeboatError } from '../src/errors.js';
import type { AuditRecord } from '../src/audit/record.js';
import { sha256OfStream } from '../src/pipeline/hash.js';
import { openRepositories } from './repositories.js';
import type { ResolvedTarget } from './target.js';

/**
 * Who started a run the memo does not name (the Temporal UI, `temporal workflow start`, another
 * client): the identity the server recorded with its start event.
 */
async function startedBy(workflowId: string, runId: string): Promise<AuditRecord['requestedBy']> {
  try {
    const { client, info } = Context.current();
    const history = await client.workflowService.getWorkflowExecutionHistory({ namespace: info.namespace, execution: { workflowId, runId }, maximumPageSize: 1 });
    const identity = history.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.identity;
    return identity ? { via: 'temporal', identity } : null;
  } catch (error) {
    log.warn('could not read who started the run', { workflowId, error: (error as Error).message });
    return null;
  }
}

/**
 * The record-audit step at the end of every run: completes the record (the sha256 of the backup's
 * manifest as stored; who started the run, when the memo does not say) and appends it to the audit
 * log of every repository of the target. Safe to run twice: the same record is not written again.
 */
export async function recordAudit(input: { target: ResolvedTarget; record: AuditRecord }, env: NodeJS.ProcessEnv): Promise<{ keys: string[]; record: AuditRecord }> {
  const repositories = openRepositories(input.target, env);
  const record: AuditRecord = { ...input.record };
  if (record.requestedBy === null) record.requestedBy = await startedBy(record.workflowId, record.runId);
  if (record.backupId && record.manifestSha256 === null) {
    for (const repository of repositories) {
      const key = repository.manifestKey(record.target, record.backupId);
      try {
        if (!(await repository.backend.head(key))) continue;
        record.manifestSha256 = (await sha256OfStream(await repository.backend.get(key))).sha256;
        break;
      } catch (error) {
        log.warn('manifest not readable for the audit record, trying the next repository', { repository: repository.name, error: (error as Error).message });
      }
    }
  }
  // A repository that does not answer (a backup landed without it: minCopies) does not hold the
  // record back from the others; the step fails only when none took it, or when a record of this
  // run there differs (AuditRecordConflict: the log is never rewritten).
  const written = await Promise.allSettled(repositories.map((repository) => new AuditLog(repository).append(record).then(({ key }) => `${repository.name}:${key}`)));
  const typed = written.find((w): w is PromiseRejectedResult => w.status === 'rejected' && w.reason instanceof LifeboatError && w.reason.type === 'AuditRecordConflict');
  if (typed) throw typed.reason;
  const keys = written.flatMap((w) => (w.status === 'fulfilled' ? [w.value] : []));
  if (keys.length === 0 && written.length > 0) throw (written[0] as PromiseRejectedResult).reason;
  written.forEach((w, index) => {
    if (w.status === 'rejected') log.warn('audit record not written in a repository that did not answer', { repository: repositories[index]!.name, error: (w.reason as Error).message });
  });
  return { keys, record };
}
