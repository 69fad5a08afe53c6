import type { RetentionConfig } from '../config/schema.js';
import type { Repository } from '../repository/repository.js';
import { planRepository, readRetentionState } from '../retention/apply.js';
import { effectivePolicy } from '../retention/plan.js';
import type { RetentionPreview } from './model.js';

/**
 * What the next retention run would remove from one repository: the plan the retention runbook
 * would make now (src/retention/apply.ts), without removing anything. It reads every manifest of
 * the target, so `lifeboat status` shows it and the refresh of `lifeboat serve` does not
 * (forMetrics: null). A target without a retention policy has no preview (null). Leases are
 * counted as live until their expiry: status does not ask Temporal whether their runs are open,
 * so the preview may keep a backup the runbook would remove, never the reverse.
 */
export async function retentionPreview(input: {
  repository: Repository;
  target: string;
  retention: RetentionConfig | undefined;
  forMetrics?: boolean;
  now?: Date;
}): Promise<RetentionPreview | null> {
  if (input.forMetrics || !input.retention) return null;
  const now = input.now ?? new Date();
  const state = await readRetentionState(input.repository, input.target, async () => undefined, now);
  const plan = planRepository(input.repository.name, state, effectivePolicy(input.retention, input.repository.name), {
    now,
    deadUploadAfterHours: input.retention.deadUploadAfterHours ?? 48,
  });
  const removed = plan.backups.filter((backup) => backup.action === 'remove');
  return {
    wouldRemove: removed.map((backup) => ({ backupId: backup.id, reason: backup.reasons.join('; ') })),
    wouldKeep: plan.backups.length - removed.length,
  };
}
