/**
 * The steps of SQLite runbooks (the worker-side half is src/kinds/sqlite/):
 *
 * - backup: one snapshot of the database streamed into every repository (snapshot-and-upload).
 * - restore: the backup fetched and checked beside the live file before anything live is touched;
 *   then the live file is kept as a safety copy and replaced by one atomic rename, between the
 *   hooks, and put back when a later step fails (replace-live.ts). With `into`: a new file there.
 * - drill: the newest backup fetched into a scratch directory, checked, and smoke-tested with SQL.
 */
import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import { compactTimestamp } from '../../src/backup-id.js';
import type { ResolvedSqliteTarget } from '../../src/kinds/sqlite/index.js';
import type { SqliteManifest } from '../../src/kinds/sqlite/manifest.js';
import { replaceLive } from '../replace-live.js';
import { failureMessage, formatBytes, manifestEnvelope, quickSteps, transferSteps, type Timeline } from '../runbook.js';
import { defineTargetRunbooks } from './contract.js';

/** What a SQLite restore must decode: the database file as it was snapshotted. */
export function fetchedDatabase(manifest: SqliteManifest): { sha256: string; sizeBytes: number } {
  return { sha256: manifest.source.sha256, sizeBytes: manifest.source.sizeBytes };
}

/** The locate-backup step: the given backup or the newest one, which must be a SQLite backup. */
async function locateSqliteBackup(timeline: Timeline, target: ResolvedSqliteTarget, backupId?: string): Promise<SqliteManifest> {
  const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : {}) }), (m) =>
    `backup ${m.id}, snapshot ${m.snapshotAt}${m.kind === 'sqlite' ? `, ${formatBytes(m.source.sizeBytes)}` : ''}`,
  );
  if (manifest.kind !== 'sqlite') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a SQLite one`, 'BackupCorrupt');
  return manifest;
}

export const sqliteRunbooks = defineTargetRunbooks<ResolvedSqliteTarget>()({
  type: 'sqlite',
  methods: [],

  describe: (target) => `${target.type} ${target.path}`,

  async backup({ timeline, target, backupId }) {
    const uploaded = await timeline.run('snapshot-and-upload', () => transferSteps.snapshotAndUpload({ target, backupId }), (u) =>
      `${formatBytes(u.source.sizeBytes)} snapshot at ${u.snapshotAt} -> ${formatBytes(u.object.sizeBytes)} stored; ${u.integrity.kind} ok`,
    );
    const manifest: SqliteManifest = {
      ...manifestEnvelope('sqlite', target.name, backupId, uploaded),
      source: uploaded.source,
      objects: [uploaded.object],
      timeline: [],
    };
    return { manifest, sourceBytes: manifest.source.sizeBytes, details: {} };
  },

  async restore({ timeline, target, request }) {
    const manifest = await locateSqliteBackup(timeline, target, request.backupId);

    if (request.into) {
      const into = request.into;
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
      return { backup: manifest, restoredTo: into, safetyCopy: null };
    }

    // Names of this run alone: two restores in the same second must never share a safety copy.
    const info = workflowInfo();
    const run = `${compactTimestamp(new Date(info.startTime))}-${info.runId.replace(/-/g, '').slice(-8)}`;
    const staging = `${target.path}.lifeboat-restore-${run}`;
    const safetyPath = `${target.path}.lifeboat-safety-${run}`;
    const { safetyCopy } = await replaceLive(timeline, target.hooks, {
      async stage() {
        await timeline.run('fetch-and-verify', () => transferSteps.fetchBackup({ target, manifest, destination: staging, verifyInCheck: true }), (f) =>
          `${formatBytes(f.sizeBytes)} from ${f.repository}, stored sha256 ok`,
        );
        await timeline.run('integrity-check', () => transferSteps.checkIntegrity({ path: staging, kind: target.checks.restore, sameAs: fetchedDatabase(manifest) }));
      },
      async swap() {
        const swapped = await timeline.run('swap', () => quickSteps.swapIntoPlace({ livePath: target.path, stagingPath: staging, safetyPath }), (s) =>
          s.safetyPath ? `previous database kept at ${s.safetyPath}` : 'no previous database',
        );
        return swapped.safetyPath;
      },
      async verifyLive() {
        await timeline.run('verify-live', () => transferSteps.checkIntegrity({ path: target.path, kind: 'quick_check' }));
      },
      async rollback(safetyCopy, error) {
        await timeline.run('rollback', () => quickSteps.rollbackSwap({ livePath: target.path, safetyPath: safetyCopy }), (r) =>
          r.restored ? `previous database back in place (${failureMessage(error)})` : 'nothing to roll back',
        );
      },
      async cleanup() {
        await timeline.run('cleanup', () => quickSteps.removeFiles({ paths: [staging] }));
      },
    });
    return { backup: manifest, restoredTo: target.path, safetyCopy };
  },

  async drill({ timeline, target, restoring, cleanup }) {
    const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target }), (m) => `backup ${m.id}, snapshot ${m.snapshotAt}`);
    if (manifest.kind !== 'sqlite') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a SQLite one`, 'BackupCorrupt');
    restoring(manifest);
    const runName = workflowInfo().workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
    const scratch = await timeline.run('prepare-scratch', () => quickSteps.prepareScratch({ target, runName }), (s) => s.dir);
    cleanup(() => timeline.run('remove-scratch', () => quickSteps.removeFiles({ paths: [scratch.dir] })));
    await timeline.run('fetch-and-verify', () => transferSteps.fetchBackup({ target, manifest, destination: scratch.databasePath, verifyInCheck: true }), (f) =>
      `${formatBytes(f.sizeBytes)} from ${f.repository}, stored sha256 ok`,
    );
    await timeline.run('integrity-check', () => transferSteps.checkIntegrity({ path: scratch.databasePath, kind: target.checks.restore, sameAs: fetchedDatabase(manifest) }));
    const checks = await timeline.run('smoke-checks', () => transferSteps.runSmokeChecks({ path: scratch.databasePath, checks: target.drill.smokeChecks }), (results) =>
      `${results.filter((c) => c.passed).length}/${results.length} passed`,
    );
    return { checks };
  },
});
