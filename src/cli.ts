import type { Client, WorkflowHandle } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { StepRecord } from './repository/manifest.js';
// The Temporal client loads lazily: wal-push and wal-fetch run for every WAL segment and must start fast.
import type { RunbookKind, RunbookTypes, TemporalSettings } from './client.js';
import { configPathFrom, loadConfig, targetNamed } from './config/load.js';
import type { Config, TargetConfig } from './config/schema.js';
import { commandOf } from '../bin/command-of.js';
import { copyDescription, copyInput, copyLines } from './copy-command.js';
import { exitCodeFor, LifeboatError, UsageError } from './errors.js';
import type { RestoreCommandOptions, RestorePlan } from './kinds/contract.js';
import { backupMethods, sourceBytesOf, targetKindOf, targetKindOfBackup, typesWithMethods } from './kinds/index.js';
import { archiveCommandExitCodes, restoreCommandExitCodes } from './postgres/archive-exit-codes.js';
import { openBackend } from './repository/open.js';
import { storedBytesOf } from './repository/manifest-envelope.js';
import { Repository } from './repository/repository.js';
import { formatBytes } from './state/render.js';

/**
 * The `lifeboat` command. Human text goes to stderr; --json prints one JSON document (the workflow
 * result) on stdout. Exit codes: 0 success, 1 the runbook failed, 2 bad input.
 */

interface GlobalOptions {
  config?: string;
}

const say = (line: string) => process.stderr.write(`${line}\n`);


/** "Type: message" for typed failures, the message alone otherwise (what PostgreSQL logs for WAL commands). */
function describeFailure(error: unknown): string {
  return `${error instanceof LifeboatError ? `${error.type}: ` : ''}${error instanceof Error ? error.message : String(error)}`;
}

/** Loads and validates the config; a missing default file is fine for commands that only talk to Temporal. */
function readConfig(flag: string | undefined, required: boolean): { config?: Config; path: string } {
  const path = configPathFrom(flag);
  const explicit = flag !== undefined || process.env.LIFEBOAT_CONFIG !== undefined;
  if (!required && !explicit && !existsSync(path)) return { path };
  return { config: loadConfig(path), path };
}

function temporalSettings(config: Config | undefined): TemporalSettings {
  return {
    address: process.env.TEMPORAL_ADDRESS ?? config?.temporal.address ?? 'localhost:7233',
    namespace: process.env.TEMPORAL_NAMESPACE ?? config?.temporal.namespace ?? 'default',
    taskQueue: process.env.LIFEBOAT_TASK_QUEUE ?? config?.temporal.taskQueue ?? 'lifeboat',
  };
}

function assertTarget(config: Config | undefined, target: string, path: string): void {
  if (config) targetNamed(config.targets, target, path);
}

/** The first line a finished restore prints: its kind's, by what was restored. */
function restoredLine(r: RunbookTypes['restore']['result']): string {
  const line = targetKindOfBackup(r.backupKind)?.cli.restored(r);
  return line ?? `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}${r.safetyCopy ? `; what was there is kept as ${r.safetyCopy}` : ''}`;
}

function formatStep(step: StepRecord): string {
  const seconds = step.durationMs !== undefined ? ` ${(step.durationMs / 1000).toFixed(1)}s` : '';
  const attempts = step.attempts && step.attempts > 1 ? ` (attempt ${step.attempts})` : '';
  return `  ${step.status.padEnd(9)} ${step.name}${seconds}${attempts}${step.detail ? `  ${step.detail}` : ''}`;
}

/** A retention plan as the operator reads it: per repository, every backup with keep or remove and why. */
function planLines(plan: RunbookTypes['retention']['result']['plan']): string[] {
  const lines = [`retention plan for ${plan.target} (${plan.plannedAt}):`];
  for (const repository of plan.repositories) {
    lines.push(`  repository ${repository.repository}: ${repository.description}`);
    for (const backup of repository.backups) {
      lines.push(`    ${backup.action === 'remove' ? 'REMOVE' : 'keep  '} ${backup.id}  ${backup.time}  ${backup.group.padEnd(13)}  ${backup.reasons.join(', ')}`);
    }
    if (repository.backups.length === 0) lines.push('    (no complete backups)');
    for (const unreadable of repository.unreadable) lines.push(`    left   ${unreadable.id}  manifest unreadable: ${unreadable.problem}`);
    for (const dead of repository.deadUploads) lines.push(`    ${dead.action === 'remove' ? 'REMOVE' : 'keep  '} ${dead.id}  ${dead.reason}`);
    for (const id of repository.pendingDeletions) lines.push(`    finish ${id}  removal begun by an earlier run (manifest already gone)`);
    if (repository.wal) {
      const window = (w: NonNullable<typeof repository.wal>['before']) => (w ? `${w.earliest.time} (${w.earliest.backupId}) to ${w.latest.lsn}` : 'none');
      lines.push(
        `    WAL: remove ${repository.wal.remove} of ${repository.wal.archived} archived files${repository.wal.cutoff ? ` (before ${repository.wal.cutoff.segment}, the start of ${repository.wal.cutoff.backupId})` : ''}; ` +
          `recoverable window now ${window(repository.wal.before)}, after ${window(repository.wal.after)}`,
      );
    }
    if (repository.shared) {
      const { objects, bytes, unreferenced, freed } = repository.shared;
      lines.push(
        `    shared objects: ${objects} (${formatBytes(bytes)}); the sweep after the removals frees ${freed.count} (${formatBytes(freed.bytes)})` +
          (unreferenced.count ? `, of which ${unreferenced.count} already unreferenced` : ''),
      );
    }
  }
  return lines;
}

/** The running step, with the byte progress of its last heartbeat (activities/progress.ts). */
function progressLine(steps: StepRecord[], heartbeat: Uint8Array | null | undefined): string {
  const running = steps.filter((s) => s.status === 'running').at(-1);
  if (!running) return 'between steps';
  if (!heartbeat) return running.name;
  const details = JSON.parse(Buffer.from(heartbeat).toString()) as { phase?: string; bytesDone?: number; bytesTotal?: number };
  if (!details.bytesTotal) return running.name;
  return `${running.name} ${details.phase ?? ''} ${((100 * (details.bytesDone ?? 0)) / details.bytesTotal).toFixed(0)}% of ${(details.bytesTotal / 2 ** 20).toFixed(0)} MiB`;
}

/** On a terminal: one line, rewritten every second, with the running step and its byte progress. */
async function showProgress(client: Client, handle: WorkflowHandle, done: Promise<unknown>): Promise<void> {
  if (!process.stderr.isTTY) return;
  const { timelineQuery } = await import('../workflows/queries.js');
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  while (!finished) {
    try {
      // Only a worker answers the query: without one it fails, or outlasts the 2 s it gets here.
      const noAnswer = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000).unref());
      const [steps, description] = await Promise.all([
        Promise.race([handle.query(timelineQuery).catch(() => undefined), noAnswer]),
        client.workflowService.describeWorkflowExecution({ namespace: client.options.namespace, execution: { workflowId: handle.workflowId } }),
      ]);
      const line = steps ? progressLine(steps, description.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0]?.data) : 'waiting for a worker (is one running on this task queue?)';
      process.stderr.write(`\r\x1b[K${line}`);
    } catch {
      // The server may be briefly unreachable; keep waiting quietly.
    }
    await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
  process.stderr.write('\r\x1b[K');
}

