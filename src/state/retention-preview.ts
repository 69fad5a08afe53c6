import type { Repository } from '../repository/repository.js';
import type { RetentionPreview } from './model.js';

/**
 * What the next retention run would remove from one repository.
 *
 * INTEGRATION POINT: the retention planner (src/retention/plan.ts, written on the `retain` branch)
 * decides this. Until it is wired in here, the preview is "not available" (null), and status and
 * /metrics say so. Wiring it: load the target's retention policy, list the repository's backups
 * the way the planner expects, and map its plan to RetentionPreview (backups it would remove, with
 * the reason, and how many it keeps). Keep it within the cost rules of repository-facts.ts: the
 * planner needs the list of backups, so call it from `lifeboat status` only, not from the
 * refresh of `lifeboat serve` (pass `forMetrics` and return null there).
 */
export async function retentionPreview(_input: { repository: Repository; target: string; forMetrics?: boolean }): Promise<RetentionPreview | null> {
  // TODO(integrator): wire src/retention/plan.ts (branch `retain`) here.
  return null;
}
