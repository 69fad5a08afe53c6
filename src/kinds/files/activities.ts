import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { treeActivities } from '../../tree/activities.js';
import type { PackedBackup } from '../../tree/steps.js';
import type { ResolvedFilesTarget } from './index.js';
import type { FilesManifest } from './manifest.js';

/** What the pack step returns to the workflow: everything, names included (they are not secret here). */
export type PackedFiles = PackedBackup;

/** The steps of files runbooks. Their names are the activity types recorded in history: never rename one. */
export function filesActivities({ env }: KindDependencies) {
  const steps = treeActivities<ResolvedFilesTarget, FilesManifest>(env, { secret: false });
  return {
    packFilesAndUpload: reportingFailures((input: { target: ResolvedFilesTarget; backupId: string }): Promise<PackedFiles> => steps.pack(input)),
    fetchFilesTree: steps.fetch,
    publishFilesTree: steps.publish,
    swapFilesTrees: steps.swap,
    rollbackFilesTrees: steps.rollback,
    verifyFilesTree: steps.verify,
    removeFilesStaging: steps.remove,
    prepareFilesScratch: steps.prepareScratch,
    runFilesSmokeChecks: steps.smokeChecks,
  };
}
