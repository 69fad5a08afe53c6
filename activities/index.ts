import { reportingFailures, type Reported } from './failures.js';
import { runSmokeChecks } from './drill.js';
import { checkHealth, runHook } from './hooks.js';
import { locateBackup, verifyStoredBackup, writeManifest, writeReport } from './repository.js';
import { discardBackup, dropRunDatabase, dumpAndUpload, inspectDatabase, restoreDump, swapDatabase } from './postgres-dump.js';
import { prepareScratch } from './scratch.js';
import { snapshotAndUpload } from './sqlite-backup.js';
import { checkIntegrity, fetchBackup, removeFiles, rollbackSwap, swapIntoPlace } from './sqlite-restore.js';
import { resolveTarget } from './target.js';

export interface ActivityDependencies {
  /** The worker's lifeboat.config.yaml. */
  configPath: string;
  /** Where secret references (env var names) are resolved; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The object the worker registers: every step of every runbook, each safe to run twice. */
export function createActivities(deps: ActivityDependencies) {
  const env = deps.env ?? process.env;
  return {
    resolveTarget: reportingFailures((input: { target: string }) => resolveTarget(deps.configPath, input)),
    snapshotAndUpload: reportingFailures((input: Parameters<typeof snapshotAndUpload>[0]) => snapshotAndUpload(input, env)),
    writeManifest: reportingFailures((input: Parameters<typeof writeManifest>[0]) => writeManifest(input, env)),
    verifyStoredBackup: reportingFailures((input: Parameters<typeof verifyStoredBackup>[0]) => verifyStoredBackup(input, env)),
    locateBackup: reportingFailures((input: Parameters<typeof locateBackup>[0]) => locateBackup(input, env)),
    fetchBackup: reportingFailures((input: Parameters<typeof fetchBackup>[0]) => fetchBackup(input, env)),
    writeReport: reportingFailures((input: Parameters<typeof writeReport>[0]) => writeReport(input, env)),
    checkIntegrity: reportingFailures(checkIntegrity),
    runHook: reportingFailures(runHook),
    checkHealth: reportingFailures(checkHealth),
    swapIntoPlace: reportingFailures(swapIntoPlace),
    rollbackSwap: reportingFailures(rollbackSwap),
    removeFiles: reportingFailures(removeFiles),
    prepareScratch: reportingFailures(prepareScratch),
    runSmokeChecks: reportingFailures(runSmokeChecks),
    // PostgreSQL logical backups (pg_dump / pg_restore).
    dumpAndUpload: reportingFailures((input: Parameters<typeof dumpAndUpload>[0]) => dumpAndUpload(input, env)),
    restoreDump: reportingFailures((input: Parameters<typeof restoreDump>[0]) => restoreDump(input, env)),
    inspectDatabase: reportingFailures((input: Parameters<typeof inspectDatabase>[0]) => inspectDatabase(input, env)),
    swapDatabase: reportingFailures((input: Parameters<typeof swapDatabase>[0]) => swapDatabase(input, env)),
    dropRunDatabase: reportingFailures((input: Parameters<typeof dropRunDatabase>[0]) => dropRunDatabase(input, env)),
    discardBackup: reportingFailures((input: Parameters<typeof discardBackup>[0]) => discardBackup(input, env)),
  };
}

export type LifeboatActivities = ReturnType<typeof createActivities>;
export type { Reported };
export type { ResolvedPostgresTarget, ResolvedSqliteTarget, ResolvedTarget } from './target.js';
export type { RestoredDump, UploadedDump } from './postgres-dump.js';
export type { UploadedSnapshot } from './sqlite-backup.js';
export type { FetchedBackup, SwapResult } from './sqlite-restore.js';
export type { SmokeCheckResult } from './drill.js';
export type { VerifiedCopy } from './repository.js';
