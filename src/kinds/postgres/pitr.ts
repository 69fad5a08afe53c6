import { Context, log } from '@temporalio/activity';
import { existsSync } from 'node:fs';
import { copyFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import type { SmokeCheck } from '../../config/schema.js';
import { restoreBaseBackup, stagingDirFor, type RestoredBaseBackup } from '../../postgres/base-restore.js';
import { LifeboatError } from '../../errors.js';
import { isClusterRunning, removeCluster, stopCluster } from '../../postgres/cluster.js';
import { connectTo } from '../../postgres/dump-connection.js';
import { chooseBaseBackupFrom, connectRecovered, recoverToTarget, stopRecoveredCluster, walFetchCommand, type RecoveredCluster, type RecoveryResult } from '../../postgres/recovery.js';
import { describeRecoveryTarget, parseRecoveryTarget, type RecoveryTarget } from '../../postgres/recovery-target.js';
import { chownToServerUser } from '../../postgres/tools.js';
import { createPrefetchSpool, prefetchSpoolFor, removePrefetchSpool } from '../../postgres/wal-prefetch.js';
import type { PostgresBaseManifest } from '../../repository/manifest.js';
import type { SmokeCheckResult } from '../contract.js';
import { leaseForThisRun, releaseLease } from '../../../activities/leases.js';
import { checkArchive } from './archive.js';
import { actualOf, expectedOf } from '../smoke-check-values.js';
import { decryptionKeyFor } from '../../pipeline/encrypt.js';
import { startProgress } from '../../../activities/progress.js';
import { openRepositories } from '../../../activities/repositories.js';
import type { ResolvedPostgresTarget } from './index.js';

export type { RecoveredCluster, RecoveryResult, RecoveryTarget, RestoredBaseBackup };

export interface ChosenBase {
  manifest: PostgresBaseManifest;
  /** Why this base backup, for the timeline. */
  reason: string;
  /** The validated target (as PostgreSQL will be given it). */
  recoveryTarget: RecoveryTarget;
  /** The target in words. */
  description: string;
}

/**
 * Validates the recovery target (InvalidInput) and chooses the newest base backup that finished
 * before it, or the pinned one (BackupNotFound, RecoveryTargetBeforeBackup). Reads manifests only.
 */
export async function chooseRecoveryBase(
  input: { target: ResolvedPostgresTarget; recoveryTarget: unknown; backupId?: string },
  env: NodeJS.ProcessEnv,
): Promise<ChosenBase> {
  const recoveryTarget = parseRecoveryTarget(input.recoveryTarget);
  const repositories = openRepositories(input.target, env);
  const choice = await chooseBaseBackupFrom(repositories, input.target.name, recoveryTarget, input.backupId);
  for (const problem of choice.problems) log.warn('base backup listing problem', { problem });
  // Leased, then read again, so that retention keeps it and the WAL after it while this run needs them.
  const lease = await leaseForThisRun(repositories, input.target.name, choice.backup.id);
  const still = await Promise.all(repositories.map((repository) => repository.readManifestIfAny(input.target.name, choice.backup.id).catch(() => undefined)));
  if (!still.some((manifest) => manifest !== undefined)) {
    await releaseLease(repositories, lease);
    throw new Error(`base backup ${choice.backup.id} of target "${input.target.name}" was removed by retention while it was being chosen`);
  }
  return { manifest: choice.backup.manifest, reason: choice.reason, recoveryTarget, description: describeRecoveryTarget(recoveryTarget) };
}

/**
 * Fetches the base backup (sha256 of every part), lays it out in a new data directory and checks
 * it with pg_verifybackup. Idempotent: a directory an earlier attempt restored and verified is
 * accepted as it is, a staging directory it left is removed first.
 */
export async function restoreBaseStep(input: { target: ResolvedPostgresTarget; manifest: PostgresBaseManifest; dataDir: string }, env: NodeJS.ProcessEnv): Promise<RestoredBaseBackup> {
  const context = Context.current();
  const storedBytes = input.manifest.objects.reduce((sum, object) => sum + object.sizeBytes, 0);
  const progress = startProgress('fetch', storedBytes);
  try {
    const key = await decryptionKeyFor(input.target, input.manifest);
    return await restoreBaseBackup({
      manifest: input.manifest,
      repositories: openRepositories(input.target, env),
      dataDir: input.dataDir,
      ...(key ? { encryptionKey: key } : {}),
      onProgress: (p) => progress.set(p),
      signal: context.cancellationSignal,
    });
  } finally {
    progress.stop();
  }
}

/**
 * The environment PostgreSQL (and so restore_command, `lifeboat wal-fetch`) runs with: only the
 * S3 credentials the target's repositories name. They live in the server process's environment,
 * never in history or in a file.
 */
function restoreCommandEnvironment(target: ResolvedPostgresTarget, env: NodeJS.ProcessEnv): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const { config } of target.repositories) {
    if (config.type !== 's3') continue;
    for (const name of [config.accessKeyIdEnv, config.secretAccessKeyEnv]) {
      const value = env[name];
      if (value !== undefined) variables[name] = value;
    }
  }
  return variables;
}

