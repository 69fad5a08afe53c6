/**
 * The steps of secrets runbooks (the worker-side half is src/kinds/secrets/; the steps themselves
 * are shared with files targets in tree.ts). Every detail they record is a number: no name of a
 * secret reaches the timeline, the result or history.
 */
import type { PackedSecrets } from '../../src/kinds/secrets/activities.js';
import type { ResolvedSecretsTarget } from '../../src/kinds/secrets/index.js';
import type { SecretsManifest } from '../../src/kinds/secrets/manifest.js';
import { quickSteps, transferSteps } from '../runbook.js';
import { defineTargetRunbooks } from './contract.js';
import { treeBackup, treeDrill, treeRestore, type TreeKindSpec } from './tree.js';

export interface SecretsBackupDetails {
  secrets: { entries: number; parts: number; changedWhileRead: number; skipped: number };
}

const spec: TreeKindSpec<ResolvedSecretsTarget, SecretsManifest, PackedSecrets, SecretsBackupDetails> = {
  kind: 'secrets',
  secret: true,
  steps: {
    pack: (input) => transferSteps.packSecretsAndUpload(input),
    fetch: (input) => transferSteps.fetchSecretsTree(input),
    publish: (input) => quickSteps.publishSecretsTree(input),
    swap: (input) => transferSteps.swapSecretsTrees(input),
    rollback: (input) => quickSteps.rollbackSecretsTrees(input),
    verify: (input) => transferSteps.verifySecretsTree(input),
    remove: (input) => transferSteps.removeSecretsStaging(input),
    prepareScratch: (input) => quickSteps.prepareSecretsScratch(input),
    smokeChecks: (input) => transferSteps.runSecretsSmokeChecks(input),
  },
  source: (packed) => ({ ...packed.counts, changedWhileRead: packed.changedWhileRead, skipped: packed.skipped }),
  details: (packed) => ({ secrets: { entries: packed.counts.entries, parts: packed.parts.length, changedWhileRead: packed.changedWhileRead, skipped: packed.skipped } }),
};

export const secretsRunbooks = defineTargetRunbooks<ResolvedSecretsTarget>()({
  type: 'secrets',
  methods: [],
  describe: (target) => `${target.type} ${target.roots.map((root) => root.path).join(', ')} (always encrypted)`,
  backup: treeBackup(spec),
  restore: treeRestore(spec),
  drill: treeDrill(spec, (restored) => ({ secrets: { entries: restored.entries, files: restored.files, bytes: restored.bytes } })),
});
