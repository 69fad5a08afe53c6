/**
 * `npm run bench:blobs`: the blobs kind against restic (Debian's package) on the same generated
 * tree (default 100,000 files, 2 GiB: 90% small, 9% medium, 1% large files of several 4 MiB
 * blobs; half compressible text, half random bytes), each tool with a local repository, encrypted,
 * zstd at its fastest class (restic `--compression auto`, Lifeboat `compression.level: 1`):
 *
 *   first backup                         lifeboat <= 1.0x restic
 *   second backup after 1% of the files changed (rewritten, same size)   lifeboat <= 1.0x restic
 *   full restore of the second backup    lifeboat <= 1.0x restic
 *   worker peak memory (VmHWM) in any of them   <= 300 MB
 *
 * Each run copies the cached tree afresh, then runs the two tools in turn, alternating which goes
 * first; the best run of each counts. The tree is generated once under .lifeboat/bench/ and reused.
 * Results go to bench/RESULTS-blobs.md (with --write), with where Lifeboat's time went.
 *
 * Usage: npm run bench:blobs -- [--files 100000] [--size-mib 2048] [--runs 2] [--changed 0.01] [--keep] [--write]
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { connectClient, type TemporalSettings } from '../src/client.js';
import { projectRoot } from '../src/dev/tools.js';
import { contentOf, fileSizes, pathOf, writeTree } from '../test/helpers/blob-tree.js';
import { runLifeboat, runShell, type Execution } from './measure.js';
import { statusKb } from './procfs.js';
import { startBenchStack, startWorkerProcess } from './stack.js';

const say = (line: string): void => void process.stderr.write(`bench:blobs: ${line}\n`);
const MB = 1e6;
const workerLimitBytes = 300e6;

function options() {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '100000' },
      'size-mib': { type: 'string', default: '2048' },
      runs: { type: 'string', default: '2' },
      changed: { type: 'string', default: '0.01' },
      keep: { type: 'boolean', default: false },
      write: { type: 'boolean', default: false },
    },
  });
  const number = (name: keyof typeof values, min: number) => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number >= ${min}, got ${String(values[name])}`);
    return value;
  };
  return { files: Math.round(number('files', 10)), sizeMiB: number('size-mib', 1), runs: Math.round(number('runs', 1)), changed: number('changed', 0), keep: values.keep === true, write: values.write === true };
}

/** The generated tree, cached by its spec. */
async function ensureTree(benchRoot: string, files: number, sizeMiB: number): Promise<string> {
  const dir = join(benchRoot, `blobs-tree-${files}-${sizeMiB}`);
  const stamp = join(dir, '.complete');
  if (existsSync(stamp)) return join(dir, 'tree');
  await rm(dir, { recursive: true, force: true });
  say(`generating ${files} files, ${sizeMiB} MiB under ${dir} (once)`);
  const started = performance.now();
  await writeTree(join(dir, 'tree'), { files, totalBytes: sizeMiB * 2 ** 20, seed: 11 });
  await writeFile(stamp, `${new Date().toISOString()}\n`);
  say(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return join(dir, 'tree');
}

/** Rewrites `share` of the files (every 1/share-th one) with new content of the same size: what changed between the two backups. */
async function changeFiles(tree: string, files: number, sizeMiB: number, share: number, version: number): Promise<number> {
  const sizes = fileSizes({ files, totalBytes: sizeMiB * 2 ** 20, seed: 11 });
  const every = Math.max(1, Math.round(1 / share));
  let changed = 0;
  for (let index = 7; index < files; index += every) {
    const handle = await open(join(tree, pathOf(index)), 'r+');
    try {
      await handle.write(contentOf(index, Math.min(sizes[index]!, 64 << 10), version, 11), 0, undefined, 0);
    } finally {
      await handle.close();
    }
    changed++;
  }
  return changed;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const opts = options();
  const benchRoot = join(projectRoot, '.lifeboat', 'bench');
  const pristine = await ensureTree(benchRoot, opts.files, opts.sizeMiB);
  const work = join(benchRoot, 'work-blobs');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  say(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores`);
  const stack = await startBenchStack(join(work, 'stack'));
  const tree = join(work, 'tree');
  const keyFile = join(work, 'key');
  await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
  const password = randomBytes(16).toString('hex');
  const env = { ...process.env, RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: join(work, 'restic-cache') } as Record<string, string>;
  const results = { lifeboat: { first: [] as Execution[], second: [] as Execution[], restore: [] as Execution[] }, restic: { first: [] as Execution[], second: [] as Execution[], restore: [] as Execution[] } };
  const where: string[] = [];
  try {
    const client = await connectClient({ address: stack.temporal.address, namespace: 'default', taskQueue: 'bench-blobs' });
    for (let run = 1; run <= opts.runs; run++) {
      say(`run ${run}/${opts.runs}: a fresh copy of the tree`);
      await rm(tree, { recursive: true, force: true });
      await execa('cp', ['-a', pristine, tree]);
      const lifeboatRepository = join(work, `lifeboat-repository-${run}`);
      const resticRepository = join(work, `restic-repository-${run}`);
      const taskQueue = `bench-blobs-${run}`;
      const settings: TemporalSettings = { address: stack.temporal.address, namespace: 'default', taskQueue };
      const configPath = join(work, `lifeboat-${run}.yaml`);
      await writeFile(
        configPath,
        stringify({
          repositories: { local: { type: 'fs', path: lifeboatRepository } },
          encryption: { keyFile },
          compression: { level: 1, threads: 2 },
          targets: { media: { type: 'blobs', path: tree, repositories: ['local'] } },
          temporal: settings,
        }),
      );
      const worker = await startWorkerProcess({ configPath, taskQueue, temporalAddress: settings.address, bundlePath: stack.bundlePath, s3: stack.s3, logFile: join(work, `worker-${run}.log`) });
      const idleKb = await statusKb(worker.pid, 'VmRSS');
      say(`  idle worker VmRSS ${((idleKb ?? 0) / 1024).toFixed(0)} MiB`);
      where.push(`run ${run}: the idle worker's VmRSS before the first backup: ${((idleKb ?? 0) / 1024).toFixed(0)} MiB`);
      try {
        const lifeboat = async (kind: 'backup' | 'restore', input: Record<string, unknown>) =>
          runLifeboat({ client, settings, kind, input: { target: 'media', ...input } as never, workerPid: worker.pid, accounting: { serverPids: [stack.temporal.pid] } });
        const restic = (name: string, script: string) => runShell({ steps: [{ name, script }], env, scratchDir: work, accounting: { serverPids: [] } });
        await restic('init', `restic init --repository-version 2 -r ${resticRepository} -q`);
        const order = run % 2 === 1 ? (['restic', 'lifeboat'] as const) : (['lifeboat', 'restic'] as const);
        const phase = async (label: 'first' | 'second' | 'restore', steps: { lifeboat: () => Promise<Execution>; restic: () => Promise<Execution> }) => {
          for (const tool of order) {
            const execution = await steps[tool]();
            results[tool][label].push(execution);
            say(`  ${label} ${tool}: ${seconds(execution.wallMs)}${execution.workerPeakKb ? `, worker VmHWM ${(execution.workerPeakKb / 1024).toFixed(0)} MiB` : ''}${execution.toolPeakKb ? `, restic peak ${(execution.toolPeakKb / 1024).toFixed(0)} MiB` : ''}`);
          }
        };
        const resticBackup = () => restic('backup', `restic -r ${resticRepository} backup --compression auto -q ${tree}`);
        const timelineOf = (result: unknown) => ((result as { timeline?: Array<{ name: string; durationMs?: number }> }).timeline ?? []).map((s) => `${s.name} ${seconds(s.durationMs ?? 0)}`).join(', ');
        let lastBackup = '';
        await phase('first', {
          lifeboat: async () => {
            const { execution, result } = await lifeboat('backup', {});
            where.push(`run ${run} first backup: ${timelineOf(result)}`);
            return execution;
          },
          restic: resticBackup,
        });
        const changed = await changeFiles(tree, opts.files, opts.sizeMiB, opts.changed, run);
        say(`  ${changed} files changed`);
        await phase('second', {
          lifeboat: async () => {
            const { execution, result } = await lifeboat('backup', {});
            lastBackup = (result as { backupId: string }).backupId;
            where.push(`run ${run} second backup: ${timelineOf(result)}; ${JSON.stringify((result as { blobs?: unknown }).blobs)}`);
            return execution;
          },
          restic: resticBackup,
        });
        await phase('restore', {
          lifeboat: async () => {
            const into = join(work, 'restored-lifeboat');
            const { execution, result } = await lifeboat('restore', { backupId: lastBackup, into });
            where.push(`run ${run} restore: ${timelineOf(result)}`);
            await rm(into, { recursive: true, force: true });
            return execution;
          },
          restic: async () => {
            const into = join(work, 'restored-restic');
            const execution = await restic('restore', `restic -r ${resticRepository} restore latest --target ${into} -q`);
            await rm(into, { recursive: true, force: true });
            return execution;
          },
        });
      } finally {
        await worker.stop();
        await rm(lifeboatRepository, { recursive: true, force: true });
        await rm(resticRepository, { recursive: true, force: true });
      }
    }
    await client.connection.close();
  } finally {
    await stack.close();
    if (!opts.keep) await rm(work, { recursive: true, force: true });
  }

  const bestOf = (executions: Execution[]) => executions.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
  const lines = [
    `# Blobs benchmark: Lifeboat against restic ${(await execa('restic', ['version'])).stdout.split(' ')[1] ?? ''}`,
    '',
    `${new Date().toISOString()}, ${opts.files} files, ${opts.sizeMiB} MiB, ${opts.runs} run(s), ${Math.round(opts.changed * 100)}% changed, load average at the end ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores. Best run of each.`,
    '',
    '| phase | restic | lifeboat | ratio | target | lifeboat worker VmHWM | restic peak RSS |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  let ok = true;
  for (const phase of ['first', 'second', 'restore'] as const) {
    const restic = bestOf(results.restic[phase]);
    const lifeboat = bestOf(results.lifeboat[phase]);
    const ratio = lifeboat.wallMs / restic.wallMs;
    const peak = Math.max(...results.lifeboat[phase].map((e) => (e.workerPeakKb ?? 0) * 1024));
    ok &&= ratio <= 1 && peak <= workerLimitBytes;
    lines.push(`| ${phase === 'first' ? 'first backup' : phase === 'second' ? `second backup (${Math.round(opts.changed * 100)}% changed)` : 'full restore'} | ${seconds(restic.wallMs)} | ${seconds(lifeboat.wallMs)} | ${ratio.toFixed(2)}x | <= 1.0x | ${(peak / MB).toFixed(0)} MB (<= 300) | ${((restic.toolPeakKb ?? 0) / 1024).toFixed(0)} MiB |`);
  }
  lines.push('', 'Where Lifeboat\'s time went (steps of each run):', '', ...where.map((line) => `- ${line}`), '');
  process.stdout.write(`${lines.join('\n')}\n`);
  if (opts.write) await writeFile(join(projectRoot, 'bench', 'RESULTS-blobs.md'), `${lines.join('\n')}\n`);
  say(ok ? 'every target met' : 'a target was missed');
  process.exitCode = ok ? 0 : 1;
}

await main();


