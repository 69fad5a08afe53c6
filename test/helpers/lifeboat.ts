import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import Database from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startRunbook, type RunbookKind, type RunbookTypes, type TemporalSettings } from '../../src/client.js';
import { projectRoot } from '../../src/dev/tools.js';
import { createWorker } from '../../src/worker.js';
import { testStack, type TestStack } from './stack.js';

/**
 * A Lifeboat installation for one test file: a scratch directory, a config with an fs and an S3
 * repository, its own task queue on the shared Temporal server, and (optionally) an in-process worker.
 */
export interface Lifeboat {
  dir: string;
  configPath: string;
  stack: TestStack;
  client: Client;
  settings: TemporalSettings;
  /** Env for child processes: the S3 credentials under the names the config references. */
  env: Record<string, string>;
  writeConfig(config: Record<string, unknown>): Promise<void>;
  /** Builds a config with repositories "local" (fs) and "s3", and the given targets. */
  baseConfig(targets: Record<string, Record<string, unknown>>, extra?: Record<string, unknown>): Record<string, unknown>;
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  start<K extends RunbookKind>(kind: K, input: RunbookTypes[K]['input']): Promise<WorkflowHandle>;
  run<K extends RunbookKind>(kind: K, input: RunbookTypes[K]['input']): Promise<RunbookTypes[K]['result']>;
  /** Runs `lifeboat ...` as a child process with this installation's config and env. */
  /** The lifeboat CLI against this stack's config; cwd: where the operator runs it (default: this process's). */
  cli(args: string[], options?: { env?: Record<string, string>; cwd?: string }): ResultPromise<{ reject: false; all: true }>;
  /** `lifeboat worker [args]` as a child process (for kill tests); close() kills the ones still running. */
  spawnWorker(extraEnv?: Record<string, string>, args?: string[]): WorkerProcess;
  /** Kills every worker process spawned so far, so the next one is alone on the task queue. */
  killSpawnedWorkers(): Promise<void>;
  close(): Promise<void>;
}

// Test output stays readable: workers log errors only (children inherit this).
process.env.LIFEBOAT_LOG_LEVEL ??= 'error';

export interface WorkerProcess {
  pid: number | undefined;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the process has ended, with everything it printed. */
  exited: Promise<{ exitCode: number | undefined; signal: string | undefined; output: string }>;
}

export const s3AccessKeyEnv = 'LIFEBOAT_TEST_REPO_ACCESS_KEY_ID';
export const s3SecretKeyEnv = 'LIFEBOAT_TEST_REPO_SECRET_ACCESS_KEY';

