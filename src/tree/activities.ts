/**
 * The steps of a tree kind, bound to its policy, for the kind to register under its own names (the
 * names are activity types recorded in history: each kind keeps its own, written out, never built).
 */
import { reportingFailures } from '../../activities/failures.js';
import { fetchTree, packAndUpload, prepareScratch, publishTree, removeStaging, rollbackTrees, runSmokeChecks, swapTrees, verifyPlaced, type FetchTreeInput, type TreePolicy } from './steps.js';
import type { TreeBackup } from './restore.js';
import type { ResolvedTreeTarget } from './target.js';

export function treeActivities<Target extends ResolvedTreeTarget, Manifest extends TreeBackup>(env: NodeJS.ProcessEnv, policy: TreePolicy) {
  return {
    pack: (input: { target: Target; backupId: string }) => packAndUpload(input, env, policy),
    fetch: reportingFailures((input: FetchTreeInput & { target: Target; manifest: Manifest }) => fetchTree(input, env, policy)),
    publish: reportingFailures(publishTree),
    swap: reportingFailures(swapTrees),
    rollback: reportingFailures(rollbackTrees),
    verify: reportingFailures((input: { target: Target; manifest: Manifest; places: Record<string, string>; paths?: string[] }) => verifyPlaced(input, env, policy)),
    remove: reportingFailures(removeStaging),
    prepareScratch: reportingFailures((input: { target: Target; runName: string }) => prepareScratch(input)),
    smokeChecks: reportingFailures((input: { target: Target; dir: string; restored: { entries: number; files: number; bytes: number } }) => runSmokeChecks(input, policy)),
  };
}
