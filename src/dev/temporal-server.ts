import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { freePort, waitForPort } from './ports.js';
import { toolPath } from './tools.js';

/** Search attribute types `temporal server start-dev --search-attribute` accepts. */
export type SearchAttributeType = 'Keyword' | 'Text' | 'Int' | 'Bool' | 'Datetime' | 'Double';

/**
 * The custom search attributes Lifeboat's workflows are tagged with, so runs
 * can be listed per backup target and per runbook kind.
 */
export const lifeboatSearchAttributes = {
  LifeboatTarget: 'Keyword',
  LifeboatKind: 'Keyword',
  LifeboatRequestedBy: 'Keyword',
} as const satisfies Record<string, SearchAttributeType>;

export interface TemporalDevServerOptions {
  /** SQLite file holding the server state; reusing it across starts keeps workflows. */
  dbFile: string;
  /** Front-end gRPC port; a free one is picked when omitted. */
  port?: number;
  /** Web UI port; a free one when omitted; `false` runs headless (no UI). */
  uiPort?: number | false;
  /** Namespace to create (if needed) and wait for; defaults to `default`. */
  namespace?: string;
  /** Custom search attributes to register; defaults to {@link lifeboatSearchAttributes}. */
  searchAttributes?: Record<string, SearchAttributeType>;
  /** Where the server's stdout/stderr go (appended); defaults to `<dbFile>.log`. */
  logFile?: string;
}

export interface TemporalDevServer {
  /** gRPC address for `Connection.connect({ address })`, e.g. `127.0.0.1:7233`. */
  address: string;
  /** Web UI URL, absent when started headless. */
  uiUrl?: string;
  pid: number;
  logFile: string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
}

const startupTimeoutMs = 60_000;
const gracefulStopMs = 10_000;
const host = '127.0.0.1';
/** Auto-picked ports can be taken by someone else between freePort() and bind. */
const maxAttemptsOnPortRace = 3;

/**
 * Starts `temporal server start-dev` (the binary installed by `npm run bootstrap`)
 * and resolves once it really serves: the port is open, the namespace can be
 * described and the requested search attributes are registered.
 *
 * Callers own the returned server and must stop() it; {@link stopOnSignals}
 * covers Ctrl-C. If the parent dies abruptly, the server gets SIGTERM too
 * (Linux parent-death signal, via setpriv when available).
 */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<TemporalDevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (!(error instanceof PortConflictError) || !error.retryable || attempt >= maxAttemptsOnPortRace) throw error;
    }
  }
}

/** Registers SIGINT/SIGTERM/SIGHUP handlers that stop the given servers, then exit 128+signal. Returns an unregister function. */
export function stopOnSignals(...servers: ReadonlyArray<{ stop(): Promise<void> }>): () => void {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const exitCodes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  const handler = (signal: (typeof signals)[number]): void => {
    unregister();
    void Promise.allSettled(servers.map((server) => server.stop())).finally(() => process.exit(exitCodes[signal]));
  };
  const unregister = (): void => {
    for (const signal of signals) process.off(signal, handler);
  };
  for (const signal of signals) process.on(signal, handler);
  return unregister;
}

/** A port was taken; `retryable` when a fresh attempt would pick different ports. */
class PortConflictError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null; error?: Error };

