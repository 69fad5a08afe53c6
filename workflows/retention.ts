import { setHandler, workflowInfo } from '@temporalio/workflow';
import type { RepositoryRetentionOutcome, RetentionPlan } from '../activities/index.js';
import { acceptApproval } from './approval.js';
import { retentionPlanQuery } from './retention-plan.js';
import type { Timeline} from './runbook.js';
import { quickSteps, transferSteps, type StepRecord } from './runbook.js';
import { describeTarget } from './targets.js';
import { runRunbook } from './telling.js';

export interface RetentionInput {
  /** Name of a target with a retention policy in the worker's lifeboat.config.yaml. */
  target: string;
  /** Plan only; nothing is removed (`lifeboat forget --dry-run`). */
  dryRun?: boolean;
  /**
   * Wait for an answer to the plan (`lifeboat approve <workflowId>`, or the CLI's prompt) before
   * removing anything; schedules leave it off and remove what the plan says.
   */
  approval?: boolean;
}

/** The result, and the JSON report stored in every repository (<target>/reports/<workflowId>.json). */
export interface RetentionResult {
  runbook: 'retention';
  target: string;
  workflowId: string;
  runId: string;
  dryRun: boolean;
  /** What happened after planning. */
  decision: 'dry-run' | 'nothing-to-remove' | 'applied';
  /** Every backup of every repository with keep or remove and every reason; WAL and dead uploads. */
  plan: RetentionPlan;
  /** Per repository, what was removed (empty for a dry run). */
  outcome: RepositoryRetentionOutcome[];
  reportKeys: string[];
  timeline: StepRecord[];
}

/** What a plan would remove, in numbers. */
export function planCounts(plan: RetentionPlan): { backups: number; kept: number; deadUploads: number; pending: number; wal: number } {
  const sum = (f: (r: RetentionPlan['repositories'][number]) => number) => plan.repositories.reduce((total, r) => total + f(r), 0);
  return {
    backups: sum((r) => r.backups.filter((b) => b.action === 'remove').length),
    kept: sum((r) => r.backups.filter((b) => b.action === 'keep').length),
    deadUploads: sum((r) => r.deadUploads.filter((d) => d.action === 'remove').length),
    pending: sum((r) => r.pendingDeletions.length),
    wal: sum((r) => r.wal?.remove ?? 0),
  };
}

function describePlan(plan: RetentionPlan): string {
  return plan.repositories
    .map((r) => {
      const remove = r.backups.filter((b) => b.action === 'remove').length;
      const extra = [
        r.deadUploads.some((d) => d.action === 'remove') ? `${r.deadUploads.filter((d) => d.action === 'remove').length} dead uploads` : '',
        r.pendingDeletions.length ? `${r.pendingDeletions.length} unfinished removals` : '',
        r.wal?.remove ? `${r.wal.remove} WAL files` : '',
      ].filter(Boolean);
      return `${r.repository}: remove ${remove} of ${r.backups.length} backups${extra.length ? `, ${extra.join(', ')}` : ''} (${r.description})`;
    })
    .join('; ');
}

/**
 * Retention runbook (`lifeboat forget`): plans in every repository of the target (restic's forget
 * semantics per kind of backup; the newest minimumRedundancy, the newest verified and every backup
 * in use are kept; WAL before the oldest kept base backup, dead uploads), records the plan, then
 * (unless a dry run, after an approval when asked for) removes in each repository what the plan
 * and the state at that moment both say to remove: manifest first, objects once no run uses them.
 */
export async function retention(input: RetentionInput): Promise<RetentionResult> {
  return runRunbook('retention', (timeline) => retentionSteps(timeline, input));
}

async function retentionSteps(timeline: Timeline, input: RetentionInput): Promise<RetentionResult> {
  const info = workflowInfo();
  let plan: RetentionPlan | undefined;
  setHandler(retentionPlanQuery, () => plan);
  // Accepted from the start, so an answer that comes while the plan is made is not lost.
  const approval = input.approval && !input.dryRun ? acceptApproval() : undefined;
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget({ target: input.target }), (t) => describeTarget(t, { repositories: true }));
  const planned = await timeline.run('plan', () => transferSteps.planRetention({ target }), describePlan);
  plan = planned;
  const counts = planCounts(planned);
  const result: RetentionResult = {
    runbook: 'retention',
    target: target.name,
    workflowId: info.workflowId,
    runId: info.runId,
    dryRun: input.dryRun === true,
    decision: 'dry-run',
    plan: planned,
    outcome: [],
    reportKeys: [],
    timeline: timeline.steps,
  };
  if (input.dryRun) {
    timeline.skip('remove', 'dry run: nothing is removed');
  } else if (counts.backups + counts.deadUploads + counts.pending + counts.wal === 0) {
    result.decision = 'nothing-to-remove';
    timeline.skip('remove', 'the plan removes nothing');
  } else {
    if (approval) {
      await approval.awaitAnswer(timeline, planned.approvalTimeoutSeconds, (decision) =>
        `removing ${counts.backups} backups of "${target.name}" ${decision ? `was rejected${decision.by ? ` by ${decision.by}` : ''}` : `needs an approval, and none came within ${planned.approvalTimeoutSeconds} s`}; nothing was removed`,
      );
    }
    for (const repository of planned.repositories) {
      const remove = repository.backups.filter((b) => b.action === 'remove').map((b) => b.id);
      const deadUploads = repository.deadUploads.filter((d) => d.action === 'remove').map((d) => d.id);
      result.outcome.push(
        await timeline.run(`remove-${repository.repository}`, () => transferSteps.applyRetention({ target, repository: repository.repository, remove, deadUploads }), (o) =>
          [
            `${o.removed.length} backups removed`,
            o.deferred.length ? `${o.deferred.length} waiting for the runs using them (${o.deferred.map((d) => `${d.id}: ${d.holders.join(', ')}`).join('; ')})` : '',
            o.keptAfterAll.length ? `${o.keptAfterAll.length} kept after all (${o.keptAfterAll.map((k) => `${k.id}: ${k.reasons.join(', ')}`).join('; ')})` : '',
            o.deadUploadsRemoved.length ? `${o.deadUploadsRemoved.length} dead uploads removed` : '',
            o.wal ? `${o.wal.removed} WAL files removed${o.wal.cutoff ? ` (before ${o.wal.cutoff.segment})` : ''}` : '',
          ]
            .filter(Boolean)
            .join(', '),
        ),
      );
    }
    result.decision = 'applied';
  }
  const stored = await timeline.run('store-report', () => quickSteps.writeReport({ target, runId: info.workflowId, report: { ...result, timeline: timeline.steps } }), (w) => w.keys.join(', '));
  result.reportKeys = stored.keys;
  return result;
}
