import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { fetchTree, packAndUpload, prepareScratch, publishTree, removeStaging, rollbackTrees, runSmokeChecks, swapTrees, verifyPlaced, type FetchTreeInput, type PackedBackup } from '../../tree/steps.js';
import type { ResolvedSecretsTarget } from './index.js';
import type { SecretsManifest } from './manifest.js';

const policy = { secret: true };

/** What the pack step returns to the workflow (and so to history): numbers, never a name. */
export type PackedSecrets = Omit<PackedBackup, 'changedWhileRead' | 'skipped'> & { changedWhileRead: number; skipped: number };

async function packSecretsAndUpload(input: { target: ResolvedSecretsTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<PackedSecrets> {
  const packed = await packAndUpload(input, env, policy);
  return { ...packed, changedWhileRead: packed.changedWhileRead.length, skipped: packed.skipped.length };
}

/** The steps of secrets runbooks. Their names are the activity types recorded in history: never rename one. */
export function secretsActivities({ env }: KindDependencies) {
  return {
    packSecretsAndUpload: reportingFailures((input: { target: ResolvedSecretsTarget; backupId: string }) => packSecretsAndUpload(input, env)),
    fetchSecretsTree: reportingFailures((input: FetchTreeInput & { target: ResolvedSecretsTarget; manifest: SecretsManifest }) => fetchTree(input, env, policy)),
    publishSecretsTree: reportingFailures(publishTree),
    swapSecretsTrees: reportingFailures(swapTrees),
    rollbackSecretsTrees: reportingFailures(rollbackTrees),
    verifySecretsTree: reportingFailures((input: { target: ResolvedSecretsTarget; manifest: SecretsManifest; places: Record<string, string> }) => verifyPlaced(input, env, policy)),
    removeSecretsStaging: reportingFailures(removeStaging),
    prepareSecretsScratch: reportingFailures((input: { target: ResolvedSecretsTarget; runName: string }) => prepareScratch(input)),
    runSecretsSmokeChecks: reportingFailures((input: { target: ResolvedSecretsTarget; dir: string; restored: { entries: number; files: number; bytes: number } }) => runSmokeChecks(input, policy)),
  };
}