/**
 * Starts the restored data directory in recovery on a free loopback port, with restore_command =
 * `lifeboat wal-fetch` for this target and archive_mode off, and waits (heartbeating the replayed
 * WAL position) until it promoted at the target. The cluster keeps running after the step (the
 * runbook's result says where); a failure stops it and is reported as a typed error
 * (RecoveryTargetUnreachable, WalSegmentMissing, TimelineNotFound, ...). Safe to run again: a
 * server an earlier attempt left running is stopped and started again, which resumes replay.
 */
export async function recoverStep(
  input: { target: ResolvedPostgresTarget; manifest: PostgresBaseManifest; dataDir: string; recoveryTarget: RecoveryTarget; timeline?: 'latest' | 'current' | number },
  deps: { configPath: string; env: NodeJS.ProcessEnv },
): Promise<RecoveryResult> {
  const { target } = input;
  const context = Context.current();
  const progress = startProgress('recover', 0);
  // The prefetch spool lives exactly as long as this step: a new one for each attempt.
  const prefetchSpool = target.recovery.prefetchSegments > 0 ? prefetchSpoolFor(resolve(input.dataDir)) : undefined;
  try {
    if (prefetchSpool) await createPrefetchSpool(prefetchSpool, target.name);
    const result = await recoverToTarget({
      dataDir: input.dataDir,
      manifest: input.manifest,
      recoveryTarget: input.recoveryTarget,
      ...(input.timeline !== undefined ? { timeline: input.timeline } : {}),
      restoreCommand: walFetchCommand({ configPath: resolve(deps.configPath), target: target.name, ...(prefetchSpool ? { prefetchSpool } : {}) }),
      serverEnv: restoreCommandEnvironment(target, deps.env),
      archive: { repositories: openRepositories(target, deps.env), target: target.name },
      sourceArchiver: () => checkArchive({ target }, deps.env),
      sourceName: `${target.connection.host}:${target.connection.port}`,
      timeoutSeconds: target.recovery.timeoutSeconds,
      onProgress: (p) => progress.set(p),
      signal: context.cancellationSignal,
      // The recovered cluster is the runbook's result: it must outlive this worker process.
      stopOnExit: false,
    });
    log.info('recovered', { target: target.name, dataDir: result.cluster.dataDir, port: result.cluster.port, lsn: result.reached.lsn, attempt: context.info.attempt });
    return result;
  } finally {
    progress.stop();
    // Promoted, failed or cancelled: the recovery is over, its prefetcher exits when the spool goes.
    if (prefetchSpool) await removePrefetchSpool(prefetchSpool);
  }
}

/**
 * Stops a recovered (or half-restored) cluster and removes its data directory, staging directory
 * and socket directory. Idempotent: what is already gone is fine.
 */
export async function removeRecoveredStep(input: { dataDir: string; socketDir?: string }): Promise<{ removed: boolean }> {
  const dataDir = resolve(input.dataDir);
  const existed = existsSync(dataDir) || existsSync(stagingDirFor(dataDir));
  await removeCluster(dataDir);
  await rm(stagingDirFor(dataDir), { recursive: true, force: true });
  await removePrefetchSpool(prefetchSpoolFor(dataDir));
  if (input.socketDir) await rm(input.socketDir, { recursive: true, force: true });
  return { removed: existed };
}

/**
 * Removes what an interrupted restore of a base backup into dataDir left beside it (its staging
 * directory), never dataDir itself: that exists only once complete and verified, or was there before.
 */
