import { Context, log } from '@temporalio/activity';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { LifeboatError } from '../../errors.js';
import {
  commandEnvironment,
  commandFailure,
  describeArgv,
  describeOutcome,
  runCommand,
  startExport,
  startImport,
  succeeded,
  type CommandSpec,
} from '../../pipeline/command-stream.js';
import type { StoredObject } from '../../repository/manifest-envelope.js';
import { startProgress } from '../../../activities/progress.js';
import type { SmokeCheckResult } from '../contract.js';
import { encryptionKeyOf, fetchPayloadToFile, payloadObjectName, storageFacts, storePayload, streamPayloadInto, type PayloadOfBackup } from '../payload.js';
import type { ResolvedCommandTarget } from './index.js';
import type { CommandManifest } from './manifest.js';

/** What the manifest needs from the export-and-upload step. */
export interface ExportedPayload {
  snapshotAt: string;
  source: CommandManifest['source'];
  object: StoredObject;
  compression: CommandManifest['compression'];
  encryption: CommandManifest['encryption'];
  tools: Record<string, string>;
  repositories: string[];
}

/**
 * One step: run the backup command and stream its stdout into every repository in one pass
 * (sha256 of the payload, zstd, encryption, sha256 of what is stored). A non-zero exit, a signal or
 * the time limit fails the step (CommandFailed, with the command's stderr tail): the runbook then
 * removes what was stored. Safe to run again: an attempt stores under names of its own and first removes what earlier ones stored,
 * and runs the command from the start.
 */
export async function exportCommandAndUpload(input: { target: ResolvedCommandTarget; backupId: string }, env: NodeJS.ProcessEnv): Promise<ExportedPayload> {
  const { target, backupId } = input;
  const { cancellationSignal: signal, info } = Context.current();
  const spec: CommandSpec = target.backup;
  const childEnv = commandEnvironment(spec, env, `the backup command of target "${target.name}"`);
  const key = await encryptionKeyOf(target);
  const objectName = payloadObjectName(target.payloadName, key !== undefined);
  const progress = startProgress('export', 0);
  const stop = new AbortController();
  const stopping = AbortSignal.any([signal, stop.signal]);
  try {
    const startedAt = new Date();
    const command = await startExport(spec, childEnv, 'the backup command', { signal: stopping });
    const storing = storePayload({ target, backupId, attempt: info.attempt, objectName, source: command.stdout!, key, progress, signal: stopping, env });
    // A repository that fails stops the command (it would otherwise wait forever on a full pipe).
    let storeFailed = false;
    storing.catch(() => {
      storeFailed = true;
      command.kill();
    });
    const [stored, outcome] = await Promise.allSettled([storing, command.done]);
    const ended = outcome.status === 'fulfilled' ? outcome.value : undefined;
    // The command's own failure (with its stderr) explains a short stream better than the stream does.
    // Stopped because a repository failed: that failure is the one to report.
    if (ended && !succeeded(ended) && !(storeFailed && ended.signal !== undefined)) {
      if (signal.aborted) throw signal.reason;
      stop.abort(new Error('the backup command failed'));
      await storing.catch(() => undefined);
      throw commandFailure(`the backup command of target "${target.name}"`, spec, ended, 'Nothing was stored (what was uploaded is removed); fix what the command reports and run the backup again');
    }
    if (stored.status === 'rejected') throw stored.reason;
    const facts = await storageFacts(target, key);
    log.info('command output stored', { target: target.name, backupId, bytes: stored.value.source.sizeBytes, durationMs: ended?.durationMs });
    return {
      snapshotAt: startedAt.toISOString(),
      source: {
        argv: spec.argv,
        cwd: spec.cwd ?? null,
        payloadName: target.payloadName,
        sizeBytes: stored.value.source.sizeBytes,
        sha256: stored.value.source.sha256,
        durationMs: ended?.durationMs ?? 0,
      },
      object: stored.value.object,
      compression: facts.compression,
      encryption: facts.encryption,
      tools: { node: process.version, zstd: facts.zstd },
      repositories: target.repositories.map((r) => r.name),
    };
  } finally {
    stop.abort(new Error('the step ended'));
    progress.stop();
  }
}