export async function createLifeboat(name: string, options: { stack?: TestStack } = {}): Promise<Lifeboat> {
  const stack = options.stack ?? (await testStack());
  const dir = await mkdtemp(join(tmpdir(), `lifeboat-${name}-`));
  const configPath = join(dir, 'lifeboat.config.yaml');
  const taskQueue = `lifeboat-test-${name}-${randomBytes(3).toString('hex')}`;
  const settings: TemporalSettings = { address: stack.temporalAddress, namespace: 'default', taskQueue };
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const client = new Client({ connection, namespace: 'default' });
  const s3 = stack.s3;
  const env: Record<string, string> = s3 ? { [s3AccessKeyEnv]: s3.accessKeyId, [s3SecretKeyEnv]: s3.secretAccessKey } : {};
  Object.assign(process.env, env);
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  const children: Array<{ kill(signal?: NodeJS.Signals): boolean }> = [];

  const lifeboat: Lifeboat = {
    dir,
    configPath,
    stack,
    client,
    settings,
    env,
    async writeConfig(config) {
      await writeFile(configPath, stringify(config));
    },
    baseConfig(targets, extra = {}) {
      return {
        repositories: {
          local: { type: 'fs', path: join(dir, 'repository') },
          ...(s3
            ? { s3: { type: 's3', endpoint: s3.endpoint, bucket: s3.bucket, prefix: `${taskQueue}/`, accessKeyIdEnv: s3AccessKeyEnv, secretAccessKeyEnv: s3SecretKeyEnv, partSizeMiB: 5 } }
            : {}),
        },
        targets,
        temporal: { address: stack.temporalAddress, namespace: 'default', taskQueue },
        ...extra,
      };
    },
    async startWorker() {
      worker = await createWorker({
        temporalAddress: stack.temporalAddress,
        namespace: 'default',
        taskQueue,
        configPath,
        ...(stack.workflowBundlePath ? { workflowBundlePath: stack.workflowBundlePath } : {}),
      });
      running = worker.run();
    },
    async stopWorker() {
      if (worker && worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      worker = undefined;
    },
    start(kind, input) {
      return startRunbook(client, settings, kind, input);
    },
    async run(kind, input) {
      const handle = await startRunbook(client, settings, kind, input);
      return handle.result();
    },
    cli(args, cliOptions = {}) {
      return execa(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', configPath, ...args], {
        reject: false,
        all: true,
        env: { ...env, TEMPORAL_ADDRESS: stack.temporalAddress, LIFEBOAT_TASK_QUEUE: taskQueue, ...cliOptions.env },
        ...(cliOptions.cwd ? { cwd: cliOptions.cwd } : {}),
      });
    },
    spawnWorker(extraEnv = {}, args = []) {
      const child = execa(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', configPath, 'worker', ...args], {
        reject: false,
        all: true,
        env: {
          ...env,
          TEMPORAL_ADDRESS: stack.temporalAddress,
          LIFEBOAT_TASK_QUEUE: taskQueue,
          ...(stack.workflowBundlePath ? { LIFEBOAT_WORKFLOW_BUNDLE: stack.workflowBundlePath } : {}),
          ...extraEnv,
        },
      });
      children.push(child);
      const exited = child.then((result) => ({ exitCode: result.exitCode, signal: result.signal, output: String(result.all ?? '') }));
      return { pid: child.pid, kill: (signal = 'SIGTERM') => void child.kill(signal), exited };
    },
    async killSpawnedWorkers() {
      for (const child of children) child.kill('SIGKILL');
      await Promise.all(children);
      children.length = 0;
    },
    async close() {
      await lifeboat.killSpawnedWorkers();
      await lifeboat.stopWorker();
      await connection.close();
      if (!options.stack) await stack.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return lifeboat;
}

/**
 * A SQLite database in WAL mode with an `events` table of about sizeMiB, mixing compressible text
 * and random bytes like real application data. Returns the number of rows.
 */
export function createDatabase(path: string, sizeMiB: number, options: { journalMode?: 'wal' | 'delete' } = {}): number {
  const db = new Database(path);
  try {
    db.pragma(`journal_mode = ${options.journalMode ?? 'wal'}`);
    db.pragma('synchronous = OFF');
    db.exec('CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, note TEXT NOT NULL, payload BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO events (kind, note, payload) VALUES (?, ?, ?)');
    const kinds = ['order', 'refund', 'login', 'logout', 'view'];
    let rows = 0;
    const targetBytes = sizeMiB * 2 ** 20;
    while ((db.pragma('page_count', { simple: true }) as number) * 4096 < targetBytes) {
      db.transaction(() => {
        for (let i = 0; i < 2000; i++, rows++) {
          insert.run(kinds[rows % 5], `user ${rows % 9973} did ${kinds[(rows * 7) % 5]} on item ${rows % 100_003}; ${'lorem ipsum dolor sit amet '.repeat(1 + (rows % 4))}`, randomBytes(48));
        }
      })();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    return rows;
  } finally {
    db.close();
  }
}

/** Content fingerprint of a database: rows and a hash over them, independent of page layout. */
export function fingerprint(path: string, table = 'events'): { rows: number; sha256: string } {
  const db = new Database(path, { readonly: true });
  try {
    const digest = createHash('sha256');
    let rows = 0;
    for (const row of db.prepare(`SELECT * FROM ${table} ORDER BY rowid`).raw(true).iterate() as Iterable<unknown[]>) {
      digest.update(JSON.stringify(row, (_key, value: unknown) => (Buffer.isBuffer(value) ? value.toString('base64') : value)));
      rows++;
    }
    return { rows, sha256: digest.digest('hex') };
  } finally {
    db.close();
  }
}

/** Every event type of a workflow's history, and activity types scheduled, for "ran exactly once" checks. */
export async function activityRuns(client: Client, workflowId: string): Promise<{ scheduled: Record<string, number>; attempts: Record<string, number> }> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled: Record<string, number> = {};
  const typeById = new Map<string, string>();
  const attempts: Record<string, number> = {};
  for (const event of history.events ?? []) {
    const attributes = event.activityTaskScheduledEventAttributes;
    if (attributes?.activityType?.name) {
      const type = attributes.activityType.name;
      scheduled[type] = (scheduled[type] ?? 0) + 1;
      typeById.set(String(event.eventId), type);
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const type = typeById.get(String(started.scheduledEventId)) ?? '?';
      attempts[type] = Math.max(attempts[type] ?? 0, started.attempt ?? 1);
    }
  }
  return { scheduled, attempts };
}
