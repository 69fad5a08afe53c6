import { workflowInfo } from '@temporalio/workflow';
import type { BackupCopied, CopyPlan, WalCopied } from '../activities/index.js';
import { formatBytes, quickSteps, transferSteps, type StepRecord, type Timeline } from './runbook.js';
import { describeTarget } from './targets.js';
import { runRunbook } from './telling.js';

export type { BackupCopied, CopyPlan, WalCopied };

export interface CopyInput {
  /** Name of a target in the worker's lifeboat.config.yaml. */
  target: string;
  /** The repository to bring up to date (one of the target's). */
  to: string;
  /** The only repository to copy from; default: the target's other repositories, in its order, each backup from the first that holds it intact. */
  from?: string;
}

export interface CopyResult {
  runbook: 'copy';
  target: string;
  workflowId: string;
  to: string;
  from: string | null;
  /** Where backups were copied from, in the order tried. */
  sources: string[];
  /** Sources that did not answer when the copy was planned. */
  unreachable: CopyPlan['unreachable'];
  /** The backups missing at the destination when the copy began, newest first, each as copied. */
  backups: Array<BackupCopied & { passedOver: Array<{ repository: string; problem: string }> }>;
  /** Complete backups the destination held already. */
  alreadyThere: number;
  /** The WAL copied (PostgreSQL), or null when the sources hold none the destination lacks. */
  wal: WalCopied | null;
  /** The destination holds every backup and WAL file the sources held (nothing left out as damaged everywhere). */
  complete: boolean;
  timeline: StepRecord[];
}

function describeCopied(copied: BackupCopied): string {
  if (copied.alreadyThere) return 'already there';
  return `from ${copied.from}: ${copied.objectsCopied} objects copied (${formatBytes(copied.bytesCopied)}), ${copied.objectsSkipped} already there; manifest written`;
}

/**
 * Copy runbook: brings one repository of a target up to date from the others (3-2-1 copies that
 * heal): every complete backup missing there, newest first, one step per backup (a killed worker
 * costs at most the objects of the backup in flight, and those already copied are skipped by
 * their sha256), then the WAL missing there (PostgreSQL). Never deletes anything at the
 * destination. Fails on bad input (an unknown repository, --from equal to --to, nothing to copy).
 */
export async function copy(input: CopyInput): Promise<CopyResult> {
  return runRunbook('copy', (timeline) => copySteps(timeline, input));
}

async function copySteps(timeline: Timeline, input: CopyInput): Promise<CopyResult> {
  const info = workflowInfo();
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget({ target: input.target }), (t) => describeTarget(t, { repositories: true }));
  const request = { target, to: input.to, ...(input.from !== undefined ? { from: input.from } : {}) };
  const plan = await timeline.run('plan-copy', () => quickSteps.planCopy(request), (p) =>
    `${p.backups.length} backups (${formatBytes(p.backups.reduce((n, b) => n + b.sizeBytes, 0))}) and ${p.walMissing} WAL files missing in ${p.to}, ${p.alreadyThere} backups there already; from ${p.sources.join(', ')}` +
    (p.unreachable.length ? `; not answering: ${p.unreachable.map((u) => u.repository).join(', ')}` : ''),
  );
  const backups: CopyResult['backups'] = [];
  for (const backup of plan.backups) {
    backups.push(
      await timeline.run(`copy-backup-${backup.id}`, () => transferSteps.copyBackupInto({ ...request, backupId: backup.id, holders: backup.holders }), describeCopied),
    );
  }
  let wal: WalCopied | null = null;
  if (plan.walMissing > 0) {
    wal = await timeline.run('copy-wal', () => transferSteps.copyWalInto(request), (w) =>
      `${w.filesCopied} WAL files copied (${formatBytes(w.bytesCopied)})${w.notCopied.length ? `; ${w.notCopied.length} damaged in every source, not copied` : ''}`,
    );
  } else {
    timeline.skip('copy-wal', 'no WAL missing at the destination');
  }
  return {
    runbook: 'copy',
    target: target.name,
    workflowId: info.workflowId,
    to: plan.to,
    from: input.from ?? null,
    sources: plan.sources,
    unreachable: plan.unreachable,
    backups,
    alreadyThere: plan.alreadyThere,
    wal,
    complete: (wal?.notCopied.length ?? 0) === 0,
    timeline: timeline.steps,
  };
}
