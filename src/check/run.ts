/**
 * `lifeboat check [<target>]`: the pre-flight of a new installation, run on the worker's host with
 * the worker's config and environment. It checks, in order, and reports every finding with what to
 * change: the config validates; the encryption key is readable; every repository takes a small
 * object round trip; the tools are there (zstd, and PostgreSQL's programs for the server's major
 * version); each PostgreSQL target accepts Lifeboat's connection and archives WAL through Lifeboat
 * (a forced segment switch arrives in the archive); the Temporal server answers, knows Lifeboat's
 * search attributes, and a worker polls the task queue; the schedules match the config.
 */
import type { Client } from '@temporalio/client';
import { connectClient, type TemporalSettings } from '../client.js';
import { loadConfig, targetNamed } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { LifeboatError } from '../errors.js';
import { compressionInfo } from '../pipeline/compress.js';
import { keyId, loadKeyFile } from '../pipeline/encrypt.js';
import { declaredSchedules } from '../schedules/declared.js';
import { describeChange, planSchedules } from '../schedules/sync.js';
import { targetKindOf } from '../kinds/index.js';
import { checkRepositoryRoundTrip, repositoryFix } from './repositories.js';
import { Finding, messageOf, runCheck, type CheckResult } from './result.js';
import { checkPollers, checkSearchAttributes, checkServer } from './temporal.js';

export interface CheckOptions {
  configPath: string;
  /** Check this target (and its repositories) only. */
  target?: string;
  /** Where Temporal is, from the config (TEMPORAL_ADDRESS and friends override it). */
  settingsOf: (config: Config) => TemporalSettings;
  env?: NodeJS.ProcessEnv;
  /** Time limit of each check; default 30 s. */
  timeoutMs?: number;
  /** How long a switched-out WAL segment may take to reach the archive; default 60 s (pgBackRest's archive-timeout). */
  archiveTimeoutMs?: number;
  /** Told about each result as soon as it is known (the CLI prints as it goes). */
  onResult?: (result: CheckResult) => void;
}

const hintOf = (error: unknown, otherwise: string) => (error instanceof LifeboatError && error.hint ? error.hint : otherwise);

export async function runChecks(options: CheckOptions): Promise<CheckResult[]> {
  const env = options.env ?? process.env;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const results: CheckResult[] = [];
  const record = (result: CheckResult): CheckResult => {
    results.push(result);
    options.onResult?.(result);
    return result;
  };

  let config: Config | undefined;
  const configResult = record(
    await runCheck('config', options.configPath, timeoutMs, async () => {
      config = loadConfig(options.configPath);
      if (options.target !== undefined) targetNamed(config.targets, options.target, options.configPath);
      const targets = Object.keys(config.targets);
      const schedules = Object.values(config.targets).reduce((sum, target) => sum + Object.keys(target.schedules).length, 0);
      const count = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
      return `valid: ${count(targets.length, 'target')} (${targets.join(', ')}), ${count(Object.keys(config.repositories).length, 'repository').replace('repositorys', 'repositories')}, ${count(schedules, 'schedule')}`;
    }, (error) => hintOf(error, 'Fix the config: the message names each field, and the configuration reference lists every option')),
  );
  if (configResult.status !== 'ok' || config === undefined) return results;
  const loaded: Config = config;
  const targets = Object.entries(loaded.targets).filter(([name]) => options.target === undefined || name === options.target);

  // Encryption key
  if (loaded.encryption) {
    const keyFile = loaded.encryption.keyFile;
    record(await runCheck('encryption', keyFile, timeoutMs, async () => `key ${keyId(await loadKeyFile(keyFile))} readable`, (error) => hintOf(error, `Make ${keyFile} readable by the worker's user`)));
  } else {
    record({ area: 'encryption', subject: '-', status: 'skipped', detail: 'no encryption.keyFile: backups are stored unencrypted' });
  }

  // Repositories: each one the checked targets write to, once.
  const repositoryNames = [...new Set(targets.flatMap(([, target]) => target.repositories))];
  for (const name of repositoryNames) {
    const repository = loaded.repositories[name]!;
    record(await runCheck('repository', name, timeoutMs, () => checkRepositoryRoundTrip(repository, env), (error) => repositoryFix(name, repository, error)));
  }

  // Tools every target needs.
  record(
    await runCheck('tools', 'zstd', timeoutMs, async () => `zstd ${(await compressionInfo()).version}`, () => 'Install zstd (Debian: apt-get install zstd) on the PATH of the worker'),
  );

  // What each kind of target checks of its own (PostgreSQL: the connection, its programs, WAL archiving).
  for (const [name, target] of targets) {
    const kind = targetKindOf(target.type);
    if (!kind?.preflight) continue;
    await kind.preflight(name, target as never, {
      configPath: options.configPath,
      env,
      timeoutMs,
      archiveTimeoutMs: options.archiveTimeoutMs ?? 60_000,
      repositories: target.repositories.map((repository) => ({ name: repository, config: loaded.repositories[repository]! })),
      check: async (...args) => record(await runCheck(...args)),
    });
  }

  // Temporal.
  const settings = options.settingsOf(loaded);
  let client: Client | undefined;
  const reached = record(
    await runCheck('temporal', settings.address, timeoutMs, async () => {
      client = await connectClient(settings);
      return checkServer(client, settings);
    }, (error) => hintOf(error, `Start the Temporal server, or set TEMPORAL_ADDRESS / temporal.address to where it listens (namespace: TEMPORAL_NAMESPACE / temporal.namespace)`)),
  );
  try {
    if (reached.status === 'ok' && client) {
      const connected: Client = client;
      record(await runCheck('temporal', 'search attributes', timeoutMs, () => checkSearchAttributes(connected, settings), (error) => messageOf(error)));
      record(await runCheck('temporal', `task queue ${settings.taskQueue}`, timeoutMs, () => checkPollers(connected, settings), (error) => messageOf(error)));
      const declared = declaredSchedules(loaded, settings, options.target);
      if (declared.length) {
        record(
          await runCheck('schedules', options.target ?? 'all targets', timeoutMs, async () => {
            const plan = (await planSchedules(connected, settings, declared)).filter((change) => options.target === undefined || change.action !== 'delete');
            const conflicts = plan.filter((change) => change.action === 'conflict');
            if (conflicts.length) throw new Finding(conflicts.map(describeChange).join('; '), 'Resolve the conflicts named above, then run `lifeboat schedules apply`');
            const pending = plan.filter((change) => change.action !== 'unchanged');
            if (pending.length) throw new Finding(`the server's schedules differ from the config: ${pending.map((change) => describeChange(change).replace(/\s+/g, ' ')).join('; ')}`, 'Run `lifeboat schedules apply` (or start the worker with --apply-schedules)', 'warning');
            const paused = plan.filter((change) => 'paused' in change && change.paused);
            return `${plan.length} schedule${plan.length === 1 ? '' : 's'} match the config${paused.length ? `; paused: ${paused.map((change) => change.id).join(', ')}` : ''}`;
          }, (error) => messageOf(error)),
        );
      }
    }
  } finally {
    await (client as Client | undefined)?.connection.close();
  }
  return results;
}

/** One line per result, and the fix under a problem, as the CLI prints them. */
export function formatResult(result: CheckResult): string {
  const status = { ok: 'ok', failed: 'FAILED', warning: 'WARNING', skipped: 'skipped' }[result.status].padEnd(8);
  const head = `${status}${result.area.padEnd(11)}${result.subject}: ${result.detail}`;
  return result.fix && result.status !== 'ok' ? `${head}\n${' '.repeat(19)}fix: ${result.fix}` : head;
}
