import { reportingFailures, type Reported } from './failures.js';
import { checkHealth, runHook } from './hooks.js';
import { discardBackup, locateBackup, verifyStoredBackup, writeManifest, writeReport } from './repository.js';
import { notify } from './notify.js';
import { recordAudit } from './audit.js';
import { resolveTarget } from './target.js';
import { loadKindActivities, type KindActivities } from '../src/kinds/index.js';
import { verifyStoredRepository, withdrawDamagedCopies } from './verify.js';
import { applyTargetRetention, planTargetRetention } from './retention.js';
import { copyBackupInto, copyWalInto, planCopy } from './copy.js';

export interface ActivityDependencies {
  /** The worker's lifeboat.config.yaml. */
  configPath: string;
  /** Where secret references (env var names) are resolved; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The steps every kind of target shares: resolving it, the repository's bookkeeping, hooks. */
function genericActivities(configPath: string, env: NodeJS.ProcessEnv) {
  return {
    resolveTarget: reportingFailures((input: { target: string }) => resolveTarget(configPath, input)),
    writeManifest: reportingFailures((input: Parameters<typeof writeManifest>[0]) => writeManifest(input, env)),
    verifyStoredBackup: reportingFailures((input: Parameters<typeof verifyStoredBackup>[0]) => verifyStoredBackup(input, env)),
    locateBackup: reportingFailures((input: Parameters<typeof locateBackup>[0]) => locateBackup(input, env)),
    writeReport: reportingFailures((input: Parameters<typeof writeReport>[0]) => writeReport(input, env)),
    discardBackup: reportingFailures((input: Parameters<typeof discardBackup>[0]) => discardBackup(input, env)),
    runHook: reportingFailures(runHook),
    checkHealth: reportingFailures(checkHealth),
    // Verification of what the repositories store.
    verifyStoredRepository: reportingFailures((input: Parameters<typeof verifyStoredRepository>[0]) => verifyStoredRepository(input, env)),
    withdrawDamagedCopies: reportingFailures((input: Parameters<typeof withdrawDamagedCopies>[0]) => withdrawDamagedCopies(input, env)),
    // Retention (lifeboat forget).
    planRetention: reportingFailures((input: Parameters<typeof planTargetRetention>[0]) => planTargetRetention(input, { configPath, env })),
    applyRetention: reportingFailures((input: Parameters<typeof applyTargetRetention>[0]) => applyTargetRetention(input, { configPath, env })),
    // Copies (lifeboat copy): bringing a repository up to date from the others.
    planCopy: reportingFailures((input: Parameters<typeof planCopy>[0]) => planCopy(input, env)),
    copyBackupInto: reportingFailures((input: Parameters<typeof copyBackupInto>[0]) => copyBackupInto(input, env)),
    copyWalInto: reportingFailures((input: Parameters<typeof copyWalInto>[0]) => copyWalInto(input, env)),
    // Telling people (src/notify/, src/audit/): after the run's outcome is decided.
    notify: reportingFailures((input: Parameters<typeof notify>[0]) => notify(input, { configPath, env })),
    recordAudit: reportingFailures((input: Parameters<typeof recordAudit>[0]) => recordAudit(input, env)),
  };
}

/**
 * The object the worker registers: every step of every runbook, each safe to run twice. The names
 * are the activity types recorded in history: the generic steps here, and those of every kind of
 * target (src/kinds/<kind>/activities.ts), loaded from the registry.
 */
export async function createActivities(deps: ActivityDependencies): Promise<LifeboatActivities> {
  const env = deps.env ?? process.env;
  const generic = genericActivities(deps.configPath, env);
  const kinds = await loadKindActivities({ configPath: deps.configPath, env });
  const clash = Object.keys(kinds).find((name) => name in generic);
  if (clash) throw new Error(`the activity name "${clash}" is both a generic step and a kind's step; rename the kind's`);
  return { ...generic, ...kinds };
}

/** Every activity the worker registers (the workflow proxies are typed with it). */
export type LifeboatActivities = ReturnType<typeof genericActivities> & KindActivities;
export type { Reported };
export type { ResolvedTarget, ResolvedTargetBase } from './target.js';
export type { SmokeCheckResult } from '../src/kinds/contract.js';
export type { VerifiedCopy } from './repository.js';
export type { RepositoryVerification } from './verify.js';
export type { BackupCopied, CopyPlan, WalCopied } from './copy.js';
export type { RepositoryRetentionOutcome, RepositoryRetentionPlan, RetentionPlan } from './retention.js';
