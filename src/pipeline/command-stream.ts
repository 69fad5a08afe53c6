import { stat } from 'node:fs/promises';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import { LifeboatError } from '../errors.js';

/**
 * A program whose stdout is a backup's payload (an export: `git bundle create -`, `pg_dumpall`,
 * `redis-cli --rdb -`), or whose stdin receives one (a restore): started without a shell, with an
 * environment built from the worker's PATH and locale plus what the config gives it (secrets by
 * reference only), a time limit, and the last lines of its stderr kept for the error message (a
 * bounded tail: a chatty program cannot grow the worker's memory). The payload itself is a stream
 * and never buffered.
 */

/** How many bytes of a program's stderr are kept for its error message. */
const stderrTailBytes = 8 << 10;

/** The last lines a program printed, for an error message. */
export function stderrTail(stderr: string, lines = 20): string {
  return stderr
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-lines)
    .join('\n');
}

/** A program as the config describes it. */
export interface CommandSpec {
  /** Program and arguments, run without a shell. */
  argv: string[];
  cwd?: string | undefined;
  /** Plain (non-secret) variables. */
  env?: Record<string, string> | undefined;
  /** NAME -> the worker's variable whose value NAME gets (a reference: the value never is in config or history). */
  envFrom?: Record<string, string> | undefined;
  timeoutSeconds: number;
}

/** argv as one line, quoted where a word needs it (for messages and manifests). */
export function describeArgv(argv: readonly string[]): string {
  return argv.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** What every program inherits from the worker: where programs are, the locale, the home and temp dirs. Nothing else (no credentials). */
const inheritedVariables = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'USER', 'LOGNAME'];

/**
 * The environment of a configured program: the worker's PATH, HOME, locale and TMPDIR, `env`,
 * and every `envFrom` reference resolved (a missing one is CredentialsUnavailable, naming the
 * variable, never a value).
 */
export function commandEnvironment(spec: Pick<CommandSpec, 'env' | 'envFrom'>, workerEnv: NodeJS.ProcessEnv, what: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of inheritedVariables) {
    const value = workerEnv[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  Object.assign(env, spec.env ?? {});
  for (const [name, source] of Object.entries(spec.envFrom ?? {})) {
    const value = workerEnv[source];
    if (value === undefined) {
      throw new LifeboatError(
        'CredentialsUnavailable',
        `the environment variable ${source} (envFrom.${name} of ${what}) is not set in the worker's environment`,
        `Set ${source} where the worker runs, and start the run again`,
      );
    }
    env[name] = value;
  }
  return env;
}

/** How a program ended. */
export interface CommandOutcome {
  exitCode: number | undefined;
  signal: string | undefined;
  timedOut: boolean;
  cancelled: boolean;
  /** It could not be started at all (no such program, bad cwd): the reason. */
  spawnError: string | undefined;
  stderrTail: string;
  durationMs: number;
}

export function succeeded(outcome: CommandOutcome): boolean {
  return outcome.exitCode === 0 && !outcome.timedOut && !outcome.cancelled && outcome.spawnError === undefined && outcome.signal === undefined;
}

/** "exited with status 2" / "was killed by SIGKILL" / "timed out after 30 s" / "could not start: ...". */
export function describeOutcome(outcome: CommandOutcome, timeoutSeconds: number): string {
  if (outcome.spawnError !== undefined) return `could not start (${outcome.spawnError})`;
  if (outcome.timedOut) return `timed out after ${timeoutSeconds} s (stopped)`;
  if (outcome.signal !== undefined) return `was killed by ${outcome.signal}`;
  return `exited with status ${outcome.exitCode ?? '?'}`;
}

/** CommandFailed for a program that did not succeed: how it ended and its stderr's tail. */
export function commandFailure(what: string, spec: CommandSpec, outcome: CommandOutcome, hint: string): LifeboatError {
  const tail = outcome.stderrTail ? `:\n${outcome.stderrTail}` : ' (nothing on stderr)';
  const notFound = outcome.spawnError !== undefined && /ENOENT/.test(outcome.spawnError);
  return new LifeboatError(
    'CommandFailed',
    `${what} \`${describeArgv(spec.argv)}\` ${describeOutcome(outcome, spec.timeoutSeconds)}${outcome.spawnError === undefined ? tail : ''}`,
    notFound ? `Check that ${spec.argv[0]} is installed where the worker runs (and on its PATH)${spec.cwd ? ` and that ${spec.cwd} exists` : ''}. ${hint}` : hint,
  );
}

export interface RunningCommand {
  pid: number | undefined;
  /** The program's stdout (startExport) — null for startImport. */
  stdout: Readable | null;
  /** The program's stdin (startImport) — null for startExport. */
  stdin: Writable | null;
  /** Settles when the program has ended (never rejects): how it ended. */
  done: Promise<CommandOutcome>;
  /** The stderr tail so far. */
  stderr(): string;
  /** Stops the program and its process group (SIGTERM, then SIGKILL after 5 s); `done` settles once it is gone. */
  kill(): void;
}

type Direction = 'export' | 'import';

async function checkWorkingDirectory(spec: CommandSpec, what: string): Promise<void> {
  if (!spec.cwd) return;
  const info = await stat(spec.cwd).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new LifeboatError('CommandFailed', `the working directory ${spec.cwd} of ${what} does not exist (or is not a directory)`, 'Fix cwd in the target\'s config; nothing was run');
  }
}

