import { DefaultLogger, NativeConnection, Runtime, Worker, type LogEntry, type LogLevel } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { createActivities } from '../activities/index.js';
import { loadConfig } from './config/load.js';
import { configSchema, type WorkerLimits } from './config/schema.js';
import { projectRoot } from './dev/tools.js';
import { createLogger, type Logger } from './logger.js';
import { listenOn } from './serve/listen.js';

export interface WorkerOptions {
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  configPath: string;
  /** A prebuilt workflow bundle (tests build one once); default: bundle workflows/index.ts at start. */
  workflowBundlePath?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /**
   * host:port where the SDK's own Prometheus metrics are served (worker.metricsListen). Only the
   * first worker of a process can set it: the SDK's runtime is installed once per process.
   */
  metricsListen?: string;
  /** The config's `worker` section; default: read from configPath (the schema's defaults when it cannot be read). */
  limits?: WorkerLimits;
}

/**
 * The limits of the config at path. A config that cannot be read gets the defaults: the worker
 * still starts and every run reports the config's problem (InvalidConfig) in its first step.
 */
export function workerLimitsOf(configPath: string): WorkerLimits {
  try {
    return loadConfig(configPath).worker;
  } catch {
    return configSchema.shape.worker.parse(undefined);
  }
}

/**
 * Environment a worker process should start with. glibc gives every thread that allocates its own
 * malloc arena (up to 8 per core), and a worker has many threads (libuv, V8, SQLite check threads):
 * two arenas cut its peak RSS by 50-90 MB on a 1 GiB backup or restore at no measurable speed cost
 * (bench/RESULTS.md). glibc reads it only at process start, so it is set by whatever starts the
 * worker: package.json's start script, the Dockerfile, the systemd unit in docs/getting-started.md, the benchmark.
 */
export const recommendedWorkerEnv = { MALLOC_ARENA_MAX: '2' } as const;

/**
 * Node flags a worker process should start with. V8 lets each young generation grow to 3 x 16 MiB
 * by default, in the main isolate and in every thread (workflows, checks, the tsx loader): the
 * worker's data moves in Buffers outside the JavaScript heap, so a small one costs no measured
 * speed and keeps an idle worker 35 MB and a backup's peak 30-40 MB lower (bench/RESULTS.md).
 * V8 sizes a heap when the process starts: `node --max-semi-space-size=2 bin/lifeboat.js worker`.
 */
export const recommendedWorkerNodeFlags = ['--max-semi-space-size=2'] as const;

function startedWithRecommendedFlags(): boolean {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return recommendedWorkerNodeFlags.every((flag) => given.some((arg) => arg.startsWith(flag.split('=')[0]!)));
}

let runtimeInstalled = false;

function sdkLogLevel(level: string): LogLevel {
  const upper = level.toUpperCase();
  return (['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const).find((l) => l === upper) ?? 'INFO';
}

/**
 * Installs the SDK's runtime once per process: its own logs (including activity and workflow log
 * calls) through pino on stderr, and with metricsListen its Prometheus metrics at
 * http://<metricsListen>/metrics, in seconds, with Prometheus's suffixes (_total, _seconds).
 */
async function installRuntime(logger: Logger, metricsListen: string | undefined): Promise<void> {
  if (runtimeInstalled) return;
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  // The SDK's exporter cannot say why it did not bind: find out first, with a clear error.
  if (metricsListen !== undefined) await assertFree(metricsListen);
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger(sdkLogLevel(logger.level), (entry: LogEntry) => {
      logger[levels[entry.level]]({ ...entry.meta }, entry.message);
    }),
    ...(metricsListen !== undefined
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsListen, useSecondsForDurations: true, countersTotalSuffix: true, unitSuffix: true } } } }
      : {}),
  });
}

async function assertFree(address: string): Promise<void> {
  const probe = createServer();
  await listenOn(probe, address, 'the worker\'s metrics');
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/** The memory settings (see recommendedWorkerEnv and recommendedWorkerNodeFlags) this process was started without. */
function memorySettingsUnset(): Array<{ name: string; saves: string }> {
  const unset: Array<{ name: string; saves: string }> = [];
  if (process.platform === 'linux' && process.env.MALLOC_ARENA_MAX === undefined) unset.push({ name: 'MALLOC_ARENA_MAX=2', saves: '50-90 MB' });
  if (!startedWithRecommendedFlags()) unset.push({ name: recommendedWorkerNodeFlags.join(' '), saves: '30-40 MB' });
  return unset;
}

export async function createWorker(options: WorkerOptions): Promise<Worker> {
  const logger = options.logger ?? createLogger('lifeboat-worker');
  await installRuntime(logger, options.metricsListen);
  const unset = memorySettingsUnset();
  if (unset.length > 0) {
    logger.info(
      { unset: unset.map((setting) => setting.name) },
      `the worker runs without ${unset.map((setting) => `${setting.name} (${setting.saves} lower peak memory)`).join(' and ')}: ` +
        `start it as \`MALLOC_ARENA_MAX=2 node ${recommendedWorkerNodeFlags.join(' ')} bin/lifeboat.js worker\``,
    );
  }
  const connection = await NativeConnection.connect({ address: options.temporalAddress });
  const bundlePath = options.workflowBundlePath ?? process.env.LIFEBOAT_WORKFLOW_BUNDLE;
  const workflows =
    bundlePath && existsSync(bundlePath)
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: join(projectRoot, 'workflows', 'index.ts') };
  const limits = options.limits ?? workerLimitsOf(options.configPath);
  return Worker.create({
    connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: await createActivities({ configPath: options.configPath, ...(options.env ? { env: options.env } : {}) }),
    ...workflows,
    // Transfers are few and heavy: a handful at a time per worker keeps memory flat on small machines
    // (config `worker`; bench/fanout.ts checks that the limits hold with 100 runs at once).
    maxConcurrentActivityTaskExecutions: limits.maxConcurrentActivityTaskExecutions,
    maxConcurrentWorkflowTaskExecutions: limits.maxConcurrentWorkflowTaskExecutions,
    maxCachedWorkflows: limits.maxCachedWorkflows,
    shutdownGraceTime: '10 seconds',
    // Progress reaches the server (and the CLI's progress line) every second, not every 12 s.
    maxHeartbeatThrottleInterval: '1 second',
  });
}
