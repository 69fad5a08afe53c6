import type { Client } from '@temporalio/client';
import { createServer, type Server } from 'node:http';
import { DecisionLog } from '../chatops/decisions.js';
import { OutcomeWatcher } from '../chatops/outcomes.js';
import { ChatOps } from '../chatops/service.js';
import type { TemporalSettings } from '../client.js';
import type { Config, RepositoryConfig } from '../config/schema.js';
import { LifeboatError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import type { Repository } from '../repository/repository.js';
import { listenOn } from './listen.js';
import { createMetrics, type LifeboatMetrics } from './metrics.js';
import { StateRefresher } from './refresher.js';
import { Router } from './router.js';
import { metricsRoutes } from './routes/metrics.js';
import { slackRoutes } from './routes/slack.js';
import { statusRoutes } from './routes/status.js';

/**
 * `lifeboat serve`: a long-running HTTP process, a Temporal client (it runs no activities). It
 * reads the state of every target in the background (StateRefresher) and answers from memory:
 *
 *   GET /metrics   Prometheus metrics (src/serve/metrics.ts)
 *   GET /status    the state as JSON (what `lifeboat status --json` prints)
 *   GET /healthz   the process answers
 *   POST /slack/commands, /slack/interactions   chatops, when the config has `chatops:` (src/chatops)
 *
 * Each route family is a module under routes/ added to the router below.
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
  /** Chatops timings, shortened by tests: Slack's answer budget and its response_url lifetime. */
  chatops?: { ackBudgetMs?: number; responseUrlLifetimeMs?: number };
}

export interface RunningServe {
  /** e.g. http://127.0.0.1:9464 */
  url: string;
  refresher: StateRefresher;
  metrics: LifeboatMetrics;
  /** Present when the config has `chatops:`. */
  chatops?: { decisions: DecisionLog; watcher: OutcomeWatcher };
  close(): Promise<void>;
}

/** The value of an environment variable the config names, or CredentialsUnavailable before serve listens. */
function fromEnv(env: NodeJS.ProcessEnv, variable: string, what: string): string {
  const value = env[variable];
  if (!value) {
    throw new LifeboatError('CredentialsUnavailable', `lifeboat serve: the environment variable ${variable} (${what}) is not set`, `Export ${variable} in the environment serve starts with, or remove the option that names it`);
  }
  return value;
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

  // Chatops: its own Temporal connection (made on the first request that needs it, again after a failure).
  const env = options.env ?? process.env;
  let chatopsClient: Promise<Client> | undefined;
  const client = (): Promise<Client> =>
    (chatopsClient ??= import('../client.js').then(({ connectClient }) => connectClient(options.settings)).catch((error: unknown) => {
      chatopsClient = undefined;
      throw error;
    }));
  let chatops: RunningServe['chatops'];
  if (config.chatops) {
    const secret = fromEnv(env, config.chatops.slack.signingSecretEnv, 'the Slack app\'s signing secret, chatops.slack.signingSecretEnv');
    const lateName = config.chatops.slack.lateOutcomes;
    const lateChannel = lateName ? config.notifications?.channels[lateName] : undefined;
    const late = lateChannel?.type === 'slack' ? { url: fromEnv(env, lateChannel.urlEnv, `the incoming webhook of notifications channel "${lateName}", chatops.slack.lateOutcomes`), describe: `the Slack webhook in ${lateChannel.urlEnv}` } : undefined;
    const uiUrl = config.notifications?.temporalUiUrl;
    const decisions = new DecisionLog(logger, config.chatops.decisionLog);
    const watcher = new OutcomeWatcher({ client, taskQueue: options.settings.taskQueue, ui: uiUrl ? { url: uiUrl, namespace: options.settings.namespace } : undefined, late, logger });
    const service = new ChatOps({
      config,
      chatops: config.chatops,
      settings: options.settings,
      env,
      client,
      state: refresher,
      watcher,
      decisions,
      logger,
      ...(options.chatops?.ackBudgetMs !== undefined ? { ackBudgetMs: options.chatops.ackBudgetMs } : {}),
      ...(options.chatops?.responseUrlLifetimeMs !== undefined ? { responseUrlLifetimeMs: options.chatops.responseUrlLifetimeMs } : {}),
      ...(options.openRepository ? { openRepository: options.openRepository } : {}),
    });
    router.add(...slackRoutes({ chatops: service, secret, decisions }));
    chatops = { decisions, watcher };
    // Runs Slack started before a restart are followed again (their outcomes go to lateOutcomes).
    void watcher.resumeOpenRuns().catch((error: unknown) => logger.warn({ error: (error as Error).message }, 'chatops: could not look for open runs started from Slack'));
  }
  const server: Server = createServer((request, response) => void router.handle(request, response));
  // Prometheus keeps its connections open between scrapes; close() must not wait for them.
  server.keepAliveTimeout = 65_000;
  const { host, port } = await listenOn(server, listen, 'lifeboat serve');
  refresher.start();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ url, refreshSeconds: options.refreshSeconds ?? config.serve.refreshSeconds, targets: Object.keys(config.targets).length, chatops: chatops !== undefined }, `serving /metrics and /status${chatops ? ', /slack/commands and /slack/interactions' : ''}`);
  return {
    url,
    refresher,
    metrics,
    ...(chatops ? { chatops } : {}),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      chatops?.watcher.close();
      await chatops?.decisions.flushed();
      await refresher.stop();
      if (chatopsClient) await (await chatopsClient.catch(() => undefined))?.connection.close().catch(() => undefined);
    },
  };
}
