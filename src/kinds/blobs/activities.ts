import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { backupBlobTree } from './backup.js';
import { checkBlobTree, prepareBlobScratch, verifyLiveTree } from './drill.js';
import { removeBlobPaths, restoreBlobTree, rollbackBlobTree, swapBlobTree } from './restore.js';

/** The steps of blobs runbooks. Their names are the activity types recorded in history: never rename one. */
export function blobsActivities({ env }: KindDependencies) {
  return {
    backupBlobTree: reportingFailures((input: Parameters<typeof backupBlobTree>[0]) => backupBlobTree(input, env)),
    restoreBlobTree: reportingFailures((input: Parameters<typeof restoreBlobTree>[0]) => restoreBlobTree(input, env)),
    swapBlobTree: reportingFailures(swapBlobTree),
    rollbackBlobTree: reportingFailures(rollbackBlobTree),
    removeBlobPaths: reportingFailures(removeBlobPaths),
    prepareBlobScratch: reportingFailures(prepareBlobScratch),
    checkBlobTree: reportingFailures(checkBlobTree),
    verifyLiveTree: reportingFailures(verifyLiveTree),
  };
}

export type { StoredBlobsBackup } from './backup.js';
export type { RestoredTree } from './restore.js';
