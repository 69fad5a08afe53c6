import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { fetchTree, packAndUpload, prepareScratch, publishTree, removeStaging, rollbackTrees, runSmokeChecks, swapTrees, verifyPlaced, type FetchTreeInput, type PackedBackup } from '../../tree/steps.js';
import type { ResolvedFilesTarget } from './index.js';
import type { FilesManifest } from './manifest.js';

const policy = { secret: false };

/** What the pack step returns to the workflow: everything, names included (they are not secret here). */
export type PackedFiles = PackedBackup;

/** The steps of files runbooks. Their names are the activity types recorded in history: never rename one. */
export function filesActivities({ env }: KindDependencies) {
  return {
    packFilesAndUpload: reportingFailures((input: { target: ResolvedFilesTarget; backupId: string }): Promise<PackedFiles> => packAndUpload(input, env, policy)),
    fetchFilesTree: reportingFailures((input: FetchTreeInput & { target: ResolvedFilesTarget; manifest: FilesManifest }) => fetchTree(input, env, policy)),
    publishFilesTree: reportingFailures(publishTree),
    swapFilesTrees: reportingFailures(swapTrees),
    rollbackFilesTrees: reportingFailures(rollbackTrees),
    verifyFilesTree: reportingFailures((input: { target: ResolvedFilesTarget; manifest: FilesManifest; places: Record<string, string>; paths?: string[] }) => verifyPlaced(input, env, policy)),
    removeFilesStaging: reportingFailures(removeStaging),
    prepareFilesScratch: reportingFailures((input: { target: ResolvedFilesTarget; runName: string }) => prepareScratch(input)),
    runFilesSmokeChecks: reportingFailures((input: { target: ResolvedFilesTarget; dir: string; restored: { entries: number; files: number; bytes: number } }) => runSmokeChecks(input, policy)),
  };
}