async function run<K extends RunbookKind>(
  kind: K,
  input: RunbookTypes[K]['input'],
  options: { wait?: boolean; json?: boolean },
  global: GlobalOptions,
  render: (result: RunbookTypes[K]['result']) => { lines: string[]; failed: boolean },
  /** Runs beside the wait for the result (e.g. shows a plan and answers an approval). */
  during?: (client: Client, handle: WorkflowHandle) => Promise<void>,
): Promise<number> {
  const { config, path } = readConfig(global.config, false);
  assertTarget(config, input.target, path);
  const settings = temporalSettings(config);
  const { connectClient, innermostMessage, runbookFailure, startRunbook } = await import('./client.js');
  const { WorkflowFailedError } = await import('@temporalio/client');
  const client = await connectClient(settings);
  try {
    const handle = await startRunbook(client, settings, kind, input).catch((error: unknown) => {
      if (error instanceof LifeboatError) throw error;
      throw new LifeboatError(
        'TemporalUnavailable',
        `the Temporal server at ${settings.address} did not start the ${kind} (namespace ${settings.namespace}): ${innermostMessage(error)}`,
        'Check TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE; nothing was started',
        { cause: error },
      );
    });
    say(`started ${kind} ${handle.workflowId} (run ${handle.firstExecutionRunId}) on task queue "${settings.taskQueue}" at ${settings.address}`);
    if (!options.wait) {
      if (options.json) process.stdout.write(`${JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId })}\n`);
      return 0;
    }
    const result = handle.result() as Promise<RunbookTypes[K]['result']>;
    if (during) await during(client, handle);
    else await showProgress(client, handle, result);
    try {
      const value = await result;
      const { lines, failed } = render(value);
      for (const line of lines) say(line);
      if (options.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      return failed ? 1 : 0;
    } catch (error) {
      // Only the run's own failure is a failure: a lost connection says nothing about the run.
      if (!(error instanceof WorkflowFailedError)) {
        throw new LifeboatError(
          'TemporalUnavailable',
          `lost contact with the Temporal server at ${settings.address} while waiting for ${kind} ${handle.workflowId}: ${innermostMessage(error)}`,
          `The run goes on without this command: follow it in the Temporal UI or with \`temporal workflow show --workflow-id ${handle.workflowId}\``,
          { cause: error },
        );
      }
      const failure = runbookFailure(error);
      say(`${kind} ${handle.workflowId} failed${failure.type ? ` (${failure.type})` : ''}: ${failure.message}`);
      if (options.json) process.stdout.write(`${JSON.stringify({ workflowId: handle.workflowId, failed: true, type: failure.type ?? null, message: failure.message })}\n`);
      return exitCodeFor(failure.type);
    }
  } finally {
    await client.connection.close();
  }
}

async function confirmReplace(target: string, what: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await prompt.question(`Replace ${what} of "${target}"? The current one is kept as a safety copy. Type "yes": `);
  prompt.close();
  return answer.trim() === 'yes';
}

/**
 * How `lifeboat restore` runs: as the target's kind says (src/kinds/<kind>/index.ts, cli.restore).
 * Without a config here, the worker's config decides on the way; the restore may then replace live
 * data, so it is confirmed as such.
 */
function restorePlan(target: string, configured: TargetConfig | undefined, options: RestoreCommandOptions): RestorePlan {
  const kind = configured ? targetKindOf(configured.type) : undefined;
  if (!configured || !kind) {
    return {
      input: { ...(options.method ? { method: options.method } : {}), ...(options.into ? { into: options.into } : {}), ...(options.path?.length ? { paths: options.path } : {}) },
      ...(options.into ? {} : { replaces: 'the live data (as the worker\'s config says)' }),
    };
  }
  if (options.method && kind.methods.length === 0) throw new UsageError(`--method is for ${typesWithMethods().join(' and ')} targets; "${target}" is a ${configured.type} target`);
  if (options.method && !kind.methods.includes(options.method)) throw new UsageError(`--method ${options.method}: a ${configured.type} target's methods are ${kind.methods.join(', ')}`);
  return kind.cli.restore(options, { name: target, config: configured });
}

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('lifeboat')
    .description('Backup, restore and DR-drill runbooks as durable Temporal workflows')
    .option('--config <file>', 'config file (default: $LIFEBOAT_CONFIG, else ./lifeboat.config.yaml)')
    .showHelpAfterError()
    .exitOverride();
  const global = () => program.opts<GlobalOptions>();
  const waitOption = new Option('--wait', 'wait for the runbook to finish and print its timeline');
  const jsonOption = new Option('--json', 'print the workflow result as one JSON document on stdout');

  program
    .command('dev')
    .description('embedded stack: Temporal dev server (+UI), S3 server, worker, demo database and config')
    .option('--no-demo', 'do not create the demo target or run the first backup')
    .action(async (options: { demo: boolean }) => {
      const { runDevStack } = await import('./dev/stack.js');
      await runDevStack({ demo: options.demo });
    });

  program
    .command('worker')
    .description('run a worker against TEMPORAL_ADDRESS')
    .option('--apply-schedules', 'first make the server\'s schedules match the config (as `lifeboat schedules apply`); a failure is reported and the worker runs all the same')
    .action(async (options: { applySchedules?: boolean }) => {
      const { config, path } = readConfig(global().config, true);
      const settings = temporalSettings(config);
      const { createWorker } = await import('./worker.js');
      const worker = await createWorker({
        temporalAddress: settings.address,
        namespace: settings.namespace,
        taskQueue: settings.taskQueue,
        configPath: path,
        ...(config?.worker.metricsListen ? { metricsListen: config.worker.metricsListen } : {}),
        limits: config!.worker,
      });
      if (options.applySchedules) {
        try {
          await withClient(settings, (client) => applyAndReport(client, settings, config!, { dryRun: false, json: false }));
        } catch (error) {
          say(`lifeboat worker: the schedules were not applied: ${describeFailure(error)}`);
        }
      }
      say(`worker polling task queue "${settings.taskQueue}" at ${settings.address} (config ${path}); Ctrl-C stops it`);
      await worker.run();
    });

  program
    .command('serve')
    .description('long-running HTTP process for monitoring: /metrics (Prometheus), /status (JSON), refreshed from the repositories and the Temporal server in the background')
    .option('--listen <host:port>', 'address to listen on (default: serve.listen in the config, 127.0.0.1:9464)')
    .action(async (options: { listen?: string }) => {
      const { config } = readConfig(global().config, true);
      const settings = temporalSettings(config);
      const { parseConfig } = await import('./config/load.js');
      // --listen is checked like serve.listen in the config.
      if (options.listen !== undefined) parseConfig({ repositories: {}, targets: {}, serve: { listen: options.listen } }, '--listen');
      const { startServe } = await import('./serve/server.js');
      const serve = await startServe({ config: config!, settings, ...(options.listen ? { listen: options.listen } : {}) });
      say(`lifeboat serve: ${serve.url}/metrics and ${serve.url}/status, refreshed every ${config!.serve.refreshSeconds} s from ${Object.keys(config!.targets).length} target(s) and the Temporal server at ${settings.address}; Ctrl-C stops it`);
      await new Promise<void>((resolve) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
      });
      await serve.close();
    });

  program
    .command('backup <target>')
    .description('back up a target to every repository it names')
    .addOption(new Option('--method <method>', 'PostgreSQL: "dump" (pg_dump) or "base" (pg_basebackup) for this run; default: the target\'s method').choices(backupMethods()))
    .option('--rehash', 'blobs: read every file, instead of only those whose size, mtime or inode changed since the previous backup')
    .addOption(waitOption)
    .addOption(jsonOption)
    .action(async (target: string, options: { method?: string; rehash?: boolean; wait?: boolean; json?: boolean }) => {
      setExitCode(
        await run('backup', { target, ...(options.method ? { method: options.method } : {}), ...(options.rehash ? { rehash: true } : {}) }, options, global(), (r) => ({
          failed: false,
          lines: [`backup ${r.backupId} of ${r.target}: snapshot ${r.snapshotAt}, ${r.sourceBytes} bytes -> ${r.storedBytes} stored in ${r.repositories.join(', ')}`, ...r.timeline.map(formatStep)],
        })),
      );
    });

  program
    .command('restore <target>')
    .description(
      'restore the newest (or a given) backup. SQLite: replaces the live database after verification (or --into <path>). ' +
        'PostgreSQL dump: restores into a new database (or --into <database>; replacing an existing one needs --yes or `lifeboat approve`). ' +
        'PostgreSQL base: lays the base backup out as a new data directory (--into <dir>), verified by pg_verifybackup. ' +
        'files, secrets: replaces each live root by the verified tree, keeping it as a safety copy (or --into <new dir>); files: --path restores part of it',
    )
    .option('--backup <id>', 'backup id (default: the newest complete backup)')
    .option('--into <path|database|dir>', 'SQLite: restore to this new path; the live database is not touched. PostgreSQL: the database to restore into, or (base) the new data directory. files, secrets: a new directory (one subdirectory per root)')
    .option('--path <glob>', 'files: restore only the entries this glob names (e.g. "myapp/conf/**"; repeat for more), downloading only the parts that hold them', (glob: string, globs: string[] = []) => [...globs, glob])
    .addOption(new Option('--method <method>', 'PostgreSQL: restore a pg_dump backup ("dump") or a base backup ("base"); default: the target\'s backup method').choices(backupMethods()))
    .option('--yes', 'SQLite, files, secrets: replace what is live without asking. PostgreSQL dump: replace the --into database if it exists')
    .addOption(waitOption)
    .addOption(jsonOption)
    .action(async (target: string, options: { backup?: string; into?: string; method?: string; yes?: boolean; path?: string[]; wait?: boolean; json?: boolean }) => {
      const { config, path } = readConfig(global().config, false);
      assertTarget(config, target, path);
      const plan = restorePlan(target, config?.targets[target], options);
      if (options.path && options.path.length > 0 && plan.input.paths === undefined) throw new UsageError(`--path: target "${target}" is restored whole`);
      if (plan.replaces && !options.yes && !(await confirmReplace(target, plan.replaces))) {
        throw new UsageError(`restore would replace ${plan.replaces}: pass --yes to confirm, or --into <path> to restore beside it`);
      }
      const input = { target, ...(options.backup ? { backupId: options.backup } : {}), ...plan.input };
      for (const note of plan.notes ?? []) say(note);
      setExitCode(
        await run('restore', input, options, global(), (r) => ({
          failed: false,
          lines: [restoredLine(r), ...r.timeline.map(formatStep)],
        })),
      );
    });

  program
    .command('approve <workflowId>')
    .description('answer a runbook waiting for approval (e.g. a PostgreSQL restore that would replace an existing database)')
    .option('--reject', 'refuse instead: the runbook drops what it restored and ends without replacing anything')
    .option('--by <name>', 'who decides, for the runbook\'s timeline, audit record and report (default: <OS user>@<host>)')
    .action(async (workflowId: string, options: { reject?: boolean; by?: string }) => {
      const { config } = readConfig(global().config, false);
      const settings = temporalSettings(config);
      const { connectClient } = await import('./client.js');
      const { approveUpdate } = await import('../workflows/approval.js');
      const client = await connectClient(settings);
      try {
        // Who gave it goes into the run's audit record and report: the operator at this terminal unless --by says otherwise.
        const { cliRequester } = await import('./requested-by.js');
        const me = cliRequester();
        const answer = { approve: !options.reject, by: options.by ?? (me.via === 'cli' ? `${me.user}@${me.host}` : 'cli') };
        const result = await client.workflow.getHandle(workflowId).executeUpdate(approveUpdate, { args: [answer] });
        say(`${workflowId}: ${result.decision}`);
      } catch (error) {
        throw new UsageError(`could not answer ${workflowId}: ${(error as Error).message}`);
      } finally {
        await client.connection.close();
      }
    });

  program
    .command('drill <target>')
    .description('restore the newest backup into a scratch copy, run smoke checks, measure RTO and RPO')
    .addOption(waitOption)
    .addOption(jsonOption)
    .action(async (target: string, options: { wait?: boolean; json?: boolean }) => {
      setExitCode(
        await run('drill', { target }, options, global(), (r) => ({
          failed: !r.passed,
          lines: [
            `drill of ${r.target}: ${r.passed ? 'PASSED' : 'FAILED'}${r.failure ? ` (${r.failure.type ?? 'error'}: ${r.failure.message})` : ''}`,
            `  backup ${r.backupId ?? '-'} snapshot ${r.snapshotAt ?? '-'}`,
            r.rto ? `  RTO ${r.rto.seconds.toFixed(1)}s${r.rto.targetSeconds !== null ? ` (target ${r.rto.targetSeconds}s: ${r.rto.met ? 'met' : 'MISSED'})` : ''}` : '  RTO not measured',
            r.rpo ? `  RPO ${r.rpo.seconds.toFixed(1)}s${r.rpo.targetSeconds !== null ? ` (target ${r.rpo.targetSeconds}s: ${r.rpo.met ? 'met' : 'MISSED'})` : ''}` : '  RPO not measured',
            ...r.checks.map((c) => `  check ${c.passed ? 'pass' : 'FAIL'} ${c.name}: ${c.detail}`),
            ...r.timeline.map(formatStep),
            ...(r.reportKeys.length ? [`  report: ${r.reportKeys.join(', ')} (and its HTML page beside each: \`lifeboat report ${r.workflowId}\` renders it too)`] : []),
          ],
        })),
      );
    });

  program
    .command('pitr <target>')
    .description(
      'point-in-time recovery of a postgres target into a NEW cluster (new data directory, free port): the newest base backup before ' +
        'the target, plus archived WAL replayed to it; the live cluster is not touched',
    )
    .option('--time <timestamp>', 'recover every transaction committed at or before this time, e.g. 2026-11-21T14:05:00Z (with a UTC offset)')
    .option('--lsn <lsn>', 'recover up to this WAL position, e.g. 0/3000028')
    .option('--name <restorePoint>', 'recover up to a restore point made with pg_create_restore_point')
    .option('--xid <xid>', 'recover up to and including this transaction')
    .option('--latest', 'recover every archived WAL file (the default)')
    .option('--exclusive', 'with --time, --lsn or --xid: stop just before the target instead of just after it')
    .option('--backup <id>', 'start from this base backup (it must have finished before the target)')
    .option('--cutover', 'then replace the live cluster (recovery.cutover.dataDir) by the recovered one, after `lifeboat approve <workflowId>`; the live data directory is kept as a safety copy')
    .addOption(waitOption)
    .addOption(jsonOption)
    .action(async (target: string, options: { time?: string; lsn?: string; name?: string; xid?: string; latest?: boolean; exclusive?: boolean; backup?: string; cutover?: boolean; wait?: boolean; json?: boolean }) => {
      const { parseRecoveryTarget } = await import('./postgres/recovery-target.js');
      const given = (['time', 'lsn', 'name', 'xid', 'latest'] as const).filter((kind) => options[kind] !== undefined);
      if (given.length > 1) throw new UsageError(`give one recovery target, not ${given.map((kind) => `--${kind}`).join(' and ')}`);
      const kind = given[0] ?? 'latest';
      if (options.exclusive && !['time', 'lsn', 'xid'].includes(kind)) throw new UsageError('--exclusive goes with --time, --lsn or --xid');
      const inclusive = options.exclusive ? { inclusive: false } : {};
      const candidate =
        kind === 'time' ? { kind, time: options.time, ...inclusive }
        : kind === 'lsn' ? { kind, lsn: options.lsn, ...inclusive }
        : kind === 'xid' ? { kind, xid: options.xid, ...inclusive }
        : kind === 'name' ? { kind, name: options.name }
        : { kind };
      let recoveryTarget;
      try {
        recoveryTarget = parseRecoveryTarget(candidate);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const input = { target, recoveryTarget, ...(options.backup ? { backupId: options.backup } : {}), ...(options.cutover ? { cutover: true } : {}) };
      if (options.cutover) say('the cutover waits for an approval before it replaces the live cluster: `lifeboat approve <workflow id>` (or --reject)');
      setExitCode(
        await run('pitr', input, options, global(), (r) => ({
          failed: false,
          lines: [
            `recovered ${r.target} to ${r.recoveryTarget} from base backup ${r.backupId}: reached ${r.reached.lsn}` +
              `${r.reached.lastTransactionTime ? ` (last commit ${r.reached.lastTransactionTime})` : ''}, timeline ${r.walTimeline}`,
            `  the recovered cluster runs from ${r.cluster.dataDir} on 127.0.0.1:${r.cluster.port} (socket ${r.cluster.socketDir}, user ${r.cluster.user})`,
            ...r.checks.map((c) => `  check ${c.passed ? 'pass' : 'FAIL'} ${c.name}: ${c.detail}`),
            ...(r.cutover ? [`  cut over: the recovered cluster is now live in ${r.cutover.liveDataDir}; the previous one is kept in ${r.cutover.safetyCopy}`] : []),
            ...r.timeline.map(formatStep),
          ],
        })),
      );
    });

  program
    .command('forget <target>')
    .description(
      'apply the target\'s retention policy (targets.<name>.retention): plan every backup with keep or remove and every reason, show it, ' +
        'ask, then remove (manifest first, objects once no run uses them; WAL before the oldest kept base backup; dead uploads). ' +
        'Schedules run the retention runbook without asking',
    )
    .option('--dry-run', 'show the plan and remove nothing')
    .option('--yes', 'remove what the plan says without asking (for scripts)')
    .addOption(jsonOption)
    .action(async (target: string, options: { dryRun?: boolean; yes?: boolean; json?: boolean }) => {
      if (options.dryRun && options.yes) throw new UsageError('give --dry-run or --yes, not both');
      const ask = !options.dryRun && !options.yes;
      if (ask && !process.stdin.isTTY) {
        throw new UsageError('forget removes backups: pass --yes to remove what the plan says, or --dry-run to only see the plan (without either it asks on a terminal)');
      }
      const { config, path } = readConfig(global().config, false);
      if (config) {
        const configured = targetNamed(config.targets, target, path);
        if (!configured.retention) {
          throw new LifeboatError('InvalidConfig', `target "${target}" has no retention policy in ${path}`, `Add retention: (e.g. keepDaily: 7, keepWeekly: 4) under targets.${target}`);
        }
      }
      const { retentionPlanQuery } = await import('../workflows/retention-plan.js');
      const { approveUpdate } = await import('../workflows/approval.js');
      let shown = false;
      const askForApproval = async (_client: Client, handle: WorkflowHandle): Promise<void> => {
        for (;;) {
          const description = await handle.describe();
          if (description.status.name !== 'RUNNING') return;
          const plan = await handle.query(retentionPlanQuery).catch(() => undefined);
          if (plan) {
            for (const line of planLines(plan)) say(line);
            shown = true;
            const removing = plan.repositories.reduce((n, r) => n + r.backups.filter((b) => b.action === 'remove').length, 0);
            const other = plan.repositories.reduce((n, r) => n + r.deadUploads.filter((d) => d.action === 'remove').length + r.pendingDeletions.length + (r.wal?.remove ?? 0) + (r.shared?.unreferenced.count ?? 0), 0);
            if (removing + other === 0) return;
            const prompt = createInterface({ input: process.stdin, output: process.stderr });
            const answer = await prompt.question(`Remove ${removing} backups${other ? ` and ${other} other objects (WAL, dead uploads, unreferenced shared objects)` : ''} of "${target}" as planned above? Type "yes": `);
            prompt.close();
            const approve = answer.trim() === 'yes';
            await handle.executeUpdate(approveUpdate, { args: [{ approve, by: `${process.env.USER ?? 'operator'} (lifeboat forget)` }] });
            if (!approve) say('rejected: nothing is removed');
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
      };
      setExitCode(
        await run('retention', { target, ...(options.dryRun ? { dryRun: true } : {}), ...(ask ? { approval: true } : {}) }, { wait: true, ...(options.json ? { json: true } : {}) }, global(), (r) => ({
          failed: false,
          lines: [
            ...(shown ? [] : planLines(r.plan)),
            r.decision === 'dry-run' ? 'dry run: nothing was removed' : r.decision === 'nothing-to-remove' ? 'the plan removes nothing' : `removed as planned:`,
            ...r.outcome.map(
              (o) =>
                `  ${o.repository}: ${o.removed.length} backups removed` +
                (o.deferred.length ? `; ${o.deferred.length} wait for the runs using them (${o.deferred.map((d) => `${d.id}: ${d.holders.join(', ')}`).join('; ')})` : '') +
                (o.keptAfterAll.length ? `; ${o.keptAfterAll.length} kept after all (${o.keptAfterAll.map((k) => `${k.id}: ${k.reasons.join(', ')}`).join('; ')})` : '') +
                (o.deadUploadsRemoved.length ? `; ${o.deadUploadsRemoved.length} dead uploads removed` : '') +
                (o.wal ? `; ${o.wal.removed} WAL files removed` : '') +
                (o.shared ? (o.shared.deferred ? `; shared objects not swept: ${o.shared.deferred}` : `; ${o.shared.removed} shared objects removed (${formatBytes(o.shared.removedBytes)})`) : ''),
            ),
            ...r.timeline.map(formatStep),
            ...(r.reportKeys.length ? [`  report: ${r.reportKeys.join(', ')}`] : []),
          ],
        }), ask ? askForApproval : undefined),
      );
    });

  program
    .command('verify <target>')
    .description(
      'check what every repository of a target stores: every manifest parses, every object it lists exists with its size; with ' +
        '--read-data every object is read back and its sha256 recomputed. PostgreSQL: WAL continuity per timeline, each base backup\'s ' +
        'WAL, and the recoverable window. Stores a JSON report in every repository; exit 1 when anything is damaged or missing',
    )
    .option('--read-data', 'read back every object and recompute its sha256')
    .option('--read-data-subset <n/t|x%>', 'read back a rotating subset: "1/7" reads a seventh per run (all of it every 7 runs, a cursor in the repository says which), "10%" a tenth')
    .option('--limit-read <MiB/s>', 'read stored data no faster than this (spares a shared disk or a metered link)')
    .option('--withdraw-damaged', 'withdraw the manifest of a damaged copy that has a valid copy in another repository (for `lifeboat copy` to repair); the only copy is never withdrawn')
    .addOption(waitOption)
    .addOption(jsonOption)
    .action(async (target: string, options: { readData?: boolean; readDataSubset?: string; limitRead?: string; withdrawDamaged?: boolean; wait?: boolean; json?: boolean }) => {
      if (options.readData && options.readDataSubset) throw new UsageError('give --read-data or --read-data-subset, not both');
      const limit = options.limitRead === undefined ? undefined : Number(options.limitRead);
      if (limit !== undefined && !(limit > 0)) throw new UsageError(`--limit-read must be a number of MiB per second above 0, got ${options.limitRead}`);
      const { parseReadData } = await import('./verify/subset.js');
      const readData = options.readData ? 'full' : options.readDataSubset;
      if (readData !== undefined) parseReadData(readData);
      const input = {
        target,
        ...(readData !== undefined ? { readData } : {}),
        ...(limit !== undefined ? { readLimitMiBPerSecond: limit } : {}),
        ...(options.withdrawDamaged ? { withdrawDamaged: true } : {}),
      };
      setExitCode(
        await run('verify', input, options, global(), (r) => ({
          failed: !r.valid,
          lines: [
            `verify of ${r.target}: ${r.valid ? 'VALID' : 'INVALID'} (read data: ${r.readData})`,
            ...r.repositories.flatMap((repository) => [
              `  repository ${repository.repository}: ${repository.valid ? 'valid' : 'INVALID'}, ${repository.backups.filter((b) => b.valid).length}/${repository.backups.length} backups valid, ` +
                `${repository.objectsRead} objects read back (${repository.bytesRead} bytes)`,
              ...repository.backups.filter((b) => !b.valid).map((b) => `    backup ${b.backupId} INVALID: ${b.problems.join('; ')}`),
              ...(repository.wal
                ? [
                    `    WAL: ${repository.wal.files} files; ` +
                      (repository.wal.window
                        ? `recoverable from ${repository.wal.window.earliest.time} (base backup ${repository.wal.window.earliest.backupId}) to ${repository.wal.window.latest.lsn} (${repository.wal.window.latest.segment})`
                        : 'no recoverable window'),
                    ...repository.wal.problems.map((problem) => `    WAL problem: ${problem}`),
                  ]
                : []),
            ]),
            ...r.withdrawn.map((w) => `  withdrawn: backup ${w.backupId} from ${w.repository}`),
            ...r.notWithdrawn.map((w) => `  not withdrawn: backup ${w.backupId} in ${w.repository}: ${w.why}`),
            ...r.timeline.map(formatStep),
            ...(r.reportKeys.length ? [`  report: ${r.reportKeys.join(', ')}`] : []),
          ],
        })),
      );
    });

  program
    .command('copy <target>')
    .description(copyDescription)
    .requiredOption('--to <repository>', 'the repository to bring up to date')
    .option('--from <repository>', 'copy only from this repository (default: the others, each backup from the first, in the target\'s order, that holds it intact)')
    .addOption(waitOption)
    .addOption(jsonOption)
    .action(async (target: string, options: { to: string; from?: string; wait?: boolean; json?: boolean }) => {
      const { config } = readConfig(global().config, false);
      setExitCode(await run('copy', copyInput(config, target, options), options, global(), (r) => {
        const shown = copyLines(r);
        return { failed: shown.failed, lines: [...shown.lines, ...r.timeline.map(formatStep)] };
      }));
    });

  program
    .command('wal-push <path>')
    .description('archive_command: store one WAL file (%p) in the target\'s repositories, compressed and hashed')
    .option('--target <name>', 'postgres target (default: $LIFEBOAT_TARGET)')
    .action(async (path: string, options: { target?: string }) => {
      try {
        const { walPush, walTargetFrom } = await import('./postgres/wal-archive.js');
        await walPush({ configPath: configPathFrom(global().config), target: walTargetFrom(options.target), path });
        setExitCode(archiveCommandExitCodes.archived);
      } catch (error) {
        say(`lifeboat wal-push: ${describeFailure(error)}`);
        setExitCode(archiveCommandExitCodes.failed);
      }
    });

  program
    .command('wal-fetch <name> <destination>')
    .description('restore_command: fetch WAL file %f to %p, verified; exit 1 when the archive does not have it')
    .option('--target <name>', 'postgres target (default: $LIFEBOAT_TARGET)')
    .option('--prefetch <spool>', 'keep a prefetcher fetching the following segments into this directory (it must exist; bin/lifeboat-wal-fetch moves them into place)')
    .action(async (name: string, destination: string, options: { target?: string; prefetch?: string }) => {
      try {
        const { walFetch, walTargetFrom } = await import('./postgres/wal-archive.js');
        const configPath = configPathFrom(global().config);
        const target = walTargetFrom(options.target);
        if (options.prefetch !== undefined) {
          // Started first, so that its start overlaps this fetch: the next call should find its segment fetched.
          const { startPrefetcher } = await import('./postgres/wal-prefetch.js');
          await startPrefetcher({ configPath, target, spool: options.prefetch, after: name }).catch((error: unknown) => say(`lifeboat wal-fetch: warning: no prefetch: ${describeFailure(error)}`));
        }
        const outcome = await walFetch({ configPath, target, name, destination });
        setExitCode(restoreCommandExitCodes[outcome]);
      } catch (error) {
        // Not "missing": PostgreSQL must stop recovery rather than open a database without this WAL.
        say(`lifeboat wal-fetch: ${describeFailure(error)}`);
        setExitCode(restoreCommandExitCodes.failed);
      }
    });

  program
    .command('wal-prefetch')
    .description('the prefetcher `wal-fetch --prefetch` starts by itself (not run by hand): fetches the segments after the one PostgreSQL asked for into the recovery\'s spool, verified')
    .requiredOption('--spool <dir>', 'the recovery\'s prefetch spool')
    .option('--target <name>', 'postgres target (default: $LIFEBOAT_TARGET)')
    .action(async (options: { spool: string; target?: string }) => {
      const [{ walPrefetchCommand }, { walTargetFrom }] = await Promise.all([import('./postgres/wal-prefetch.js'), import('./postgres/wal-archive.js')]);
      await walPrefetchCommand({ configPath: configPathFrom(global().config), target: walTargetFrom(options.target), spool: options.spool });
    });

  program
    .command('archiver')
    .description('archive.mode "async": push the WAL files PostgreSQL marks ready, ahead of archive_command, and mark them done in the spool (runs until SIGTERM; on the database host, as the server\'s OS user)')
    .option('--target <name>', 'postgres target (default: $LIFEBOAT_TARGET)')
    .option('--data-dir <dir>', 'the cluster\'s data directory (default: $PGDATA)')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://<host:port>/metrics')
    .action(async (options: { target?: string; dataDir?: string; metricsListen?: string }) => {
      const [{ archiverCommand }, { walTargetFrom }] = await Promise.all([import('./postgres/archiver-command.js'), import('./postgres/wal-archive.js')]);
      await archiverCommand({
        configPath: configPathFrom(global().config),
        target: walTargetFrom(options.target),
        dataDir: options.dataDir,
        ...(options.metricsListen ? { metricsListen: options.metricsListen } : {}),
      });
    });

  program
    .command('archive-status <target>')
    .description('WAL archive health from pg_stat_archiver: last archived segment, failures, lag; exit 1 when archiving fails or lags')
    .option('--max-lag-segments <n>', 'completed segments not archived yet that still count as healthy', '2')
    .addOption(jsonOption)
    .action(async (target: string, options: { json?: boolean; maxLagSegments: string }) => {
      const { config, path } = readConfig(global().config, true);
      const { postgresTargetNamed } = await import('./kinds/postgres/commands.js');
      const targetConfig = postgresTargetNamed(config!, target, path, 'archive-status');
      const maxLag = Number(options.maxLagSegments);
      if (!Number.isInteger(maxLag) || maxLag < 0) throw new LifeboatError('InvalidInput', `--max-lag-segments must be a whole number >= 0, got ${options.maxLagSegments}`);
      const [{ connectTo }, { archiveStatus }] = await Promise.all([import('./postgres/dump-connection.js'), import('./postgres/wal-archive.js')]);
      const client = await connectTo(targetConfig.connection, process.env);
      let status;
      try {
        status = await archiveStatus(client);
      } finally {
        await client.end().catch(() => undefined);
      }
      const problems = [
        ...(status.failing ? [`archive_command is failing (last failure ${status.lastFailedWal ?? '?'} at ${status.lastFailedAt ?? '?'}; see the server log)`] : []),
        ...(status.lag && status.lag.segments > maxLag ? [`${status.lag.segments} completed segments are not archived yet (more than ${maxLag})`] : []),
        ...(status.archivedCount === 0 && !status.inRecovery ? ['nothing has been archived since the statistics were reset: is archive_mode on and archive_command set?'] : []),
      ];
      if (options.json) process.stdout.write(`${JSON.stringify({ target, healthy: problems.length === 0, problems, ...status })}\n`);
      say(
        `${target}: last archived ${status.lastArchivedWal ?? 'nothing'}${status.lastArchivedAt ? ` at ${status.lastArchivedAt}` : ''}; ` +
          `${status.archivedCount} archived, ${status.failedCount} failed attempts; ` +
          (status.lag ? `lag ${status.lag.segments} segments (${status.lag.bytes} bytes of WAL not in the archive)` : 'lag unknown'),
      );
      for (const problem of problems) say(`  problem: ${problem}`);
      setExitCode(problems.length === 0 ? 0 : 1);
    });

  program
    .command('status [target]')
    .description(
      'the state of every target (or one): per repository the newest backup and its age against the RPO objective, the newest verified ' +
        'backup, the last verify and drill, the WAL archive and PITR window (PostgreSQL), and the schedules; exit 1 when anything is outside its objective',
    )
    .addOption(new Option('--json', 'print the state as one JSON document on stdout'))
    .action(async (target: string | undefined, options: { json?: boolean }) => {
      const { config, path } = readConfig(global().config, true);
      if (target !== undefined) assertTarget(config, target, path);
      const settings = temporalSettings(config);
      const [{ connectClient }, { readState }, { renderStatus }] = await Promise.all([import('./client.js'), import('./state/read.js'), import('./state/render.js')]);
      const client = await connectClient(settings).catch((error: unknown) => error as Error);
      try {
        const report = await readState({
          config: config!,
          env: process.env,
          ...(target !== undefined ? { targets: [target] } : {}),
          temporal: client instanceof Error ? { error: client.message } : { client, taskQueue: settings.taskQueue },
        });
        for (const line of renderStatus(report)) say(line);
        if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        setExitCode(report.healthy ? 0 : 1);
      } finally {
        if (!(client instanceof Error)) await client.connection.close();
      }
    });

  program
    .command('backups <target>')
    .description('list the backups the repositories hold (from their manifests alone), newest first')
    .addOption(jsonOption)
    .action(async (target: string, options: { json?: boolean }) => {
      const { config, path } = readConfig(global().config, true);
      assertTarget(config, target, path);
      const rows: Array<{ repository: string; id: string; snapshotAt: string; sourceBytes: number; storedBytes: number; encrypted: boolean }> = [];
      const names = config!.targets[target]!.repositories;
      const failures: unknown[] = [];
      for (const name of names) {
        try {
          const repository = new Repository(name, openBackend(config!.repositories[name]!));
          const { manifests, unreadable } = await repository.listBackups(target);
          for (const { id, error } of unreadable) say(`warning: backup ${id} in repository "${name}" is not listed: ${error.message}`);
          for (const manifest of manifests) {
            rows.push({
              repository: name,
              id: manifest.id,
              snapshotAt: manifest.snapshotAt,
              sourceBytes: sourceBytesOf(manifest),
              storedBytes: storedBytesOf(manifest),
              encrypted: manifest.encryption !== null,
            });
          }
        } catch (error) {
          failures.push(error);
          const type = error instanceof LifeboatError ? ` (${error.type})` : '';
          say(`warning: repository "${name}" could not be read${type}: ${(error as Error).message}`);
        }
      }
      // No repository could be read: that is a failure, not "no backups" (scripts rely on the exit code).
      if (failures.length === names.length) {
        const first = failures[0];
        if (first instanceof LifeboatError) throw first;
        say(`lifeboat: no repository of target "${target}" could be read (the warnings above say why)`);
        setExitCode(1);
        return;
      }
      rows.sort((a, b) => (a.id === b.id ? a.repository.localeCompare(b.repository) : a.id < b.id ? 1 : -1));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) say(`no complete backups of "${target}"`);
      else say(['BACKUP ID'.padEnd(24) + 'SNAPSHOT'.padEnd(26) + 'SIZE'.padStart(12) + 'STORED'.padStart(12) + '  REPOSITORY', ...rows.map((r) =>
        r.id.padEnd(24) + r.snapshotAt.padEnd(26) + String(r.sourceBytes).padStart(12) + String(r.storedBytes).padStart(12) + `  ${r.repository}${r.encrypted ? ' (encrypted)' : ''}`)].join('\n'));
    });

  program
    .command('check [target]')
    .description(
      'pre-flight of an installation, run on the worker\'s host with its config and environment: the config, the encryption key, a round trip ' +
        'to every repository, the tools, PostgreSQL connections and WAL archiving (a forced segment switch must reach the archive), the Temporal ' +
        'server, its search attributes, a worker polling the task queue, and the schedules. Every problem says what to change; exit 1 if any',
    )
    .option('--archive-timeout <seconds>', 'how long a switched-out WAL segment may take to reach the archive', '60')
    .addOption(jsonOption)
    .action(async (target: string | undefined, options: { archiveTimeout: string; json?: boolean }) => {
      const archiveTimeout = Number(options.archiveTimeout);
      if (!Number.isFinite(archiveTimeout) || archiveTimeout <= 0) throw new UsageError(`--archive-timeout must be a number of seconds > 0, got ${options.archiveTimeout}`);
      const { formatResult, runChecks } = await import('./check/run.js');
      const results = await runChecks({
        configPath: configPathFrom(global().config),
        ...(target !== undefined ? { target } : {}),
        settingsOf: temporalSettings,
        archiveTimeoutMs: archiveTimeout * 1000,
        onResult: (result) => say(formatResult(result)),
      });
      const failed = results.filter((result) => result.status === 'failed');
      const warnings = results.filter((result) => result.status === 'warning');
      say(failed.length ? `${failed.length} problem${failed.length === 1 ? '' : 's'} found${warnings.length ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : ''}` : `all checks passed${warnings.length ? ` (${warnings.length} warning${warnings.length === 1 ? '' : 's'})` : ''}`);
      if (options.json) process.stdout.write(`${JSON.stringify({ ok: failed.length === 0, results }, null, 2)}\n`);
      // A config that does not validate is bad input (2), like everywhere else; any other problem is 1.
      setExitCode(failed.length === 0 ? 0 : results[0]?.area === 'config' && results[0].status === 'failed' ? 2 : 1);
    });

  const schedules = program
    .command('schedules')
    .description('the Temporal Schedules declared in the config (targets.<target>.schedules.<name>, on the server as lifeboat/<target>/<name>)');

  schedules
    .command('apply')
    .description('make the server\'s Lifeboat schedules match the config: create, update, delete (only Lifeboat\'s own); an operator\'s pause and its note are kept')
    .option('--dry-run', 'print the plan (create / update / delete / unchanged) and change nothing')
    .addOption(jsonOption)
    .action(async (options: { dryRun?: boolean; json?: boolean }) => {
      const { config } = readConfig(global().config, true);
      const settings = temporalSettings(config);
      await withClient(settings, (client) => applyAndReport(client, settings, config!, { dryRun: options.dryRun ?? false, json: options.json ?? false }));
    });

  schedules
    .command('list')
    .description('the Lifeboat schedules on the server for this task queue: state, next runs, the last run and how it went')
    .addOption(jsonOption)
    .action(async (options: { json?: boolean }) => {
      const { config } = readConfig(global().config, false);
      const settings = temporalSettings(config);
      const { listSchedules } = await import('./schedules/operations.js');
      const listings = await withClient(settings, (client) => listSchedules(client, settings));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(listings, null, 2)}\n`);
        return;
      }
      if (listings.length === 0) say(`no Lifeboat schedules for task queue "${settings.taskQueue}" at ${settings.address}`);
      for (const listing of listings) {
        const state = listing.paused ? `PAUSED${listing.note ? ` (${listing.note})` : ''}` : 'active';
        say(`${listing.id}  ${listing.runbook}  ${state}`);
        say(`    next ${listing.nextRuns.join(', ') || '-'}; runs started ${listing.actionsTaken}, skipped ${listing.skippedOverlap} (overlap ${listing.overlap}), missed ${listing.missedCatchupWindow} (catch-up window)`);
        if (listing.lastRun) say(`    last ${listing.lastRun.workflowId} ${listing.lastRun.status}`);
        for (const running of listing.running) say(`    running ${running}`);
      }
    });

  schedules
    .command('pause <id>')
    .description('pause a schedule (lifeboat/<target>/<name>, or <target>/<name>): no runs start until it is unpaused; apply keeps the pause and the note')
    .requiredOption('--note <why>', 'why it is paused (shown in `schedules list` and the Temporal UI)')
    .action(async (id: string, options: { note: string }) => {
      const { config } = readConfig(global().config, false);
      const settings = temporalSettings(config);
      const { pauseSchedule } = await import('./schedules/operations.js');
      const full = await withClient(settings, (client) => pauseSchedule(client, settings, id, options.note));
      say(`${full}: paused (${options.note})`);
    });

  schedules
    .command('unpause <id>')
    .description('resume a paused schedule (also one paused by pauseOnFailure)')
    .option('--note <text>', 'a note for the record')
    .action(async (id: string, options: { note?: string }) => {
      const { config } = readConfig(global().config, false);
      const settings = temporalSettings(config);
      const { unpauseSchedule } = await import('./schedules/operations.js');
      const { cliRequester, requestedByKeyword } = await import('./requested-by.js');
      const note = options.note ?? `unpaused by ${requestedByKeyword(cliRequester())}`;
      const full = await withClient(settings, (client) => unpauseSchedule(client, settings, id, note));
      say(`${full}: active`);
    });

  schedules
    .command('trigger <id>')
    .description('start a run of the schedule now, under its overlap policy (with "skip", nothing starts while a run goes on)')
    .action(async (id: string) => {
      const { config } = readConfig(global().config, false);
      const settings = temporalSettings(config);
      const { triggerSchedule } = await import('./schedules/operations.js');
      const { id: full, overlap } = await withClient(settings, (client) => triggerSchedule(client, settings, id));
      say(`${full}: triggered (overlap policy ${overlap}); \`lifeboat schedules list\` shows the run`);
    });

  program
    .command('report <workflowId>')
    .description('the HTML report of a drill or PITR run (self-contained: print it, mail it): from the JSON report in the repositories, else from the run\'s result in Temporal')
    .option('--out <file>', 'write it to this file (default: stdout)')
    .action(async (workflowId: string, options: { out?: string }) => {
      const { config } = readConfig(global().config, false);
      const [{ findStoredReport }, { renderReportHtml }, { createHash }, { reportText }] = await Promise.all([
        import('./report/find.js'),
        import('./report/html.js'),
        import('node:crypto'),
        import('./repository/repository.js'),
      ]);
      const stored = config ? await findStoredReport(config, workflowId) : { problems: [] as string[] };
      for (const problem of stored.problems) say(`warning: ${problem}`);
      let source = stored.found;
      if (!source) {
        const settings = temporalSettings(config);
        const { connectClient } = await import('./client.js');
        const client = await connectClient(settings);
        try {
          const description = await client.workflow.getHandle(workflowId).describe().catch(() => undefined);
          if (!description) {
            throw new LifeboatError('InvalidInput', `no report of ${workflowId} in the repositories${config ? '' : ' (no config to find them)'}, and Temporal at ${settings.address} has no such run`, 'Check the workflow id (`lifeboat drill <target> --json` prints it)');
          }
          if (description.status.name !== 'COMPLETED') {
            throw new LifeboatError('InvalidInput', `run ${workflowId} is ${description.status.name.toLowerCase()}, and only a finished drill or PITR has a report`, 'Wait for it to finish');
          }
          const result: unknown = await client.workflow.getHandle(workflowId).result();
          source = { text: reportText(result), from: `the result of run ${workflowId} in Temporal` };
        } finally {
          await client.connection.close();
        }
      }
      const report = JSON.parse(source.text) as import('./report/html.js').RenderableReport;
      if (!Array.isArray(report.timeline) || !('rto' in report)) {
        throw new LifeboatError('InvalidInput', `${workflowId} is not a drill or PITR run (its result has no RTO and timeline)`, 'Reports are made for drills and point-in-time recoveries');
      }
      const html = renderReportHtml(report, { sha256: createHash('sha256').update(source.text).digest('hex'), from: source.from });
      if (options.out) {
        const { writeFile } = await import('node:fs/promises');
        await writeFile(options.out, html);
        say(`wrote the report of ${workflowId} (from ${source.from}) to ${options.out}`);
      } else {
        process.stdout.write(html);
      }
    });

  program
    .command('audit [target]')
    .description('the audit log: one record per finished run (who asked, what, when, result, backup, sizes, approvals), oldest first, from every repository')
    .option('--since <time>', 'only runs that finished since then: an ISO 8601 date or time (2026-12-01, 2026-12-01T08:00:00Z) or an age (90m, 36h, 7d, 2w)')
    .addOption(jsonOption)
    .action(async (target: string | undefined, options: { since?: string; json?: boolean }) => {
      const { config, path } = readConfig(global().config, true);
      if (target !== undefined) assertTarget(config, target, path);
      const { readAudit, formatAudit } = await import('./audit/read.js');
      const { parseSince } = await import('./audit/record.js');
      const since = options.since === undefined ? undefined : parseSince(options.since, new Date());
      if (options.since !== undefined && since === undefined) {
        throw new UsageError(`--since "${options.since}" is neither an ISO 8601 date or time (2026-12-01, 2026-12-01T08:00:00Z) nor an age (90m, 36h, 7d, 2w)`);
      }
      const read = await readAudit(config!, target === undefined ? Object.keys(config!.targets) : [target], since);
      for (const warning of read.warnings) say(`warning: ${warning}`);
      if (options.json) process.stdout.write(`${JSON.stringify(read.entries, null, 2)}\n`);
      else if (read.entries.length === 0) say(`no finished runs${target ? ` of "${target}"` : ''}${since ? ` since ${since.toISOString()}` : ''} in the audit log`);
      else say(formatAudit(read.entries));
      // A changed record, or a repository that could not be read, must not pass unnoticed in a script.
      setExitCode(read.damaged || read.unreadable ? 1 : 0);
    });

  program
    .command('ls <target>')
    .description('list the entries of a backup (files targets: path, type, mode, owner, size, mtime) from its index alone, without a worker')
    .option('--backup <id>', 'backup id (default: the newest complete backup)')
    .addOption(jsonOption)
    .action(async (target: string, options: { backup?: string; json?: boolean }) => {
      const { config, path } = readConfig(global().config, true);
      assertTarget(config, target, path);
      const configured = config!.targets[target]!;
      const kind = targetKindOf(configured.type);
      if (!kind?.cli.list) throw new UsageError(`target "${target}" is a ${configured.type} target: its backups are one piece, with nothing to list (\`lifeboat backups ${target}\` lists them)`);
      const repositories = configured.repositories.map((name) => new Repository(name, openBackend(config!.repositories[name]!)));
      const failures: string[] = [];
      for (const repository of repositories) {
        try {
          const id = options.backup ?? (await repository.latestBackupId(target));
          if (!id) {
            failures.push(`${repository.name}: no complete backup`);
            continue;
          }
          const manifest = await repository.readManifest(target, id);
          const entries = await kind.cli.list({ manifest: manifest as never, repositories, keyFile: config!.encryption?.keyFile });
          if (options.json) {
            process.stdout.write(`${JSON.stringify({ backupId: manifest.id, snapshotAt: manifest.snapshotAt, entries }, null, 2)}\n`);
            return;
          }
          say(`backup ${manifest.id} (snapshot ${manifest.snapshotAt}) of ${target}: ${entries.length} entries`);
          const mode = (value: number | null) => (value === null ? '-' : value.toString(8).padStart(4, '0'));
          process.stdout.write(
            entries
              .map((e) => `${e.type.padEnd(9)} ${mode(e.mode)} ${`${e.uid}:${e.gid}`.padEnd(11)} ${String(e.size).padStart(12)} ${e.mtime}  ${e.path}${e.linkTarget !== undefined ? ` -> ${e.linkTarget}` : ''}`)
              .join('\n') + '\n',
          );
          return;
        } catch (error) {
          if (error instanceof UsageError || (error instanceof LifeboatError && error.category === 'input')) throw error;
          failures.push(`${repository.name}: ${(error as Error).message}`);
        }
      }
      throw new LifeboatError('BackupNotFound', `no repository of target "${target}" could list ${options.backup ? `backup ${options.backup}` : 'its newest backup'} (${failures.join('; ')})`, `Run \`lifeboat backups ${target}\` to list them`);
    });

  return program;
}

