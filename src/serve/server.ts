import type { Client } from '@temporalio/client';
import { createServer, type Server } from 'node:http';
import type { TemporalSettings } from '../client.js';
import type { Config, RepositoryConfig } from '../config/schema.js';
import { createLogger, type Logger } from '../logger.js';
import type { Repository } from '../repository/repository.js';
import { listenOn } from './listen.js';
import { createMetrics, type LifeboatMetrics } from './metrics.js';
import { StateRefresher } from './refresher.js';
import { Router } from './router.js';
import { metricsRoutes } from './routes/metrics.js';
import { statusRoutes } from './routes/status.js';

/**
 * `lifeboat serve`: a long-running HTTP process, a Temporal client (it runs no activities). It
 * reads the state of every target in the background (StateRefresher) and answers from memory:
 *
 *   GET /metrics   Prometheus metrics (src/serve/metrics.ts)
 *   GET /status    the state as JSON (what `lifeboat status --json` prints)
 *   GET /healthz   the process answers
 *
 * More route families (chatops) are modules under routes/ added to the router below.
 */
export interface ServeOptions {
  config: Config;
  settings: TemporalSettings;
  env?: NodeJS.ProcessEnv;
  /** Default: config.serve.listen. */
  listen?: string;
  /** Default: config.serve.refreshSeconds. */
  refreshSeconds?: number;
  logger?: Logger;
  /** Default: openBackend (the benchmark counts requests through its own). */
  openRepository?: (name: string, config: RepositoryConfig) => Repository;
}

export interface RunningServe {
  /** e.g. http://127.0.0.1:9464 */
  url: string;
  refresher: StateRefresher;
  metrics: LifeboatMetrics;
  close(): Promise<void>;
}

export async function startServe(options: ServeOptions): Promise<RunningServe> {
  const { config } = options;
  const logger = options.logger ?? createLogger('lifeboat-serve');
  const listen = options.listen ?? config.serve.listen;
  let metrics: LifeboatMetrics | undefined;
  const refresher = new StateRefresher({
    config,
    env: options.env ?? process.env,
    settings: options.settings,
    refreshSeconds: options.refreshSeconds ?? config.serve.refreshSeconds,
    logger,
    onClosedRun: (run) => metrics?.countRun(run),
    onRead: async (report) => metrics?.update(report),
    connect: async (settings: TemporalSettings): Promise<Client> => (await import('../client.js')).connectClient(settings),
    ...(options.openRepository ? { openRepository: options.openRepository } : {}),
  });
  metrics = createMetrics(refresher, { knownTargets: Object.keys(config.targets) });
  const router = new Router().add(...metricsRoutes(metrics), ...statusRoutes(refresher));
  const server: Server = createServer((request, response) => void router.handle(request, response));
  // Prometheus keeps its connections open between scrapes; close() must not wait for them.
  server.keepAliveTimeout = 65_000;
  const { host, port } = await listenOn(server, listen, 'lifeboat serve');
  refresher.start();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ url, refreshSeconds: options.refreshSeconds ?? config.serve.refreshSeconds, targets: Object.keys(config.targets).length }, 'serving /metrics and /status');
  return {
    url,
    refresher,
    metrics,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await refresher.stop();
    },
  };
}