function payloadOf(manifest: CommandManifest): PayloadOfBackup {
  return { manifest, object: manifest.objects[0]!, decoded: { sizeBytes: manifest.source.sizeBytes, sha256: manifest.source.sha256 } };
}

/**
 * Pipes a backup into the restore command's stdin: the stored copy is verified first, the decoded
 * stream is hashed on its way, and the command's stdin is closed (its end of input) only when both
 * match the manifest; otherwise the command is stopped with its input cut short. The command must
 * exit 0. What it does with the input (and whether running it again is safe, as a retry after a
 * worker's death does) is the command's.
 */
export async function pipePayloadIntoCommand(input: { target: ResolvedCommandTarget; manifest: CommandManifest }, env: NodeJS.ProcessEnv): Promise<{ repository: string; sizeBytes: number; durationMs: number }> {
  const { target, manifest } = input;
  const spec = target.restore;
  if (!spec) throw new LifeboatError('InvalidConfig', `target "${target.name}" has no restore command`, 'Set restore.argv in its config, or restore with --into <file>');
  const signal = Context.current().cancellationSignal;
  const childEnv = commandEnvironment(spec, env, `the restore command of target "${target.name}"`);
  const progress = startProgress('verify-stored', manifest.objects[0]!.sizeBytes);
  const stop = new AbortController();
  const stopping = AbortSignal.any([signal, stop.signal]);
  try {
    const command = await startImport(spec, childEnv, 'the restore command', { signal: stopping });
    let fed: { repository: string; sizeBytes: number };
    try {
      fed = await streamPayloadInto({ target, payload: payloadOf(manifest), sink: command.stdin!, progress, signal: stopping, env });
    } catch (error) {
      // The command may have failed first (and stopped reading): its own failure explains more.
      command.stdin?.destroy();
      const raced = await Promise.race([command.done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000))]);
      if (raced && !succeeded(raced) && !signal.aborted && !(error instanceof LifeboatError)) {
        throw commandFailure(`the restore command of target "${target.name}"`, spec, raced, 'It read part of the backup, without an end of input; check what it changed, fix what it reports and run the restore again');
      }
      command.kill();
      await command.done;
      throw error;
    }
    command.stdin!.end();
    progress.setPhase('finish');
    const outcome = await command.done;
    if (!succeeded(outcome)) {
      if (signal.aborted) throw signal.reason;
      throw commandFailure(`the restore command of target "${target.name}"`, spec, outcome, 'It read the whole backup; check what it changed, fix what it reports and run the restore again');
    }
    log.info('backup piped into the restore command', { target: target.name, backupId: manifest.id, bytes: fed.sizeBytes });
    return { ...fed, durationMs: outcome.durationMs };
  } finally {
    stop.abort(new Error('the step ended'));
    progress.stop();
  }
}

/** restore --into: the decoded payload written to a new file (absolute, not existing), both checksums verified. */
export async function fetchCommandPayload(input: { target: ResolvedCommandTarget; manifest: CommandManifest; destination: string; refuseExisting?: boolean }, env: NodeJS.ProcessEnv): Promise<{ path: string; repository: string; sizeBytes: number }> {
  const { target, manifest, destination } = input;
  if (input.refuseExisting) {
    if (!isAbsolute(destination)) throw new LifeboatError('InvalidInput', `--into ${destination} is not an absolute path`, 'Give the absolute path of a file that does not exist yet; nothing was changed');
    if (await lstat(destination).catch(() => undefined)) throw new LifeboatError('InvalidInput', `${destination} already exists`, 'Choose a path that does not exist yet; nothing was changed');
  }
  const progress = startProgress('download', manifest.objects[0]!.sizeBytes);
  try {
    const fetched = await fetchPayloadToFile({ target, payload: payloadOf(manifest), destination, progress, signal: Context.current().cancellationSignal, env });
    return { path: destination, ...fetched };
  } finally {
    progress.stop();
  }
}

