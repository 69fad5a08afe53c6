/**
 * The steps of blobs runbooks (the worker-side half is src/kinds/blobs/):
 *
 * - backup: the tree read against the previous backup's index, new content packed and stored
 *   once per repository, the index and the listing of shared objects stored (backup-blob-tree).
 * - restore: the whole tree restored beside the live one from the repository alone, every blob
 *   checked; then the live tree is kept as a safety copy and replaced by a rename, between the
 *   hooks, and put back when a later step fails (replace-live.ts). With `into`: a new directory.
 * - drill: the newest backup restored into a scratch directory and checked.
 */
import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import { compactTimestamp } from '../../src/backup-id.js';
import type { ResolvedBlobsTarget } from '../../src/kinds/blobs/index.js';
import type { BlobsManifest } from '../../src/kinds/blobs/manifest.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { replaceLive } from '../replace-live.js';
import { failureMessage, formatBytes, manifestEnvelope, quickSteps, transferSteps, type Timeline } from '../runbook.js';
import { defineTargetRunbooks } from './contract.js';

function asBlobs(manifest: Manifest): BlobsManifest {
  if (manifest.kind !== 'blobs') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a blobs one`, 'BackupCorrupt');
  return manifest;
}

async function locateBlobsBackup(timeline: Timeline, target: ResolvedBlobsTarget, backupId?: string): Promise<BlobsManifest> {
  const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : {}) }), (m) =>
    `backup ${m.id}, snapshot ${m.snapshotAt}${m.kind === 'blobs' ? `, ${m.source.files} files, ${formatBytes(m.source.sizeBytes)}` : ''}`,
  );
  return asBlobs(manifest);
}

const describeRestored = (r: { files: number; bytes: number; blobsChecked: number; repositories: string[] }) =>
  `${r.files} files, ${formatBytes(r.bytes)} from ${r.repositories.join(', ')}; ${r.blobsChecked} blobs, sha256 ok`;

export interface BlobsBackupDetails {
  blobs: BlobsManifest['changes'] & { parent: string | null; changedWhileReadPaths: string[]; skipped: string[] };
}

export const blobsRunbooks = defineTargetRunbooks<ResolvedBlobsTarget>()({
  type: 'blobs',
  methods: [],

  describe: (target) => `${target.type} ${target.path}`,

  async backup({ timeline, target, backupId, rehash }) {
    const stored = await timeline.run('backup-blob-tree', () => transferSteps.backupBlobTree({ target, backupId, rehash }), (s) =>
      `${s.source.files} files (${formatBytes(s.source.sizeBytes)}): ${s.changes.readFiles} read, ${s.changes.newBlobs} new blobs, ` +
      `${s.shared.added} new packs (${formatBytes(s.shared.addedBytes)}) of ${s.shared.count}${s.parent ? `; since ${s.parent}` : '; first backup'}`,
    );
    const manifest: BlobsManifest = {
      ...manifestEnvelope('blobs', target.name, backupId, stored),
      parent: stored.parent,
      source: stored.source,
      index: stored.index,
      changes: stored.changes,
      objects: stored.objects,
      shared: stored.shared,
      timeline: [],
    };
    const details: BlobsBackupDetails = { blobs: { ...stored.changes, parent: stored.parent, changedWhileReadPaths: stored.changedWhileRead, skipped: stored.skipped } };
    return { manifest, sourceBytes: stored.source.sizeBytes, details };
  },

  async restore({ timeline, target, request }) {
    const manifest = await locateBlobsBackup(timeline, target, request.backupId);

    if (request.into) {
      const into = request.into;
      try {
        await timeline.run('restore-tree', () => transferSteps.restoreBlobTree({ target, manifest, destination: into, refuseExisting: true }), describeRestored);
      } catch (error) {
        await CancellationScope.nonCancellable(() => quickSteps.removeBlobPaths({ paths: [`${into}.partial`] }));
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
        await timeline.run('restore-tree', () => transferSteps.restoreBlobTree({ target, manifest, destination: staging }), describeRestored);
      },
      async swap() {
        const swapped = await timeline.run('swap', () => quickSteps.swapBlobTree({ livePath: target.path, stagingPath: staging, safetyPath }), (s) =>
          s.safetyPath ? `previous tree kept at ${s.safetyPath}` : 'no previous tree',
        );
        return swapped.safetyPath;
      },
      async verifyLive() {
        await timeline.run('verify-live', () => quickSteps.verifyLiveTree({ path: target.path, files: manifest.source.files }), (v) => `${v.files} files live`);
      },
      async rollback(safetyCopy, error) {
        await timeline.run('rollback', () => quickSteps.rollbackBlobTree({ livePath: target.path, safetyPath: safetyCopy }), (r) =>
          r.restored ? `previous tree back in place (${failureMessage(error)})` : 'nothing to roll back',
        );
      },
      async cleanup() {
        await timeline.run('cleanup', () => quickSteps.removeBlobPaths({ paths: [staging, `${staging}.partial`] }));
      },
    });
    return { backup: manifest, restoredTo: target.path, safetyCopy };
  },

  async drill({ timeline, target, restoring, cleanup }) {
    const manifest = asBlobs(await timeline.run('locate-backup', () => quickSteps.locateBackup({ target }), (m) => `backup ${m.id}, snapshot ${m.snapshotAt}`));
    restoring(manifest);
    const runName = workflowInfo().workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
    const scratch = await timeline.run('prepare-scratch', () => quickSteps.prepareBlobScratch({ target, runName }), (s) => s.dir);
    cleanup(() => timeline.run('remove-scratch', () => quickSteps.removeBlobPaths({ paths: [scratch.dir] })));
    const restored = await timeline.run('restore-tree', () => transferSteps.restoreBlobTree({ target, manifest, destination: scratch.treePath }), describeRestored);
    const checks = await timeline.run(
      'smoke-checks',
      () =>
        quickSteps.checkBlobTree({
          path: scratch.treePath,
          expected: { files: manifest.source.files, blobs: manifest.index.blobs },
          restored,
          mustExist: target.drill.mustExist,
          ...(target.drill.minFiles !== undefined ? { minFiles: target.drill.minFiles } : {}),
        }),
      (results) => `${results.filter((c) => c.passed).length}/${results.length} passed`,
    );
    return { checks };
  },
});
