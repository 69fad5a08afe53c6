/**
 * Runs each PostgreSQL baseline once and prints its wall time: a quick check of the baseline
 * procedures on their own (`node --import tsx bench/postgres/try-baselines.ts [sizeMiB]`).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../../src/dev/tools.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import { runShell, type ShellStep } from '../measure.js';
import {
  baselineEnv,
  basebackupGzip,
  basebackupGzipRestore,
  basebackupZstd,
  basebackupZstdRestore,
  dumpZstd,
  dumpZstdRestore,
  pgbackrestBackup,
  pgbackrestRestore,
  pgbackrestSetup,
  writePgbackrestConfig,
} from './baselines.js';
import { ensureBenchCluster, startBenchCluster } from './dataset.js';

const sizeMiB = Number(process.argv[2] ?? 150);
const root = join(projectRoot, '.lifeboat', 'bench');
const work = join(root, 'pg-work');
await rm(work, { recursive: true, force: true });
await mkdir(join(work, 'out'), { recursive: true });
await chownToServerUser(work, { recursive: true });
const dataset = await ensureBenchCluster(root, sizeMiB, (line) => console.error(line));
const cluster = await startBenchCluster(dataset.dir, dataset.dataDir);
try {
  const config = await writePgbackrestConfig(join(work, 'pgbackrest'), cluster);
  const env = { ...process.env, ...baselineEnv(cluster, join(work, 'out'), config) } as Record<string, string>;
  const accounting = { serverPids: [cluster.pid] };
  const run = async (steps: ShellStep[]) => {
    const execution = await runShell({ steps, env, scratchDir: work, accounting });
    console.log(`${steps.map((s) => s.name).join(' + ')}: ${(execution.wallMs / 1000).toFixed(2)} s, cpu ${execution.cpuSeconds.toFixed(1)} s`);
  };
  await run(pgbackrestSetup);
  for (const steps of [pgbackrestBackup, pgbackrestRestore, basebackupGzip, basebackupGzipRestore, basebackupZstd, basebackupZstdRestore, dumpZstd, dumpZstdRestore]) {
    await run(steps);
  }
} finally {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