async function withClient<T>(settings: TemporalSettings, use: (client: Client) => Promise<T>): Promise<T> {
  const { connectClient } = await import('./client.js');
  const client = await connectClient(settings);
  try {
    return await use(client);
  } finally {
    await client.connection.close();
  }
}

/** `schedules apply`: prints the plan (and with --json one document on stdout), applies it unless dryRun. */
async function applyAndReport(client: Client, settings: TemporalSettings, config: Config, options: { dryRun: boolean; json: boolean }): Promise<void> {
  const [{ declaredSchedules }, { applyPlan, changeJson, describeChange, planSchedules }] = await Promise.all([import('./schedules/declared.js'), import('./schedules/sync.js')]);
  const plan = await planSchedules(client, settings, declaredSchedules(config, settings));
  const counts = (['create', 'update', 'delete', 'unchanged'] as const).map((action) => `${plan.filter((change) => change.action === action).length} ${action}`).join(', ');
  say(`schedules for task queue "${settings.taskQueue}" at ${settings.address}${options.dryRun ? ' (dry run: nothing changed)' : ''}: ${counts}`);
  for (const change of plan) say(`  ${describeChange(change)}`);
  if (options.json) process.stdout.write(`${JSON.stringify({ dryRun: options.dryRun, changes: plan.map(changeJson) }, null, 2)}\n`);
  if (!options.dryRun) await applyPlan(client, plan);
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => (exitCode = code));
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    const code = failureExitCode(error);
    // PostgreSQL reads restore_command's statuses 1-125 as "not in the archive" and may end
    // recovery there: a wal-fetch that could not even start (a usage error) must stop recovery.
    return code !== 0 && commandOf(argv.slice(2)) === 'wal-fetch' ? restoreCommandExitCodes.failed : code;
  }
}

/** Says what failed (commander has already printed its usage errors) and returns the exit status. */
function failureExitCode(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  if (error instanceof LifeboatError) {
    say(`lifeboat: ${error.type}: ${error.message}`);
    return exitCodeFor(error.type);
  }
  if (error instanceof UsageError) {
    say(`lifeboat: ${error.message}`);
    return 2;
  }
  say(`lifeboat: ${(error as Error).stack ?? String(error)}`);
  return 1;
}