async function startOnce(options: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const dbFile = resolve(options.dbFile);
  const logFile = resolve(options.logFile ?? `${dbFile}.log`);
  const namespace = options.namespace ?? 'default';
  const searchAttributes = options.searchAttributes ?? lifeboatSearchAttributes;
  const port = options.port ?? (await freePort());
  const uiPort = options.uiPort === false ? undefined : (options.uiPort ?? (await freePort()));
  const address = `${host}:${port}`;
  // The readiness probe cannot tell servers apart: with another server already
  // on this port it would report ready while our child dies on "bind: address
  // already in use". So refuse up front.
  const portChecks = [
    { what: 'gRPC', port, picked: options.port === undefined },
    { what: 'UI', port: uiPort, picked: options.uiPort === undefined },
  ];
  for (const { what, port: taken, picked } of portChecks) {
    if (taken !== undefined && (await somethingListensOn(taken))) {
      const message =
        `cannot start the temporal dev server: ${what} port ${host}:${taken} is already in use ` +
        `(another dev server?). Stop that process, or omit the port to have a free one picked.`;
      throw new PortConflictError(message, picked);
    }
  }

  const args = [
    'server', 'start-dev',
    // A developer's ~/.config/temporalio or TEMPORAL_* variables must not change the test server.
    '--disable-config-file', '--disable-config-env',
    '--db-filename', dbFile,
    '--ip', host,
    '--port', String(port),
    ...(uiPort === undefined ? ['--headless'] : ['--ui-port', String(uiPort)]),
    ...(namespace === 'default' ? [] : ['--namespace', namespace]),
    ...Object.entries(searchAttributes).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    '--log-level', 'warn',
  ];

  mkdirSync(dirname(dbFile), { recursive: true });
  mkdirSync(dirname(logFile), { recursive: true });
  // Remember where this run's output starts, so errors quote this run only.
  const logOffset = existsSync(logFile) ? statSync(logFile).size : 0;
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawnDyingWithParent(toolPath('temporal'), args, logFd);
  } finally {
    closeSync(logFd); // the child holds its own copy
  }

  const exited = new Promise<ExitStatus>((done) => {
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', (error) => done({ code: null, signal: null, error }));
  });
  let exitStatus: ExitStatus | undefined;
  void exited.then((status) => {
    exitStatus = status;
    process.off('exit', terminateOnParentExit);
  });
  // Only synchronous work is possible in 'exit'; SIGTERM lets the server close its db cleanly.
  const terminateOnParentExit = (): void => {
    if (!exitStatus) child.kill('SIGTERM');
  };
  process.on('exit', terminateOnParentExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitStatus) return;
      child.kill('SIGTERM');
      const timer = sleep(gracefulStopMs, 'timeout' as const, { ref: false });
      if ((await Promise.race([exited, timer])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    })();
    return stopping;
  };

  const describe = `temporal dev server (${address}, db ${dbFile})`;
  const abort = new AbortController();
  const startedAt = Date.now();
  let startupSettled = false;
  const exitDuringStartup = exited.then(async (status) => {
    if (startupSettled) return; // a later exit (e.g. our own stop()) is not a startup failure
    const log = await readRunLog(logFile, logOffset);
    const how = status.error ? `failed to start: ${status.error.message}` : `exited during startup (${formatExit(status)})`;
    const message = `${describe} ${how}. Server log ${logFile}:\n${logTail(log)}`;
    // The CLI also binds HTTP and metrics ports it picks itself, so a bind
    // failure is worth another attempt even when the caller fixed our ports.
    // The whole log is searched: a panic's stack pushes its cause out of any tail.
    throw /address already in use/i.test(log) ? new PortConflictError(message, true) : new Error(message);
  });
  // Promise.race reports this rejection; the no-op handler keeps a rejection
  // that loses the race from becoming an unhandled one.
  exitDuringStartup.catch(() => undefined);
  try {
    await Promise.race([
      waitUntilServing({ address, port, namespace, searchAttributeNames: Object.keys(searchAttributes), signal: abort.signal }),
      exitDuringStartup,
    ]);
    startupSettled = true;
  } catch (error) {
    startupSettled = true;
    abort.abort();
    await stop();
    if (error instanceof WaitTimeoutError) {
      const tail = logTail(await readRunLog(logFile, logOffset));
      throw new Error(
        `${describe} did not become ready within ${(Date.now() - startedAt) / 1000} s (last check: ${error.message}). ` +
          `Server log ${logFile}:\n${tail}`,
      );
    }
    throw error;
  }

  return {
    address,
    ...(uiPort === undefined ? {} : { uiUrl: `http://${host}:${uiPort}` }),
    pid: child.pid ?? -1,
    logFile,
    stop,
  };
}

/**
 * Spawns so the child gets SIGTERM when this process dies, even by SIGKILL:
 * setpriv sets the Linux parent-death signal and then execs the command, so
 * the pid is the server's own. Elsewhere it is a plain spawn.
 */
function spawnDyingWithParent(command: string, args: string[], logFd: number): ChildProcess {
  const setpriv = process.platform === 'linux' ? findOnPath('setpriv') : undefined;
  const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, args];
  return spawn(file, argv, { stdio: ['ignore', logFd, logFd] });
}

function findOnPath(program: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function somethingListensOn(port: number): Promise<boolean> {
  try {
    await waitForPort(port, host, 0);
    return true;
  } catch {
    return false;
  }
}

class WaitTimeoutError extends Error {}

async function waitUntilServing(params: {
  address: string;
  port: number;
  namespace: string;
  searchAttributeNames: string[];
  signal: AbortSignal;
}): Promise<void> {
  const deadline = Date.now() + startupTimeoutMs;
  let lastProblem = 'port not open yet';
  while (!params.signal.aborted) {
    if (Date.now() > deadline) throw new WaitTimeoutError(lastProblem);
    try {
      // Short waits so an aborted startup does not leave a long poll behind.
      await waitForPort(params.port, host, 500);
      lastProblem = await checkServing(params);
      if (!lastProblem) return;
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    await sleep(200);
  }
}

/** Returns '' when the server answers for the namespace and knows all search attributes, else what is missing. */
async function checkServing(params: { address: string; namespace: string; searchAttributeNames: string[] }): Promise<string> {
  const connection = await Connection.connect({ address: params.address, connectTimeout: '2s' });
  try {
    await connection.workflowService.describeNamespace({ namespace: params.namespace });
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: params.namespace });
    const missing = params.searchAttributeNames.filter((name) => !(name in (customAttributes ?? {})));
    return missing.length ? `search attributes not registered yet: ${missing.join(', ')}` : '';
  } finally {
    await connection.close();
  }
}

/** What the server wrote to its log since fromOffset (this run's output). */
async function readRunLog(logFile: string, fromOffset: number): Promise<string> {
  try {
    return (await readFile(logFile)).subarray(fromOffset).toString('utf8');
  } catch (error) {
    return `(could not read the log: ${error instanceof Error ? error.message : String(error)})`;
  }
}

/** The last lines of a log, and a Go panic's cause, which sits on its first line above a long stack. */
function logTail(log: string, lines = 40): string {
  const all = log.trimEnd().split('\n');
  const tail = all.slice(-lines);
  const panic = all.find((line) => line.startsWith('panic:') || line.startsWith('fatal error:'));
  if (panic && !tail.includes(panic)) tail.unshift(panic, '...');
  return tail.join('\n') || '(empty)';
}

function formatExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}
