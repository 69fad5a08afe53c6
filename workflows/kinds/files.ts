/**
 * The steps of files runbooks (the worker-side half is src/kinds/files/; the steps themselves are
 * shared with secrets targets in tree.ts).
 */
import type { PackedFiles } from '../../src/kinds/files/activities.js';
import type { ResolvedFilesTarget } from '../../src/kinds/files/index.js';
import type { FilesManifest } from '../../src/kinds/files/manifest.js';
import { quickSteps, transferSteps } from '../runbook.js';
import { defineTargetRunbooks } from './contract.js';
import { treeBackup, treeDrill, treeRestore, type TreeKindSpec } from './tree.js';

export interface FilesBackupDetails {
  /** What the backup holds, and what needs the operator's attention: files that changed while read, entries left out. */
  files: { entries: number; parts: number; changedWhileRead: string[]; skipped: Array<{ path: string; reason: string }> };
}

const spec: TreeKindSpec<ResolvedFilesTarget, FilesManifest, PackedFiles, FilesBackupDetails> = {
  kind: 'files',
  secret: false,
  steps: {
    pack: (input) => transferSteps.packFilesAndUpload(input),
    fetch: (input) => transferSteps.fetchFilesTree(input),
    publish: (input) => quickSteps.publishFilesTree(input),
    swap: (input) => transferSteps.swapFilesTrees(input),
    rollback: (input) => quickSteps.rollbackFilesTrees(input),
    verify: (input) => transferSteps.verifyFilesTree(input),
    remove: (input) => transferSteps.removeFilesStaging(input),
    prepareScratch: (input) => quickSteps.prepareFilesScratch(input),
    smokeChecks: (input) => transferSteps.runFilesSmokeChecks(input),
  },
  source: (packed) => ({ ...packed.counts, changedWhileRead: packed.changedWhileRead, skipped: packed.skipped }),
  details: (packed) => ({ files: { entries: packed.counts.entries, parts: packed.parts.length, changedWhileRead: packed.changedWhileRead, skipped: packed.skipped } }),
};

export const filesRunbooks = defineTargetRunbooks<ResolvedFilesTarget>()({
  type: 'files',
  methods: [],
  describe: (target) => `${target.type} ${target.roots.map((root) => root.path).join(', ')}`,
  backup: treeBackup(spec),
  restore: treeRestore(spec),
  drill: treeDrill(spec, (restored) => ({ files: { entries: restored.entries, files: restored.files, bytes: restored.bytes } })),
});
