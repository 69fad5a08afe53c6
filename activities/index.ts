import { reportingFailures, type Reported } from './failures.js';
import { runSmokeChecks } from './drill.js';
import { checkHealth, runHook } from './hooks.js';
import { discardBackup, locateBackup, verifyStoredBackup, writeManifest, writeReport } from './repository.js';
import { checkArchive } from './postgres-archive.js';
import { dropRunDatabase, dumpAndUpload, inspectDatabase, restoreDump, swapDatabase } from './postgres-dump.js';
import { takeBaseBackupStep } from './postgres-base.js';
import {
  checkLive,
  chooseRecoveryBase,
  cutoverSwap,
  discardRestoreStaging,
  recoverStep,
  removeRecoveredStep,
  restoreBaseStep,
  rollbackCutover,
  runPostgresSmokeChecks,
  startLive,
} from './postgres-pitr.js';
import { prepareScratch } from './scratch.js';
import { snapshotAndUpload } from './sqlite-backup.js';
import { checkIntegrity, fetchBackup, removeFiles, rollbackSwap, swapIntoPlace } from './sqlite-restore.js';
import { notify } from './notify.js';
import { recordAudit } from './audit.js';
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
    // PostgreSQL WAL archive health (pg_stat_archiver).
    checkArchive: reportingFailures((input: Parameters<typeof checkArchive>[0]) => checkArchive(input, env)),
    // PostgreSQL logical backups (pg_dump / pg_restore).
    dumpAndUpload: reportingFailures((input: Parameters<typeof dumpAndUpload>[0]) => dumpAndUpload(input, env)),
    restoreDump: reportingFailures((input: Parameters<typeof restoreDump>[0]) => restoreDump(input, env)),
    inspectDatabase: reportingFailures((input: Parameters<typeof inspectDatabase>[0]) => inspectDatabase(input, env)),
    swapDatabase: reportingFailures((input: Parameters<typeof swapDatabase>[0]) => swapDatabase(input, env)),
    dropRunDatabase: reportingFailures((input: Parameters<typeof dropRunDatabase>[0]) => dropRunDatabase(input, env)),
    discardBackup: reportingFailures((input: Parameters<typeof discardBackup>[0]) => discardBackup(input, env)),
    // PostgreSQL base backups and point-in-time recovery.
    takeBaseBackup: reportingFailures((input: Parameters<typeof takeBaseBackupStep>[0]) => takeBaseBackupStep(input, env)),
    chooseRecoveryBase: reportingFailures((input: Parameters<typeof chooseRecoveryBase>[0]) => chooseRecoveryBase(input, env)),
    restoreBaseBackup: reportingFailures((input: Parameters<typeof restoreBaseStep>[0]) => restoreBaseStep(input, env)),
    discardRestoreStaging: reportingFailures(discardRestoreStaging),
    recoverToTarget: reportingFailures((input: Parameters<typeof recoverStep>[0]) => recoverStep(input, { configPath: deps.configPath, env })),
    removeRecoveredCluster: reportingFailures(removeRecoveredStep),
    runPostgresSmokeChecks: reportingFailures((input: Parameters<typeof runPostgresSmokeChecks>[0]) => runPostgresSmokeChecks(input, env)),
    cutoverSwap: reportingFailures(cutoverSwap),
    startLive: reportingFailures(startLive),
    checkLive: reportingFailures((input: Parameters<typeof checkLive>[0]) => checkLive(input, env)),
    rollbackCutover: reportingFailures(rollbackCutover),
    // Telling people (src/notify/): one event to one channel, after the run's outcome is decided.
    notify: reportingFailures((input: Parameters<typeof notify>[0]) => notify(input, { configPath: deps.configPath, env })),
    recordAudit: reportingFailures((input: Parameters<typeof recordAudit>[0]) => recordAudit(input, env)),
  };
}

export type LifeboatActivities = ReturnType<typeof createActivities>;
export type { Reported };
export type { ResolvedPostgresTarget, ResolvedSqliteTarget, ResolvedTarget } from './target.js';
export type { RestoredDump, UploadedDump } from './postgres-dump.js';
export type { ChosenBase, RecoveredCluster, RecoveryResult, RecoveryTarget, RestoredBaseBackup, SmokeCheckSite } from './postgres-pitr.js';
export type { BaseBackupResult } from '../src/postgres/base-backup.js';
export type { UploadedSnapshot } from './sqlite-backup.js';
export type { FetchedBackup, SwapResult } from './sqlite-restore.js';
export type { SmokeCheckResult } from './drill.js';
export type { VerifiedCopy } from './repository.js';
