import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { snapshotAndUpload } from './backup.js';
import { checkIntegrity, fetchBackup, removeFiles, rollbackSwap, swapIntoPlace } from './restore.js';
import { prepareScratch } from './scratch.js';
import { runSmokeChecks } from './smoke-checks.js';

/** The steps of SQLite runbooks. Their names are the activity types recorded in history: never rename one. */
export function sqliteActivities({ env }: KindDependencies) {
  return {
    snapshotAndUpload: reportingFailures((input: Parameters<typeof snapshotAndUpload>[0]) => snapshotAndUpload(input, env)),
    fetchBackup: reportingFailures((input: Parameters<typeof fetchBackup>[0]) => fetchBackup(input, env)),
    checkIntegrity: reportingFailures(checkIntegrity),
    swapIntoPlace: reportingFailures(swapIntoPlace),
    rollbackSwap: reportingFailures(rollbackSwap),
    removeFiles: reportingFailures(removeFiles),
    prepareScratch: reportingFailures(prepareScratch),
    runSmokeChecks: reportingFailures(runSmokeChecks),
  };
}

export type { UploadedSnapshot } from './backup.js';
export type { FetchedBackup, SwapResult } from './restore.js';
