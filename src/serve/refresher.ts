import type { Client } from '@temporalio/client';
import type { TemporalSettings } from '../client.js';
import type { Config, RepositoryConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { Repository } from '../repository/repository.js';
import type { StateReport } from '../state/model.js';
import { readState } from '../state/read.js';
import type { RepositoryFactsMemory } from '../state/repository-facts.js';
import { readLastRuns, RunWatcher, type ClosedRun } from '../state/temporal-facts.js';

export interface RefresherOptions {
  config: Config;
  env: NodeJS.ProcessEnv;
  settings: TemporalSettings;
  refreshSeconds: number;
  logger: Logger;
  /** Told of every run that finishes while serve runs (the runs counter). */
  onClosedRun: (run: ClosedRun) => void;
  /** Told of every complete read before it becomes `latest` (renders the metrics). */
  onRead?: (report: StateReport) => Promise<void>;
  openRepository?: (name: string, config: RepositoryConfig) => Repository;
  connect: (settings: TemporalSettings) => Promise<Client>;
}

/**
 * Keeps the state of every target fresh for `lifeboat serve`: reads it on start and then every
 * refreshSeconds after the previous read ended (reads never overlap), in the background. Requests
 * are answered from `latest`, so a scrape never waits for a repository. Runs are followed with a
 * RunWatcher (one visibility query per refresh), seeded per target once.
 */
export class StateRefresher {
  latest: StateReport | undefined;
  lastSuccessAt: number | undefined;
  lastDurationSeconds: number | undefined;
  failures = 0;
  temporalUp = false;
  private client: Client | undefined;
  private watcher: RunWatcher | undefined;
  private readonly memory = new Map<string, RepositoryFactsMemory>();
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: RefresherOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Resolves when the read in progress (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.client?.connection.close().catch(() => undefined);
  }

  /** One read of every target now (also what start() repeats). */
  refresh(): Promise<void> {
    this.running ??= this.readOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule(this.options.refreshSeconds * 1000));
    }, delayMs);
  }

  private async readOnce(): Promise<void> {
    const started = Date.now();
    const { logger } = this.options;
    try {
      const temporal = await this.temporal();
      const report = await readState({
        config: this.options.config,
        env: this.options.env,
        temporal,
        memory: this.memory,
        forMetrics: true,
        ...(this.options.openRepository ? { openRepository: this.options.openRepository } : {}),
        ...('client' in temporal ? { lastRuns: (target: string) => this.lastRuns(temporal.client, target) } : {}),
      });
      await this.options.onRead?.(report);
      this.latest = report;
      this.lastSuccessAt = Date.now();
      this.lastDurationSeconds = (this.lastSuccessAt - started) / 1000;
      logger.debug({ durationSeconds: this.lastDurationSeconds, healthy: this.latest.healthy }, 'state refreshed');
    } catch (error) {
      this.failures++;
      logger.error({ error: error instanceof Error ? error.message : String(error) }, 'state refresh failed');
    }
  }

  /** The Temporal client (connected on first use, again after a failure) with the runs followed since the last read. */
  private async temporal(): Promise<{ client: Client; taskQueue: string } | { error: string }> {
    try {
      this.client ??= await this.options.connect(this.options.settings);
      this.watcher ??= new RunWatcher(this.client, this.options.onClosedRun, this.startedAt);
      await this.watcher.poll();
      this.temporalUp = true;
      return { client: this.client, taskQueue: this.options.settings.taskQueue };
    } catch (error) {
      this.temporalUp = false;
      return { error: error instanceof Error ? error.message : String(error) };
    }
  }

  private async lastRuns(client: Client, target: string) {
    const watcher = this.watcher!;
    if (!watcher.knows(target)) watcher.seed(target, await readLastRuns(client, target));
    return watcher.lastRunsOf(target);
  }
}