export async function discardRestoreStaging(input: { dataDir: string }): Promise<{ removed: boolean }> {
  const staging = stagingDirFor(resolve(input.dataDir));
  const existed = existsSync(staging);
  await rm(staging, { recursive: true, force: true });
  return { removed: existed };
}

/** Where smoke checks run: a recovered cluster (through its private socket), or a database on the target's server. */
export type SmokeCheckSite = { cluster: RecoveredCluster; database: string } | { database: string };

/**
 * Runs the target's smoke checks, each in a read-only transaction, against a recovered cluster
 * or a (scratch) database. Never throws for a failed check: the report says which failed and why.
 */
export async function runPostgresSmokeChecks(
  input: { target: ResolvedPostgresTarget; site: SmokeCheckSite; checks: SmokeCheck[] },
  env: NodeJS.ProcessEnv,
): Promise<SmokeCheckResult[]> {
  const { site } = input;
  const client: pg.Client = 'cluster' in site ? await connectRecovered(site.cluster, site.database) : await connectTo(input.target.connection, env, site.database);
  try {
    const results: SmokeCheckResult[] = [];
    for (const check of input.checks) {
      const started = Date.now();
      try {
        await client.query('BEGIN READ ONLY');
        const { rows } = await client.query<unknown[]>({ text: check.sql, rowMode: 'array' });
        await client.query('ROLLBACK');
        const first = rows[0]?.[0];
        const problems: string[] = [];
        if (check.minRows !== undefined && rows.length < check.minRows) problems.push(`returned ${rows.length} rows, expected at least ${check.minRows}`);
        if (check.expect !== undefined && String(first) !== String(check.expect)) problems.push(`returned ${describeValue(first)}, expected ${JSON.stringify(check.expect)}`);
        results.push({
          name: check.name,
          passed: problems.length === 0,
          detail: problems.length ? problems.join('; ') : `returned ${describeValue(first)}`,
          durationMs: Date.now() - started,
          expected: expectedOf(check),
          actual: actualOf(rows),
        });
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        const failed = `query failed: ${(error as Error).message}`;
        results.push({ name: check.name, passed: false, detail: failed, durationMs: Date.now() - started, expected: expectedOf(check), actual: failed });
      }
    }
    return results;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function describeValue(value: unknown): string {
  return value === undefined ? 'no rows' : JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// Cutover: the recovered cluster replaces the live one (only after an approval; see workflows/pitr.ts)

type Cutover = NonNullable<ResolvedPostgresTarget['recovery']['cutover']>;

/** The live cluster's own configuration goes with the data directory that replaces it. */
const liveConfigFiles = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf'];

async function stopLive(cutover: Cutover, dataDir: string): Promise<void> {
  if (cutover.stopCommand) {
    await runShell('stop', cutover.stopCommand, 300);
    if (await isClusterRunning(dataDir)) throw new LifeboatError('HookFailed', `the stop command \`${cutover.stopCommand}\` ran, but a server still runs in ${dataDir}`, 'Fix recovery.cutover.stopCommand');
  } else {
    await stopCluster(dataDir, { mode: 'fast', timeoutSeconds: 120 });
  }
}

async function runShell(name: string, command: string, timeoutSeconds: number): Promise<void> {
  const result = await execa(command, { shell: true, reject: false, timeout: timeoutSeconds * 1000, all: true, stdin: 'ignore' });
  if (result.failed) {
    const output = String(result.all ?? '').trim().split('\n').slice(-10).join('\n');
    throw new LifeboatError('HookFailed', `the ${name} command \`${command}\` ${result.timedOut ? `timed out after ${timeoutSeconds} s` : `exited with ${result.exitCode ?? result.signal}`}${output ? `:\n${output}` : ''}`, `Fix recovery.cutover.${name}Command`);
  }
}

/**
 * Stops the recovered cluster (a clean shutdown), gives it the live cluster's configuration files,
 * stops the live cluster, renames the live data directory to safetyDir (kept whole) and the
 * recovered one into its place. Idempotent: each part checks what an interrupted attempt did.
 */
export async function cutoverSwap(input: { target: ResolvedPostgresTarget; recoveredDataDir: string; socketDir: string; safetyDir: string }): Promise<{ safetyDir: string }> {
  const cutover = input.target.recovery.cutover!;
  const [live, recovered, safety] = [resolve(cutover.dataDir), resolve(input.recoveredDataDir), resolve(input.safetyDir)];
  if (!existsSync(recovered)) {
    if (existsSync(safety) && existsSync(join(live, 'PG_VERSION'))) return { safetyDir: safety }; // done by an earlier attempt
    throw new LifeboatError('InvalidInput', `the recovered cluster ${recovered} is gone; nothing was replaced`, 'Run the recovery again');
  }
  await stopRecoveredCluster({ dataDir: recovered, socketDir: input.socketDir }, 'fast');
  if (existsSync(live)) {
    for (const name of liveConfigFiles) {
      if (!existsSync(join(live, name))) continue;
      await copyFile(join(live, name), join(recovered, name));
      await chownToServerUser(join(recovered, name));
    }
    await stopLive(cutover, live);
    if (existsSync(safety)) throw new LifeboatError('InvalidInput', `${safety} exists already; refusing to overwrite it`, 'Move it away and run the cutover again');
    await rename(live, safety);
    log.warn('live data directory moved aside', { from: live, to: safety });
  }
  await rename(recovered, live);
  log.warn('recovered cluster moved into place', { from: recovered, to: live });
  return { safetyDir: safety };
}

/** Starts the live cluster with recovery.cutover.startCommand, unless it already runs (a retry). */
export async function startLive(input: { target: ResolvedPostgresTarget }): Promise<{ started: boolean }> {
  const cutover = input.target.recovery.cutover!;
  if (await isClusterRunning(resolve(cutover.dataDir))) return { started: false };
  await runShell('start', cutover.startCommand, cutover.healthTimeoutSeconds + 60);
  return { started: true };
}

/**
 * The started cluster must accept connections as the target's connection (within
 * healthTimeoutSeconds), be out of recovery, and pass the smoke checks; HealthCheckFailed otherwise.
 */
export async function checkLive(input: { target: ResolvedPostgresTarget }, env: NodeJS.ProcessEnv): Promise<{ checks: SmokeCheckResult[]; timeline: number }> {
  const { target } = input;
  const cutover = target.recovery.cutover!;
  const deadline = Date.now() + cutover.healthTimeoutSeconds * 1000;
  let last = 'no answer';
  for (;;) {
    try {
      const client = await connectTo(target.connection, env);
      try {
        const { rows } = await client.query<{ recovering: boolean; wal: string }>('SELECT pg_is_in_recovery() AS recovering, pg_walfile_name(pg_current_wal_lsn()) AS wal');
        if (!rows[0]!.recovering) {
          const checks = await runPostgresSmokeChecks({ target, site: { database: target.connection.database }, checks: target.drill.smokeChecks }, env);
          const failed = checks.filter((check) => !check.passed);
          if (failed.length > 0) {
            throw new LifeboatError('HealthCheckFailed', `the cluster now live in ${cutover.dataDir} failed smoke checks: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`, 'The cutover is rolled back');
          }
          return { checks, timeline: parseInt(rows[0]!.wal.slice(0, 8), 16) };
        }
        last = 'still in recovery';
      } finally {
        await client.end().catch(() => undefined);
      }
    } catch (error) {
      if (error instanceof LifeboatError && error.type === 'HealthCheckFailed') throw error;
      last = (error as Error).message;
    }
    if (Date.now() > deadline) {
      throw new LifeboatError('HealthCheckFailed', `the cluster now live in ${cutover.dataDir} did not become usable within ${cutover.healthTimeoutSeconds} s: ${last}`, 'The cutover is rolled back');
    }
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 500));
  }
}

/**
 * Undoes a cutover: stops whatever runs in the live data directory, moves it to failedDir, puts
 * the safety copy back and starts it. Idempotent; without a safety copy only makes sure the live
 * cluster runs.
 */
export async function rollbackCutover(input: { target: ResolvedPostgresTarget; safetyDir: string; failedDir: string }): Promise<{ restored: boolean }> {
  const cutover = input.target.recovery.cutover!;
  const [live, safety, failed] = [resolve(cutover.dataDir), resolve(input.safetyDir), resolve(input.failedDir)];
  let restored = false;
  if (existsSync(safety)) {
    if (existsSync(live)) {
      await stopLive(cutover, live).catch(() => stopCluster(live, { mode: 'immediate' }));
      await rename(live, failed);
    }
    await rename(safety, live);
    restored = true;
    log.warn('cutover rolled back', { live, failedCopy: failed });
  }
  if (existsSync(join(live, 'PG_VERSION'))) await startLive({ target: input.target });
  return { restored };
}
