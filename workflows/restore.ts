import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { ResolvedSqliteTarget, SwapResult } from '../activities/index.js';
import { compactTimestamp } from '../src/backup-id.js';
import type { Manifest } from '../src/repository/manifest.js';
import { restorePostgresBase } from './postgres-base.js';
import { restorePostgresDump } from './postgres-dump.js';
import type { Timeline} from './runbook.js';
import { failureMessage, formatBytes, quickSteps, stepsWithin, transferSteps, type StepRecord } from './runbook.js';
import { runRunbook } from './telling.js';
import { describeTarget, fetchedDatabase, sourceBytesOf } from './targets.js';

export interface RestoreInput {
  target: string;
  /**
   * PostgreSQL: "dump" restores a pg_dump backup into a database; "base" lays a base backup out as
   * a new data directory (into: its absolute path). Default: the target's backup method.
   */
  method?: 'dump' | 'base';
  /** A backup id from `lifeboat backups <target>`; default: the newest complete backup. */
  backupId?: string;
  /**
   * SQLite: restore to this path instead of replacing the live database (which is then not touched).
   * PostgreSQL dump: the database to restore into; default a new one, `<database>_restored_<stamp>`.
   * PostgreSQL base: the new data directory (absolute); default under recovery.dir.
   */
  into?: string;
  /**
   * PostgreSQL: replace `into` if it exists (the CLI's --yes). Without it, a restore onto an existing
   * database waits for an approval (`lifeboat approve`) before it replaces anything.
   */
  replaceExisting?: boolean;
}

export interface RestoreResult {
  target: string;
  backupId: string;
  backupKind: Manifest['kind'];
  snapshotAt: string;
  /** SQLite: the path; PostgreSQL: the database name, or the data directory of a base backup. */
  restoredTo: string;
  /** The previous live database (SQLite: a file; PostgreSQL: a renamed database), kept whole; null for --into or when there was none. */
  safetyCopy: string | null;
  timeline: StepRecord[];
}

async function runHook(timeline: Timeline, target: ResolvedSqliteTarget, name: 'stop' | 'start'): Promise<void> {
  const command = target.hooks?.[name];
  if (!command) {
    timeline.skip(`${name}-hook`, 'no hook configured');
    return;
  }
  const timeoutSeconds = target.hooks?.timeoutSeconds ?? 120;
  await timeline.run(`${name}-hook`, () => stepsWithin(timeoutSeconds).runHook({ name, command, timeoutSeconds }));
}

/**
 * Restore runbook. Nothing live is touched until the backup is downloaded, its checksums match the
 * manifest and the decoded database passes the integrity check. Then the live file is kept as a
 * safety copy and replaced by one atomic rename; if the start hook, health check or final check
 * fails, the safety copy goes back (compensation that runs even when the run is cancelled).
 */
export async function restore(input: RestoreInput): Promise<RestoreResult> {
  return runRunbook('restore', (timeline) => restoreSteps(timeline, input));
}

async function restoreSteps(timeline: Timeline, input: RestoreInput): Promise<RestoreResult> {
  const resolved = await timeline.run('resolve-target', () => quickSteps.resolveTarget({ target: input.target }), (t) => describeTarget(t));
  if (resolved.type === 'postgres') {
    const method = input.method ?? resolved.method;
    return method === 'base' ? restorePostgresBase(timeline, resolved, input) : restorePostgresDump(timeline, resolved, input);
  }
  const target = resolved;
  const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(input.backupId ? { backupId: input.backupId } : {}) }), (m) =>
    `backup ${m.id}, snapshot ${m.snapshotAt}, ${formatBytes(sourceBytesOf(m))}`,
  );
  if (manifest.kind !== 'sqlite') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a SQLite one`, 'BackupCorrupt');
  const base = { target: target.name, backupId: manifest.id, backupKind: manifest.kind, snapshotAt: manifest.snapshotAt };

  if (input.into) {
    const into = input.into;
    // Only a file this run wrote is removed when it fails: the path may hold one that was there before.
    let wroteInto = false;
    try {
      const fetched = await timeline.run('fetch-and-verify', () => transferSteps.fetchBackup({ target, manifest, destination: into, refuseExisting: true, verifyInCheck: true }), (f) =>
        `${formatBytes(f.sizeBytes)} from ${f.repository}, stored sha256 ok`,
      );
      wroteInto = fetched.adopted !== true;
      await timeline.run('integrity-check', () => transferSteps.checkIntegrity({ path: into, kind: target.checks.restore, sameAs: fetchedDatabase(manifest) }));
    } catch (error) {
      await CancellationScope.nonCancellable(() => quickSteps.removeFiles({ paths: wroteInto ? [`${into}.partial`, into] : [`${into}.partial`] }));
      throw error;
    }
    return { ...base, restoredTo: into, safetyCopy: null, timeline: timeline.steps };
  }

  // Names of this run alone: two restores in the same second must never share a safety copy.
  const info = workflowInfo();
  const run = `${compactTimestamp(new Date(info.startTime))}-${info.runId.replace(/-/g, '').slice(-8)}`;
  const staging = `${target.path}.lifeboat-restore-${run}`;
  const safetyPath = `${target.path}.lifeboat-safety-${run}`;
  let stopped = false;
  let swap: SwapResult | undefined;
  try {
    await timeline.run('fetch-and-verify', () => transferSteps.fetchBackup({ target, manifest, destination: staging, verifyInCheck: true }), (f) =>
      `${formatBytes(f.sizeBytes)} from ${f.repository}, stored sha256 ok`,
    );
    await timeline.run('integrity-check', () => transferSteps.checkIntegrity({ path: staging, kind: target.checks.restore, sameAs: fetchedDatabase(manifest) }));
    stopped = true;
    await runHook(timeline, target, 'stop');
    swap = await timeline.run('swap', () => quickSteps.swapIntoPlace({ livePath: target.path, stagingPath: staging, safetyPath }), (s) =>
      s.safetyPath ? `previous database kept at ${s.safetyPath}` : 'no previous database',
    );
    await runHook(timeline, target, 'start');
    stopped = false;
    if (target.hooks?.healthUrl) {
      const url = target.hooks.healthUrl;
      const timeoutSeconds = target.hooks.healthTimeoutSeconds ?? 60;
      await timeline.run('health-check', () => stepsWithin(timeoutSeconds).checkHealth({ url, timeoutSeconds }));
    }
    await timeline.run('verify-live', () => transferSteps.checkIntegrity({ path: target.path, kind: 'quick_check' }));
  } catch (error) {
    // Compensation runs even when the run is cancelled. Hooks here are best effort: the error the
    // run reports is the one that made it roll back.
    await CancellationScope.nonCancellable(async () => {
      if (swap?.safetyPath) {
        const safetyCopy = swap.safetyPath;
        // The application may be running on the restored database: stop it before swapping back.
        if (!stopped) await runHook(timeline, target, 'stop').catch(() => undefined);
        stopped = true;
        await timeline.run('rollback', () => quickSteps.rollbackSwap({ livePath: target.path, safetyPath: safetyCopy }), (r) =>
          r.restored ? `previous database back in place (${failureMessage(error)})` : 'nothing to roll back',
        );
      }
      await timeline.run('cleanup', () => quickSteps.removeFiles({ paths: [staging] }));
      if (stopped) await runHook(timeline, target, 'start').catch(() => undefined);
    });
    throw error;
  }
  return { ...base, restoredTo: target.path, safetyCopy: swap.safetyPath, timeline: timeline.steps };
}