interface StartOptions {
  signal?: AbortSignal | undefined;
  /**
   * An export's stdout: a stream backed by a descriptor (another child's stdin), handed to the
   * program as is, so its output goes straight there and `stdout` is null.
   */
  stdoutTo?: Writable | undefined;
}

function start(direction: Direction, spec: CommandSpec, env: Record<string, string>, options: StartOptions): RunningCommand {
  const started = Date.now();
  // A process group of its own: a time limit or a cancellation stops the program and everything it
  // started (`sh -c "a | b"`, a `sleep` holding stdout open), not just the first process.
  const child: ResultPromise = execa(spec.argv[0]!, spec.argv.slice(1), {
    env,
    extendEnv: false,
    ...(spec.cwd ? { cwd: spec.cwd } : {}),
    detached: true,
    reject: false,
    buffer: false,
    encoding: 'buffer',
    stdin: direction === 'import' ? 'pipe' : 'ignore',
    stdout: direction === 'export' ? (options.stdoutTo ?? 'pipe') : 'ignore',
    stderr: 'pipe',
  });
  let timedOut = false;
  let cancelled = false;
  let exited = false;
  const signalGroup = (signal: NodeJS.Signals) => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone already
    }
  };
  let forceKill: NodeJS.Timeout | undefined;
  const stop = () => {
    signalGroup('SIGTERM');
    forceKill ??= setTimeout(() => signalGroup('SIGKILL'), 5000);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, spec.timeoutSeconds * 1000);
  const onAbort = () => {
    cancelled = true;
    stop();
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-stderrTailBytes);
  });
  // EPIPE on stdin means the program stopped reading: its exit status says why.
  child.stdin?.on('error', () => undefined);
  const settle = () => {
    exited = true;
    clearTimeout(timer);
    clearTimeout(forceKill);
    options.signal?.removeEventListener('abort', onAbort);
  };
  const done = child.then(
    (result): CommandOutcome => {
      settle();
      const ran = result.exitCode !== undefined || result.signal !== undefined;
      return {
        exitCode: result.exitCode,
        signal: result.signal,
        timedOut,
        cancelled,
        spawnError: ran ? undefined : (result.originalMessage ?? result.shortMessage),
        stderrTail: stderrTail(tail),
        durationMs: Date.now() - started,
      };
    },
    (error: unknown): CommandOutcome => {
      settle();
      return { exitCode: undefined, signal: undefined, timedOut, cancelled, spawnError: (error as Error).message, stderrTail: stderrTail(tail), durationMs: Date.now() - started };
    },
  );
  // execa discards output nobody reads by the time the program exits: a pass-through takes it at
  // once (and holds the program back by backpressure until the pipeline reads).
  let stdout: PassThrough | null = null;
  if (direction === 'export' && child.stdout && !options.stdoutTo) {
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    child.stdout.on('error', (error) => out.destroy(error));
    child.stdout.pipe(out);
    stdout = out;
  }
  return {
    pid: child.pid,
    stdout,
    stdin: direction === 'import' ? child.stdin : null,
    done,
    stderr: () => stderrTail(tail),
    kill: stop,
  };
}

/** Starts a program whose stdout is read as a stream, or goes to `stdoutTo` (stdin: nothing). */
export async function startExport(spec: CommandSpec, env: Record<string, string>, what: string, options: StartOptions = {}): Promise<RunningCommand> {
  await checkWorkingDirectory(spec, what);
  return start('export', spec, env, options);
}

/** Starts a program that reads a stream on its stdin (its stdout is discarded). */
export async function startImport(spec: CommandSpec, env: Record<string, string>, what: string, options: { signal?: AbortSignal | undefined } = {}): Promise<RunningCommand> {
  await checkWorkingDirectory(spec, what);
  return start('import', spec, env, options);
}

/** Runs a program to its end (stdin: nothing, stdout discarded); its outcome. */
export async function runCommand(spec: CommandSpec, env: Record<string, string>, what: string, options: { signal?: AbortSignal | undefined } = {}): Promise<CommandOutcome> {
  await checkWorkingDirectory(spec, what);
  const running = start('import', spec, env, options);
  running.stdin?.end();
  return running.done;
}
