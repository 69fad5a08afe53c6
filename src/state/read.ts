import type { Client } from '@temporalio/client';
import type { Config, RepositoryConfig, TargetConfig } from '../config/schema.js';
import { innermostMessage } from '../client.js';
import { LifeboatError } from '../errors.js';
import { openBackend } from '../repository/open.js';
import { Repository } from '../repository/repository.js';
import { assess, objectivesOf, type ArchiverFacts, type RepositoryState, type ScheduleFacts, type StateReport, type TargetState, type WorkerFacts } from './model.js';
import { targetKindOf } from '../kinds/index.js';
import { readRepositoryState, type RepositoryFactsMemory } from './repository-facts.js';
import { readLastRuns, readSchedules, readWorkers, type LastRuns } from './temporal-facts.js';

/**
 * Reads the state of targets (src/state/model.ts) from their repositories, the Temporal server
 * and their PostgreSQL servers. Used by `lifeboat status` once, and by `lifeboat serve` on every
 * refresh (with memory kept between refreshes and its RunWatcher for the runs).
 */
export interface ReadStateOptions {
  config: Config;
  env: NodeJS.ProcessEnv;
  /** Default: every target of the config, in config order. */
  targets?: string[];
  /** The Temporal client and the task queue whose pollers count as workers; or why there is none. */
  temporal: { client: Client; taskQueue: string } | { error: string };
  /** Where the newest finished runs come from; default: visibility queries (readLastRuns). */
  lastRuns?: (target: string) => LastRuns | Promise<LastRuns>;
  /** What a long-running reader remembers per target and repository (see RepositoryFactsMemory). */
  memory?: Map<string, RepositoryFactsMemory>;
  /** Default: openBackend (the benchmark counts requests through its own). */
  openRepository?: (name: string, config: RepositoryConfig) => Repository;
  /** Read for /metrics (see RepositoryFactsInput.forMetrics). */
  forMetrics?: boolean;
  /** Targets read at once. */
  concurrency?: number;
  now?: () => number;
}

export async function readState(options: ReadStateOptions): Promise<StateReport> {
  const now = options.now ?? Date.now;
  const names = options.targets ?? Object.keys(options.config.targets);
  const temporalWide = await readTemporalWide(options);
  const targets = await mapLimit(names, options.concurrency ?? 8, (name) => readTarget(name, options, temporalWide, now));
  return {
    observedAt: new Date(now()).toISOString(),
    healthy: targets.every((target) => target.problems.length === 0),
    targets,
    workers: temporalWide.workers,
  };
}

interface TemporalWide {
  schedules: Map<string, ScheduleFacts[]>;
  workers: WorkerFacts | null;
  error: string | null;
}

async function readTemporalWide(options: ReadStateOptions): Promise<TemporalWide> {
  if ('error' in options.temporal) return { schedules: new Map(), workers: null, error: options.temporal.error };
  const { client, taskQueue } = options.temporal;
  try {
    const [schedules, workers] = await Promise.all([readSchedules(client), readWorkers(client, taskQueue)]);
    return { schedules, workers, error: null };
  } catch (error) {
    return { schedules: new Map(), workers: null, error: innermostMessage(error) };
  }
}

async function readTarget(name: string, options: ReadStateOptions, temporalWide: TemporalWide, now: () => number): Promise<TargetState> {
  const target = options.config.targets[name];
  if (target === undefined) throw new LifeboatError('TargetNotFound', `no target named "${name}"`);
  const readArchiver = targetKindOf(target.type)?.state?.archiver;
  const archiver: ArchiverFacts | null = readArchiver ? await readArchiver(target as never, options.env, now()) : null;
  const [repositories, runs] = await Promise.all([
    Promise.all(target.repositories.map((repositoryName) => readRepository(name, target, repositoryName, archiver, options))),
    readRuns(name, options, temporalWide),
  ]);
  const state: Omit<TargetState, 'problems'> = {
    target: name,
    type: target.type,
    observedAt: new Date(now()).toISOString(),
    objectives: objectivesOf(target),
    repositories,
    archiver,
    lastRuns: runs.lastRuns,
    schedules: temporalWide.schedules.get(name) ?? [],
    temporalError: runs.error,
  };
  return { ...state, problems: assess(state, now()) };
}

async function readRuns(name: string, options: ReadStateOptions, temporalWide: TemporalWide): Promise<{ lastRuns: LastRuns; error: string | null }> {
  if (temporalWide.error !== null || 'error' in options.temporal) return { lastRuns: {}, error: temporalWide.error };
  const { client } = options.temporal;
  try {
    return { lastRuns: await (options.lastRuns ?? ((target: string) => readLastRuns(client, target)))(name), error: null };
  } catch (error) {
    return { lastRuns: {}, error: innermostMessage(error) };
  }
}

async function readRepository(target: string, config: TargetConfig, name: string, archiver: ArchiverFacts | null, options: ReadStateOptions): Promise<RepositoryState> {
  const repositoryConfig = options.config.repositories[name];
  let repository: Repository;
  try {
    if (repositoryConfig === undefined) throw new LifeboatError('InvalidConfig', `target "${target}" names unknown repository "${name}"`);
    repository = options.openRepository ? options.openRepository(name, repositoryConfig) : new Repository(name, openBackend(repositoryConfig, options.env));
  } catch (error) {
    return unreadableRepository(name, repositoryConfig, config, error);
  }
  const key = `${target}\0${name}`;
  let memory = options.memory?.get(key);
  if (options.memory && memory === undefined) options.memory.set(key, (memory = {}));
  return readRepositoryState({
    repository,
    target,
    type: config.type,
    retention: config.retention,
    serverArchivedWal: archiver?.lastArchivedWal ?? null,
    ...(memory ? { memory } : {}),
    ...(options.forMetrics ? { forMetrics: true } : {}),
  });
}

function unreadableRepository(name: string, config: RepositoryConfig | undefined, target: TargetConfig, error: unknown): RepositoryState {
  const location = config?.type === 'fs' ? `fs:${config.path}` : config?.type === 's3' ? `s3://${config.bucket}/${config.prefix}` : '(unknown)';
  return {
    repository: name,
    location,
    error: error instanceof LifeboatError ? `${error.type}: ${error.message}` : error instanceof Error ? error.message : String(error),
    newestBackup: null,
    newestVerifiedBackup: null,
    lastVerify: null,
    lastPassedVerify: null,
    lastDrill: null,
    lastPassedDrill: null,
    wal: targetKindOf(target.type)?.state?.wal ? { head: null, pitrWindow: { start: null, end: null } } : null,
    retention: null,
  };
}

/** Runs fn over items with at most `limit` at a time, results in item order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
