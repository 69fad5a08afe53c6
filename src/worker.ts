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
    // Transfers are few and heavy: two at a time per worker keeps memory flat on small machines.
    maxConcurrentActivityTaskExecutions: 4,
    shutdownGraceTime: '10 seconds',
    // Progress reaches the server (and the CLI's progress line) every second, not every 12 s.
    maxHeartbeatThrottleInterval: '1 second',
  });
}
