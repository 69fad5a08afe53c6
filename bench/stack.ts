/**
 * The servers and the worker the benchmark measures: a headless Temporal dev server, a versitygw
 * S3 server, a prebuilt workflow bundle (so no bundling is timed) and Lifeboat workers running as
 * child processes (`node bin/lifeboat.js --config <file> worker`), so that their memory can be
 * read from /proc and nothing of the benchmark's own process counts against them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { stringify } from 'yaml';
import { sqliteTargetSchema, type SqliteTargetConfig } from '../src/kinds/sqlite/config.js';
import { startS3Server, type S3Server } from '../src/dev/s3-server.js';
import { startTemporalDevServer, type TemporalDevServer } from '../src/dev/temporal-server.js';
import { recommendedWorkerEnv, recommendedWorkerNodeFlags } from '../src/worker.js';
import { projectRoot } from '../src/dev/tools.js';

export const benchBucket = 'lifeboat-bench';
export const s3AccessKeyEnv = 'LIFEBOAT_BENCH_S3_ACCESS_KEY_ID';
export const s3SecretKeyEnv = 'LIFEBOAT_BENCH_S3_SECRET_ACCESS_KEY';

export interface BenchS3 {
  server: S3Server;
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface BenchStack {
  temporal: TemporalDevServer;
  s3: BenchS3;
  bundlePath: string;
  close(): Promise<void>;
}

/** Starts Temporal and S3 in parallel and bundles the workflows; everything lives under dir. */
export async function startBenchStack(dir: string): Promise<BenchStack> {
  await mkdir(dir, { recursive: true });
  const accessKeyId = `bench${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  const bundlePath = join(dir, 'workflow-bundle.js');
  const [temporal, s3, bundle] = await Promise.allSettled([
    startTemporalDevServer({ dbFile: join(dir, 'temporal', 'temporal.db'), uiPort: false }),
    startS3Server({ dataDir: join(dir, 's3'), accessKeyId, secretAccessKey, buckets: [benchBucket] }),
    bundleWorkflowCode({ workflowsPath: join(projectRoot, 'workflows', 'index.ts'), logger: new DefaultLogger('WARN') }).then(({ code }) =>
      writeFile(bundlePath, code),
    ),
  ]);
  if (temporal.status === 'rejected' || s3.status === 'rejected' || bundle.status === 'rejected') {
    await Promise.allSettled([temporal, s3].flatMap((r) => (r.status === 'fulfilled' ? [r.value.stop()] : [])));
    const reasons = [temporal, s3, bundle].flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message ?? r.reason)] : []));
    throw new Error(`could not start the benchmark stack:\n- ${reasons.join('\n- ')}`);
  }
  return {
    temporal: temporal.value,
    s3: { server: s3.value, endpoint: s3.value.endpoint, bucket: benchBucket, accessKeyId, secretAccessKey },
    bundlePath,
    close: async () => {
      await Promise.allSettled([temporal.value.stop(), s3.value.stop()]);
    },
  };
}

export interface BenchConfigOptions {
  path: string;
  databasePath: string;
  fsRepositoryPath: string;
  s3: BenchS3;
  /** Key prefix in the bucket, so configs with and without encryption do not share backups. */
  s3Prefix: string;
  temporalAddress: string;
  taskQueue: string;
  encryptionKeyFile?: string;
}

/** Target names in every benchmark config. */
export const benchTargets = {
  s3: 'bench-s3',
  fs: 'bench-fs',
  both: 'bench-both',
  /** The same database with the other SQLite checks than the config defaults, for comparison. */
  s3OtherCheck: 'bench-s3-other-check',
  fsOtherCheck: 'bench-fs-other-check',
} as const;

export type Checks = SqliteTargetConfig['checks'];
export type CheckKind = Checks['backup'];

/** The checks a target gets when its config names none (the schema's defaults). */
export function defaultChecks(): Checks {
  return sqliteTargetSchema.parse({ type: 'sqlite', path: 'db', repositories: ['r'] }).checks;
}

const otherCheck = (kind: CheckKind): CheckKind => (kind === 'integrity_check' ? 'quick_check' : 'integrity_check');

/** The opposite of each default (backup and restore), for the informational rows. */
export function otherChecks(): Checks {
  const defaults = defaultChecks();
  return { backup: otherCheck(defaults.backup), restore: otherCheck(defaults.restore) };
}

/**
 * A Lifeboat config with one fs repository (on the same disk as the database) and one S3
 * repository (the local versitygw), default compression (zstd level 3, 2 threads), and targets
 * that back the same database up to S3 only, to fs only, and to both with the default checks;
 * plus S3-only and fs-only targets with the other check than the default for backup and restore.
 */
export async function writeBenchConfig(options: BenchConfigOptions): Promise<void> {
  const target = (repositories: string[], checks?: Checks) => ({
    type: 'sqlite',
    path: options.databasePath,
    repositories,
    ...(checks ? { checks } : {}),
  });
  const config = {
    repositories: {
      fs: { type: 'fs', path: options.fsRepositoryPath },
      s3: {
        type: 's3',
        endpoint: options.s3.endpoint,
        bucket: options.s3.bucket,
        prefix: options.s3Prefix,
        accessKeyIdEnv: s3AccessKeyEnv,
        secretAccessKeyEnv: s3SecretKeyEnv,
      },
    },
    targets: {
      [benchTargets.s3]: target(['s3']),
      [benchTargets.fs]: target(['fs']),
      [benchTargets.both]: target(['fs', 's3']),
      [benchTargets.s3OtherCheck]: target(['s3'], otherChecks()),
      [benchTargets.fsOtherCheck]: target(['fs'], otherChecks()),
    },
    ...(options.encryptionKeyFile ? { encryption: { keyFile: options.encryptionKeyFile } } : {}),
    temporal: { address: options.temporalAddress, namespace: 'default', taskQueue: options.taskQueue },
  };
  await writeFile(options.path, stringify(config));
}

export interface WorkerProcess {
  pid: number;
  taskQueue: string;
  logFile: string;
  /** SIGTERM (the worker drains and exits), SIGKILL after 15 s. Idempotent. */
  stop(): Promise<void>;
}

const workerReadyTimeoutMs = 60_000;

/** Starts `lifeboat worker` as a child process and resolves once it polls its task queue. */
export async function startWorkerProcess(options: {
  configPath: string;
  taskQueue: string;
  temporalAddress: string;
  bundlePath: string;
  s3: BenchS3;
  logFile: string;
}): Promise<WorkerProcess> {
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const child: ChildProcess = spawn(process.execPath, [...recommendedWorkerNodeFlags, join(projectRoot, 'bin', 'lifeboat.js'), '--config', options.configPath, 'worker'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: options.temporalAddress,
      LIFEBOAT_TASK_QUEUE: options.taskQueue,
      LIFEBOAT_WORKFLOW_BUNDLE: options.bundlePath,
      LIFEBOAT_LOG_LEVEL: 'warn',
      // As deployed (Dockerfile, systemd unit in docs/getting-started.md): see recommendedWorkerEnv and recommendedWorkerNodeFlags.
      ...recommendedWorkerEnv,
      [s3AccessKeyEnv]: options.s3.accessKeyId,
      [s3SecretKeyEnv]: options.s3.secretAccessKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log, { end: false });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
    child.once('error', (error) => resolve(`could not start: ${error.message}`));
  });
  let exitInfo: string | undefined;
  void exited.then((info) => (exitInfo = info));
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);

  await new Promise<void>((resolve, reject) => {
    let seen = '';
    let ready = false;
    const timer = setTimeout(() => reject(new Error(`the worker did not start polling within ${workerReadyTimeoutMs} ms; see ${options.logFile}`)), workerReadyTimeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (ready) return;
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (seen.includes('worker polling task queue')) {
        ready = true;
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((info) => {
      clearTimeout(timer);
      reject(new Error(`the worker ${info} before polling; see ${options.logFile}`));
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid ?? -1,
    taskQueue: options.taskQueue,
    logFile: options.logFile,
    stop: () =>
      (stopping ??= (async () => {
        process.off('exit', killOnExit);
        if (exitInfo === undefined) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(timer);
        }
        log.end();
      })()),
  };
}
