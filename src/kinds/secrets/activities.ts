import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { treeActivities } from '../../tree/activities.js';
import type { PackedBackup } from '../../tree/steps.js';
import type { ResolvedSecretsTarget } from './index.js';
import type { SecretsManifest } from './manifest.js';

/** What the pack step returns to the workflow (and so to history): numbers, never a name. */
export type PackedSecrets = Omit<PackedBackup, 'changedWhileRead' | 'skipped'> & { changedWhileRead: number; skipped: number };

/**
 * The steps of secrets runbooks: the files steps with names kept secret (they never leave the
 * encrypted payload; the pack step refuses a target without a key). Their names are the activity
 * types recorded in history: never rename one.
 */
export function secretsActivities({ env }: KindDependencies) {
  const steps = treeActivities<ResolvedSecretsTarget, SecretsManifest>(env, { secret: true });
  return {
    packSecretsAndUpload: reportingFailures(async (input: { target: ResolvedSecretsTarget; backupId: string }): Promise<PackedSecrets> => {
      const packed = await steps.pack(input);
      return { ...packed, changedWhileRead: packed.changedWhileRead.length, skipped: packed.skipped.length };
    }),
    fetchSecretsTree: steps.fetch,
    publishSecretsTree: steps.publish,
    swapSecretsTrees: steps.swap,
    rollbackSecretsTrees: steps.rollback,
    verifySecretsTree: steps.verify,
    removeSecretsStaging: steps.remove,
    prepareSecretsScratch: steps.prepareScratch,
    runSecretsSmokeChecks: steps.smokeChecks,
  };
}
