import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { awaitArchivedStopStep, checkArchive } from './archive.js';
import { takeBaseBackupStep } from './base.js';
import { dropRunDatabase, dumpAndUpload, inspectDatabase, restoreDump, swapDatabase } from './dump.js';
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
} from './pitr.js';

/** The steps of PostgreSQL runbooks (and of pitr). Their names are the activity types recorded in history: never rename one. */
export function postgresActivities({ configPath, env }: KindDependencies) {
  return {
    // WAL archive health (pg_stat_archiver).
    checkArchive: reportingFailures((input: Parameters<typeof checkArchive>[0]) => checkArchive(input, env)),
    // After a base backup: the WAL segment holding its stop point reaches the archive (ArchiveNotWorking otherwise).
    awaitArchivedStop: reportingFailures((input: Parameters<typeof awaitArchivedStopStep>[0]) => awaitArchivedStopStep(input, env)),
    // Logical backups (pg_dump / pg_restore).
    dumpAndUpload: reportingFailures((input: Parameters<typeof dumpAndUpload>[0]) => dumpAndUpload(input, env)),
    restoreDump: reportingFailures((input: Parameters<typeof restoreDump>[0]) => restoreDump(input, env)),
    inspectDatabase: reportingFailures((input: Parameters<typeof inspectDatabase>[0]) => inspectDatabase(input, env)),
    swapDatabase: reportingFailures((input: Parameters<typeof swapDatabase>[0]) => swapDatabase(input, env)),
    dropRunDatabase: reportingFailures((input: Parameters<typeof dropRunDatabase>[0]) => dropRunDatabase(input, env)),
    // Base backups and point-in-time recovery.
    takeBaseBackup: reportingFailures((input: Parameters<typeof takeBaseBackupStep>[0]) => takeBaseBackupStep(input, env)),
    chooseRecoveryBase: reportingFailures((input: Parameters<typeof chooseRecoveryBase>[0]) => chooseRecoveryBase(input, env)),
    restoreBaseBackup: reportingFailures((input: Parameters<typeof restoreBaseStep>[0]) => restoreBaseStep(input, env)),
    discardRestoreStaging: reportingFailures(discardRestoreStaging),
    recoverToTarget: reportingFailures((input: Parameters<typeof recoverStep>[0]) => recoverStep(input, { configPath, env })),
    removeRecoveredCluster: reportingFailures(removeRecoveredStep),
    runPostgresSmokeChecks: reportingFailures((input: Parameters<typeof runPostgresSmokeChecks>[0]) => runPostgresSmokeChecks(input, env)),
    cutoverSwap: reportingFailures(cutoverSwap),
    startLive: reportingFailures(startLive),
    checkLive: reportingFailures((input: Parameters<typeof checkLive>[0]) => checkLive(input, env)),
    rollbackCutover: reportingFailures(rollbackCutover),
  };
}

export type { RestoredDump, UploadedDump } from './dump.js';
export type { ChosenBase, RecoveredCluster, RecoveryResult, RecoveryTarget, RestoredBaseBackup, SmokeCheckSite } from './pitr.js';
export type { BaseBackupResult } from '../../postgres/base-backup.js';
export type { ArchiveCheckResult } from '../../postgres/archive-check.js';
