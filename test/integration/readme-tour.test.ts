import assert from 'node:assert/strict';
import type { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { demoCredentialEnv, prepareDemo } from '../../src/dev/demo.js';
import { projectRoot } from '../../src/dev/tools.js';
import { createWorker } from '../../src/worker.js';
import { fencedBlocks, type FencedBlock } from '../helpers/markdown.js';
import { testStack, type TestStack } from '../helpers/stack.js';

/**
 * The README's five-minute tour, run as written: its ```sh block is read from README.md (so editing
 * the README changes what is tested) and run by bash in a directory laid out like a checkout after
 * `npm start`: .lifeboat/dev holds the demo `lifeboat dev` makes (src/dev/demo.ts), against the
 * test stack's S3 server, with a worker on a task queue of its own. `npx lifeboat` is the real CLI
 * (bin/lifeboat.js); any command that exits non-zero fails the test.
 */
// Test output stays readable: the in-process worker logs errors only.
process.env.LIFEBOAT_LOG_LEVEL ??= 'error';

const tourMarker = '<!-- the five-minute tour: test/integration/readme-tour.test.ts runs the commands of the next block -->';

function tourBlock(): FencedBlock {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  const at = readme.indexOf(tourMarker);
  assert.ok(at >= 0, `README.md lacks the line ${tourMarker} before the tour's \`\`\`sh block`);
  const markerLine = readme.slice(0, at).split('\n').length;
  const block = fencedBlocks(readme, 'README.md').find((candidate) => candidate.line > markerLine);
  assert.ok(block && block.line === markerLine + 1 && block.language === 'sh', `README.md:${markerLine + 1}: the tour marker must be followed by a \`\`\`sh block`);
  return block;
}

const tour = tourBlock();
const commands = tour.body.split('\n').filter((line) => /^\s*npx lifeboat\b/.test(line));

let stack: TestStack;
let root: string;
let worker: Worker;
let running: Promise<void>;
const taskQueue = `lifeboat-test-tour-${randomBytes(3).toString('hex')}`;

before(async () => {
  stack = await testStack();
  const s3 = stack.s3;
  if (!s3) throw new Error('internal error: the test stack has no S3 server');
  root = await mkdtemp(join(tmpdir(), 'lifeboat-tour-'));
  const demoDir = join(root, '.lifeboat', 'dev');
  await mkdir(demoDir, { recursive: true });
  // The demo reuses an existing credentials file: these are the test S3 server's.
  await writeFile(join(demoDir, 's3-credentials.env'), `${demoCredentialEnv.accessKeyId}=${s3.accessKeyId}\n${demoCredentialEnv.secretAccessKey}=${s3.secretAccessKey}\n`, { mode: 0o600 });
  const demo = await prepareDemo(demoDir, s3.endpoint, { bucket: s3.bucket, prefix: `${taskQueue}/` });
  Object.assign(process.env, demo.env);
  worker = await createWorker({
    temporalAddress: stack.temporalAddress,
    namespace: 'default',
    taskQueue,
    configPath: demo.configPath,
    ...(stack.workflowBundlePath ? { workflowBundlePath: stack.workflowBundlePath } : {}),
  });
  running = worker.run();
});

after(async () => {
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await running;
  await stack?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

test(`the five-minute tour (README.md:${tour.line}) runs as written: ${commands.length} lifeboat commands, each exits 0`, async () => {
  assert.ok(commands.length >= 3, `README.md:${tour.line}: the tour block should run lifeboat commands, found ${commands.length}`);
  // What a reader's shell has: no demo credentials or config yet (the block sets them), the dev
  // stack's Temporal (here: the test stack's, and this file's task queue).
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !Object.values<string>(demoCredentialEnv).includes(name) && name !== 'LIFEBOAT_CONFIG') env[name] = value;
  }
  Object.assign(env, {
    TEMPORAL_ADDRESS: stack.temporalAddress,
    LIFEBOAT_TASK_QUEUE: taskQueue,
    LIFEBOAT_TOUR_NODE: process.execPath,
    LIFEBOAT_TOUR_BIN: join(projectRoot, 'bin', 'lifeboat.js'),
  });
  const script = [
    'set -euo pipefail',
    'npx() {',
    '  if [ "${1-}" != lifeboat ]; then echo "readme-tour: the tour runs only npx lifeboat, not: npx $*" >&2; return 127; fi',
    '  shift',
    '  echo "readme-tour: \\$ npx lifeboat $*" >&2',
    '  "$LIFEBOAT_TOUR_NODE" "$LIFEBOAT_TOUR_BIN" "$@"',
    '}',
    tour.body,
  ].join('\n');
  const result = await execa('bash', ['-c', script], { cwd: root, env, extendEnv: false, reject: false, all: true });
  const output = String(result.all ?? '');
  assert.equal(result.exitCode, 0, `the tour of README.md:${tour.line} failed (exit ${result.exitCode}); its output:\n${output}`);
  const ran = output.split('\n').filter((line) => line.startsWith('readme-tour: $ npx lifeboat'));
  assert.equal(ran.length, commands.length, `the tour ran ${ran.length} of its ${commands.length} lifeboat commands; its output:\n${output}`);
});

test('the demo config protects the shop\'s configuration directory too: a files target that backs up and drills', async () => {
  const cli = (args: string[]) =>
    execa(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', join(root, '.lifeboat', 'dev', 'lifeboat.config.yaml'), ...args], {
      reject: false,
      all: true,
      env: { TEMPORAL_ADDRESS: stack.temporalAddress, LIFEBOAT_TASK_QUEUE: taskQueue },
    });
  const backup = await cli(['backup', 'demo-config', '--wait']);
  assert.equal(backup.exitCode, 0, String(backup.all));
  const drill = await cli(['drill', 'demo-config', '--wait']);
  assert.equal(drill.exitCode, 0, String(drill.all));
  assert.match(String(drill.all), /PASSED[\s\S]*check pass app-config\/app.yaml exists[\s\S]*check pass app.yaml names its port/);
});