/** A drill's scratch directory (the same run gets the same one: idempotent). */
function commandScratchDir(target: ResolvedCommandTarget, runName: string): string {
  return join(target.drill.scratchDir ?? tmpdir(), `lifeboat-${runName}`);
}

export async function prepareCommandScratch(input: { target: ResolvedCommandTarget; runName: string }): Promise<{ dir: string; payloadPath: string }> {
  const dir = commandScratchDir(input.target, input.runName);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return { dir, payloadPath: join(dir, input.target.payloadName) };
}

/** Compensation: the scratch directory removed (registered before prepareCommandScratch makes it). */
export async function removeCommandScratch(input: { target: ResolvedCommandTarget; runName: string }): Promise<{ removed: boolean }> {
  const dir = commandScratchDir(input.target, input.runName);
  const existed = (await lstat(dir).catch(() => undefined)) !== undefined;
  await rm(dir, { recursive: true, force: true });
  return { removed: existed };
}

/** "{payload}" and "{scratch}" in a check's argv, replaced by the scratch copy's path and directory. */
export function withPlaceholders(argv: readonly string[], scratch: { dir: string; payloadPath: string }): string[] {
  return argv.map((word) => word.replaceAll('{payload}', scratch.payloadPath).replaceAll('{scratch}', scratch.dir));
}

/** The drill's checks, in order, on the scratch copy: each passes when it exits 0 within its time limit. Never throws for a failed check. */
export async function runCommandChecks(input: { target: ResolvedCommandTarget; dir: string; payloadPath: string }, env: NodeJS.ProcessEnv): Promise<SmokeCheckResult[]> {
  const { target } = input;
  const signal = Context.current().cancellationSignal;
  const progress = startProgress('checks', 0);
  const results: SmokeCheckResult[] = [];
  try {
    for (const check of target.drill.checks) {
      const started = Date.now();
      progress.setPhase(`check ${check.name}`);
      const spec: CommandSpec = { ...check, argv: withPlaceholders(check.argv, input), cwd: check.cwd ?? input.dir };
      // What the report's table shows beside the outcome (src/report/html.ts).
      const checkExpectation = `\`${describeArgv(check.argv)}\` exits with status 0 within ${spec.timeoutSeconds} s`;
      try {
        const childEnv = { ...commandEnvironment(check, env, `the drill check "${check.name}" of target "${target.name}"`), LIFEBOAT_PAYLOAD: input.payloadPath, LIFEBOAT_SCRATCH_DIR: input.dir };
        const outcome = await runCommand(spec, childEnv, `the drill check "${check.name}"`, { signal });
        if (signal.aborted) throw signal.reason;
        const passed = succeeded(outcome);
        const lastLine = outcome.stderrTail.split('\n').slice(-3).join(' | ');
        results.push({
          name: check.name,
          passed,
          detail: `\`${describeArgv(spec.argv)}\` ${describeOutcome(outcome, spec.timeoutSeconds)}${!passed && lastLine ? `: ${lastLine}` : ''}`,
          durationMs: Date.now() - started,
          expected: checkExpectation,
          actual: `${describeOutcome(outcome, spec.timeoutSeconds)}${!passed && lastLine ? `: ${lastLine}` : ''}`,
        });
      } catch (error) {
        if (signal.aborted) throw error;
        results.push({ name: check.name, passed: false, detail: (error as Error).message, durationMs: Date.now() - started, expected: checkExpectation, actual: (error as Error).message });
      }
    }
    return results;
  } finally {
    progress.stop();
  }
}
