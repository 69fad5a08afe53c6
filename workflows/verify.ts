import { workflowInfo } from '@temporalio/workflow';
import type { RepositoryVerification } from '../activities/index.js';
import type { Timeline} from './runbook.js';
import { formatBytes, quickSteps, transferSteps, type StepRecord } from './runbook.js';
import { describeTarget } from './targets.js';
import { runRunbook, tellDamage } from './telling.js';

export type { RepositoryVerification };

export interface VerifyInput {
  /** Name of a target in the worker's lifeboat.config.yaml. */
  target: string;
  /**
   * How much stored data to read back and hash: "full", a rotating subset "n/t" (e.g. "1/7": a
   * seventh per run, all of it every 7 runs) or "x%"; default: none (manifests, existence, sizes).
   */
  readData?: string;
  /**
   * Withdraw the manifest of a damaged copy when another repository holds a valid copy of the same
   * backup (so `lifeboat copy` can repair it from that one). The only copy is never withdrawn.
   */
  withdrawDamaged?: boolean;
  /** Read stored data no faster than this many MiB/s (a shared disk, a metered link); default: as fast as it comes. */
  readLimitMiBPerSecond?: number;
}

/** The result, and the JSON report stored in every repository (<target>/reports/<workflowId>.json). */
export interface VerifyReport {
  runbook: 'verify';
  target: string;
  workflowId: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  /** "none", "full" or the subset "n/t". */
  readData: string;
  /** Every backup of every repository valid, and (PostgreSQL) every WAL chain unbroken. */
  valid: boolean;
  repositories: RepositoryVerification[];
  /** Damaged copies whose manifest was withdrawn (--withdraw-damaged). */
  withdrawn: Array<{ repository: string; backupId: string }>;
  /** Damaged copies left listed, and why. */
  notWithdrawn: Array<{ repository: string; backupId: string; why: string }>;
  reportKeys: string[];
  timeline: StepRecord[];
}

function describeVerification(r: RepositoryVerification): string {
  const valid = r.backups.filter((b) => b.valid).length;
  const wal = r.wal
    ? `; WAL ${r.wal.valid ? 'ok' : `${r.wal.problems.length} problems`}${r.wal.window ? `, recoverable ${r.wal.window.earliest.time} to ${r.wal.window.latest.lsn}` : ', no recoverable window'}`
    : '';
  return `${valid}/${r.backups.length} backups valid; read ${r.objectsRead} objects (${formatBytes(r.bytesRead)}, ${r.readData})${wal}`;
}

/** Damaged copies that may be withdrawn: those with a valid copy of the same backup in another repository. */
function withdrawals(repositories: RepositoryVerification[]): Pick<VerifyReport, 'withdrawn' | 'notWithdrawn'> {
  const withdrawn: VerifyReport['withdrawn'] = [];
  const notWithdrawn: VerifyReport['notWithdrawn'] = [];
  for (const repository of repositories) {
    for (const backup of repository.backups.filter((b) => !b.valid)) {
      const good = repositories.find((other) => other !== repository && other.backups.some((b) => b.backupId === backup.backupId && b.valid));
      if (good) withdrawn.push({ repository: repository.repository, backupId: backup.backupId });
      else notWithdrawn.push({ repository: repository.repository, backupId: backup.backupId, why: 'no valid copy of it in another repository: the only copy is never withdrawn' });
    }
  }
  return { withdrawn, notWithdrawn };
}

/**
 * Verify runbook: checks what every repository of the target stores (src/verify/check.ts), one
 * repository after another, and stores the report in every repository. A damaged backup does not
 * fail the run: the run completes with valid=false and names every damaged or missing object
 * (the CLI exits 1); only bad input fails it. Changes nothing stored, except with withdrawDamaged.
 */
export async function verify(input: VerifyInput): Promise<VerifyReport> {
  return runRunbook('verify', (timeline) => verifySteps(timeline, input));
}

async function verifySteps(timeline: Timeline, input: VerifyInput): Promise<VerifyReport> {
  const info = workflowInfo();
  const startedAt = new Date().toISOString();
  const target = await timeline.run('resolve-target', () => quickSteps.resolveTarget({ target: input.target }), (t) => describeTarget(t, { repositories: true }));
  const repositories: RepositoryVerification[] = [];
  for (const { name } of target.repositories) {
    repositories.push(
      await timeline.run(
        `verify-${name}`,
        () =>
          transferSteps.verifyStoredRepository({
            target,
            repository: name,
            ...(input.readData !== undefined ? { readData: input.readData } : {}),
            ...(input.readLimitMiBPerSecond !== undefined ? { readLimitMiBPerSecond: input.readLimitMiBPerSecond } : {}),
          }),
        describeVerification,
      ),
    );
  }
  tellDamage(
    timeline,
    repositories.flatMap((r) => r.backups.filter((b) => !b.valid).map((b) => ({ repository: r.repository, backupId: b.backupId, problem: b.problems.join('; ') || 'damaged' }))),
  );
  const decided = withdrawals(repositories);
  const report: VerifyReport = {
    runbook: 'verify',
    target: target.name,
    workflowId: info.workflowId,
    runId: info.runId,
    startedAt,
    finishedAt: startedAt,
    readData: repositories[0]?.readData ?? 'none',
    valid: repositories.every((r) => r.valid),
    repositories,
    withdrawn: [],
    notWithdrawn: input.withdrawDamaged ? decided.notWithdrawn : [],
    reportKeys: [],
    timeline: timeline.steps,
  };
  if (input.withdrawDamaged && decided.withdrawn.length > 0) {
    const copies = decided.withdrawn;
    await timeline.run('withdraw-damaged', () => quickSteps.withdrawDamagedCopies({ target, copies }), () =>
      copies.map((c) => `${c.backupId} from ${c.repository}`).join(', '),
    );
    report.withdrawn = copies;
  } else if (input.withdrawDamaged) {
    timeline.skip('withdraw-damaged', decided.notWithdrawn.length ? 'no damaged copy has a valid copy elsewhere' : 'nothing damaged');
  }
  report.finishedAt = new Date().toISOString();
  const stored = await timeline.run('store-report', () => quickSteps.writeReport({ target, runId: info.workflowId, report: { ...report, timeline: timeline.steps } }), (w) => w.keys.join(', '));
  report.reportKeys = stored.keys;
  return report;
}
