/**
 * Entry point of `npm test`.
 *
 * Starts one shared test stack (Temporal dev server, S3 server, workflow
 * bundle), hands it to the test files through LIFEBOAT_TEST_* environment
 * variables (see test/helpers/stack.ts), runs every test/**\/*.test.ts file
 * with node's test runner, one file at a time, then stops the stack and exits
 * with the test runner's exit code.
 *
 *   npm test                                  all test files
 *   npm test -- test/unit test/x.test.ts      only files under these paths
 *   npm test -- --test-name-pattern=restore   options starting with "-" go to `node --test`
 *                                             (use the --option=value form)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { projectRoot } from '../src/dev/tools.js';
import { startTestServers, testStackToEnv, type StartedTestServers } from './helpers/stack.js';

const testDir = join(projectRoot, 'test');
const bundleFile = join(projectRoot, '.lifeboat', 'test', 'workflow-bundle.js');
const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function say(message: string): void {
  process.stderr.write(`test/run: ${message}\n`);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const nodeTestOptions = args.filter((arg) => arg.startsWith('-'));
  const filters = args.filter((arg) => !arg.startsWith('-')).map((arg) => resolve(arg));
  const files = selectTestFiles(await findTestFiles(testDir), filters);
  if (files.length === 0) {
    say(`no *.test.ts files under ${relative(process.cwd(), testDir) || '.'}; nothing to run`);
    return 1;
  }

  // Ctrl-C reaches the whole process group (the test process and the servers
  // too); a signal sent to us alone is forwarded. Either way we fall through
  // to the cleanup below. A second signal means "now": the servers' exit hooks
  // still SIGTERM them.
  let interruptedBy: NodeJS.Signals | undefined;
  let testProcess: ChildProcess | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interruptedBy) process.exit(exitCodeForSignal(signal));
    interruptedBy = signal;
    say(`${signal}: stopping the tests and the test stack (again to quit at once)`);
    testProcess?.kill(signal);
  };
  for (const signal of stopSignals) process.on(signal, onSignal);

  const stateDir = await mkdtemp(join(tmpdir(), 'lifeboat-test-run-'));
  let servers: StartedTestServers | undefined;
  let exitCode = 1;
  try {
    const startedAt = Date.now();
    servers = await startTestServers({ temporal: true, s3: true, workflowBundle: true, stateDir, bundleFile });
    const { temporalAddress, s3, workflowBundlePath } = servers;
    if (temporalAddress === undefined) throw new Error('internal error: the shared stack has no Temporal server');
    say(
      `test stack ready in ${seconds(Date.now() - startedAt)}: temporal ${temporalAddress}, ` +
        `s3 ${s3?.endpoint ?? 'none'}, workflow bundle ${workflowBundlePath ? relative(projectRoot, workflowBundlePath) : 'none (no workflows/index.ts)'}`,
    );
    if (interruptedBy) return exitCodeForSignal(interruptedBy);

    const env = {
      // Workers log errors only (the suite provokes many expected failures), and the AWS SDK's
      // Node 22 notice stays out of the report.
      LIFEBOAT_LOG_LEVEL: 'error',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...process.env,
      ...testStackToEnv({
        temporalAddress,
        ...(workflowBundlePath === undefined ? {} : { workflowBundlePath }),
        ...(s3 === undefined ? {} : { s3 }),
      }),
    };
    testProcess = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...nodeTestOptions, ...files],
      { cwd: projectRoot, env, stdio: 'inherit' },
    );
    exitCode = await exitCodeOf(testProcess);
    return exitCode;
  } finally {
    await servers?.close();
    for (const signal of stopSignals) process.off(signal, onSignal);
    if (exitCode === 0) {
      await rm(stateDir, { recursive: true, force: true });
    } else {
      say(`kept the test servers' state and logs in ${stateDir}`);
    }
  }
}

/** All *.test.ts files below dir, sorted, as absolute paths (node 20's --test does not expand globs). */
async function findTestFiles(dir: string): Promise<string[]> {
  const paths = await readdir(dir, { recursive: true });
  return paths
    .filter((path) => path.endsWith('.test.ts'))
    .map((path) => join(dir, path))
    .sort();
}

/** Files equal to or below any filter path; every filter must select something (a typo should not pass silently). */
function selectTestFiles(files: string[], filters: string[]): string[] {
  if (filters.length === 0) return files;
  const selects = (filter: string, file: string): boolean => file === filter || file.startsWith(filter + sep);
  for (const filter of filters) {
    if (!files.some((file) => selects(filter, file))) {
      throw new Error(`no test files match ${relative(process.cwd(), filter)}: pass *.test.ts files or folders under test/`);
    }
  }
  return files.filter((file) => filters.some((filter) => selects(filter, file)));
}

function exitCodeOf(child: ChildProcess): Promise<number> {
  return new Promise((done, fail) => {
    child.once('error', (error) => fail(new Error(`could not run node --test: ${error.message}`, { cause: error })));
    child.once('exit', (code, signal) => done(code ?? exitCodeForSignal(signal ?? 'SIGTERM')));
  });
}

function exitCodeForSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 15);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say(error instanceof Error ? error.message : String(error));
    process.exit(1);
  },
);
