import { DefaultLogger, NativeConnection, Runtime, Worker, type LogEntry, type LogLevel } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createActivities } from '../activities/index.js';
import { projectRoot } from './dev/tools.js';
import { createLogger, type Logger } from './logger.js';

export interface WorkerOptions {
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  configPath: string;
  /** A prebuilt workflow bundle (tests build one once); default: bundle workflows/index.ts at start. */
  workflowBundlePath?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

/**
 * Environment a worker process should start with. glibc gives every thread that allocates its own
 * malloc arena (up to 8 per core), and a worker has many threads (libuv, V8, SQLite check threads):
 * two arenas cut its peak RSS by 50-90 MB on a 1 GiB backup or restore at no measurable speed cost
 * (bench/RESULTS.md). glibc reads it only at process start, so it is set by whatever starts the
 * worker: package.json's start script, the Dockerfile, the systemd unit in README, the benchmark.
 */
export const recommendedWorkerEnv = { MALLOC_ARENA_MAX: '2' } as const;

let runtimeInstalled = false;

function sdkLogLevel(level: string): LogLevel {
  const upper = level.toUpperCase();
  return (['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const).find((l) => l === upper) ?? 'INFO';
}

/** Routes the SDK's own logs (including activity and workflow log calls) through pino on stderr. */
function installRuntimeLogger(logger: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  Runtime.install({
    logger: new DefaultLogger(sdkLogLevel(logger.level), (entry: LogEntry) => {
      logger[levels[entry.level]]({ ...entry.meta }, entry.message);
    }),
  });
}

export async function createWorker(options: WorkerOptions): Promise<Worker> {
  const logger = options.logger ?? createLogger('lifeboat-worker');
  installRuntimeLogger(logger);
  if (process.platform === 'linux' && process.env.MALLOC_ARENA_MAX === undefined) {
    logger.info(
      { recommended: recommendedWorkerEnv },
      'MALLOC_ARENA_MAX is not set: start the worker with MALLOC_ARENA_MAX=2 to keep its peak memory 50-90 MB lower',
    );
  }
  const connection = await NativeConnection.connect({ address: options.temporalAddress });
  const bundlePath = options.workflowBundlePath ?? process.env.LIFEBOAT_WORKFLOW_BUNDLE;
  const workflows =
    bundlePath && existsSync(bundlePath)
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: join(projectRoot, 'workflows', 'index.ts') };
  return Worker.create({
    connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: createActivities({ configPath: options.configPath, ...(options.env ? { env: options.env } : {}) }),
    ...workflows,
    // Transfers are few and heavy: a handful at a time per worker keeps memory flat on small machines.
    maxConcurrentActivityTaskExecutions: 4,
    shutdownGraceTime: '10 seconds',
    // Progress reaches the server (and the CLI's progress line) every second, not every 12 s.
    maxHeartbeatThrottleInterval: '1 second',
  });
}
