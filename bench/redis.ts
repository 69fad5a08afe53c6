/**
 * `npm run bench:redis`: Lifeboat's backup of a live Redis 7 server (about 1 GiB of data in memory)
 * against the bare procedure it replaces, into the same fs repository, on this machine:
 *
 *   backup (the default: no check on the stream)    vs  redis-cli --rdb - | zstd -T2 -3 > file   lifeboat <= 1.2x
 *   backup with checkOnBackup: true                 vs  the same                                 (informational: the check's cost)
 *   worker peak RSS while backing up                                                                  (informational)
 *
 * The server is Debian's redis-server, run as `redis` (when this runs as root) on a free loopback
 * port, with repl-diskless-sync-delay 0 (both sides get the fork at once). The dataset (values of
 * mixed text and random hex, like application data, 1 KiB each) is generated once with
 * `redis-cli --pipe` and kept as an RDB under .lifeboat/bench/ (reused by later runs). Lifeboat and
 * the baseline alternate which goes first; each waits for a quiet machine.
 *
 * Usage: npm run bench:redis -- [--size-mib 1024] [--runs 2] [--keep] [--no-write] [--quiet-share 0.3] [--quiet-wait 120]
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { connectClient, type TemporalSettings } from '../src/client.js';
import { freePort } from '../src/dev/ports.js';
import { projectRoot } from '../src/dev/tools.js';
import { RedisClient } from '../src/redis/client.js';
import { osUser } from '../src/redis/server.js';
import { runLifeboat, runShell, type CpuAccounting, type Execution } from './measure.js';
import { waitForQuiet } from './procfs.js';
import { breakdownLines, resultsTable, targetsTable, type Comparison, type Report } from './report.js';
import { s3AccessKeyEnv, s3SecretKeyEnv, startBenchStack, startWorkerProcess } from './stack.js';

const say = (line: string): void => void process.stderr.write(`bench:redis: ${line}\n`);
const RESULTS_FILE = join(projectRoot, 'bench', 'RESULTS-redis.md');

function parseOptions() {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string', default: '1024' },
      runs: { type: 'string', default: '2' },
      keep: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      'quiet-share': { type: 'string', default: '0.3' },
      'quiet-wait': { type: 'string', default: '120' },
    },
  });
  return {
    sizeMiB: Number(values['size-mib']),
    runs: Number(values.runs),
    keep: values.keep === true,
    write: values['no-write'] !== true,
    quietShare: Number(values['quiet-share']),
    quietWaitMs: Number(values['quiet-wait']) * 1000,
  };
}

const valueBytes = 1024;

/** RESP commands that fill the server: SET bench:<i> <1 KiB of text and random hex>, written to a file for redis-cli --pipe. */
async function writeDatasetCommands(path: string, keys: number): Promise<void> {
  const out = createWriteStream(path);
  const words = ['order', 'refund', 'login', 'logout', 'view', 'cart', 'search'];
  for (let i = 0; i < keys; i++) {
    const text = `{"user":${i % 99_991},"event":"${words[i % words.length]}","note":"${'lorem ipsum dolor sit amet '.repeat(1 + (i % 5))}","blob":"`;
    const hex = randomBytes(Math.max(0, (valueBytes - text.length - 2) >> 1)).toString('hex');
    const value = `${text}${hex}"}`.padEnd(valueBytes, ' ').slice(0, valueBytes);
    const key = `bench:${i}`;
    if (!out.write(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n${value}\r\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

interface BenchRedis {
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/** redis-server as `redis` in dir, loading dir/dump.rdb if there is one. */
async function startRedis(dir: string): Promise<BenchRedis> {
  const port = await freePort();
  const user = process.getuid?.() === 0 ? await osUser('redis') : undefined;
  const conf = join(dir, 'redis.conf');
  await writeFile(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'dbfilename dump.rdb', 'save ""', 'appendonly no', `pidfile ${join(dir, 'redis.pid')}`, `logfile ${join(dir, 'redis.log')}`,
      'daemonize yes', 'repl-diskless-sync yes', 'repl-diskless-sync-delay 0', 'maxmemory 0', ''].join('\n'),
  );
  await chmod(dir, 0o755);
  if (user) {
    await chown(dir, user.uid, user.gid);
    await chown(conf, user.uid, user.gid);
    if (existsSync(join(dir, 'dump.rdb'))) await chown(join(dir, 'dump.rdb'), user.uid, user.gid);
  }
  await execa('redis-server', [conf], user ? { uid: user.uid, gid: user.gid } : {});
  const connection = { host: '127.0.0.1', port, connectTimeoutSeconds: 5 };
  for (const deadline = Date.now() + 600_000; ; await new Promise((resolve) => setTimeout(resolve, 200))) {
    const client = await RedisClient.connect(connection, {}).catch(() => undefined);
    if (client) {
      const loading = (await client.info('persistence')).get('loading');
      client.close();
      if (loading === '0') break;
    }
    if (Date.now() > deadline) throw new Error(`redis-server did not start; see ${join(dir, 'redis.log')}`);
  }
  return {
    port,
    dir,
    stop: async () => {
      await execa('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { reject: false });
    },
  };
}

/** The dataset as an RDB under benchRoot (made once), copied into a fresh server directory. */
async function ensureDataset(benchRoot: string, sizeMiB: number, serverDir: string): Promise<void> {
  const cached = join(benchRoot, `redis-${sizeMiB}mib.rdb`);
  if (!existsSync(cached)) {
    const keys = Math.round((sizeMiB * 2 ** 20) / valueBytes);
    say(`generating the dataset: ${keys} keys of ${valueBytes} B (once; kept as ${cached})`);
    const genDir = join(benchRoot, 'redis-generate');
    await rm(genDir, { recursive: true, force: true });
    await mkdir(genDir, { recursive: true });
    const commands = join(benchRoot, 'redis-commands.resp');
    await writeDatasetCommands(commands, keys);
    const server = await startRedis(genDir);
    try {
      await execa('sh', ['-c', `redis-cli -p ${server.port} --pipe < ${commands}`]);
      await execa('redis-cli', ['-p', String(server.port), 'save']);
      await copyFile(join(genDir, 'dump.rdb'), `${cached}.partial`);
      await execa('mv', [`${cached}.partial`, cached]);
    } finally {
      await server.stop();
      await rm(genDir, { recursive: true, force: true });
      await rm(commands, { force: true });
    }
  }
  await mkdir(serverDir, { recursive: true });
  await copyFile(cached, join(serverDir, 'dump.rdb'));
}

async function main(): Promise<void> {
  const options = parseOptions();
  const benchRoot = join(projectRoot, '.lifeboat', 'bench');
  const workDir = join(benchRoot, 'redis-work');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  await chmod(workDir, 0o755);
  const stack = await startBenchStack(join(workDir, 'stack'));
  const serverDir = join(workDir, 'server');
  await ensureDataset(benchRoot, options.sizeMiB, serverDir);
  const redis = await startRedis(serverDir);
  const stopAll: Array<() => Promise<void>> = [() => redis.stop(), () => stack.close()];
  try {
    const info = await RedisClient.connect({ host: '127.0.0.1', port: redis.port, connectTimeoutSeconds: 5 }, {}).then(async (client) => {
      try {
        return { memory: (await client.info('memory')).get('used_memory_human'), keys: Number(await client.command(['DBSIZE'])) };
      } finally {
        client.close();
      }
    });
    say(`server on 127.0.0.1:${redis.port}: ${info.keys} keys, used_memory ${info.memory}`);

    const repository = join(workDir, 'repository');
    const taskQueue = `bench-redis-${randomBytes(3).toString('hex')}`;
    const settings: TemporalSettings = { address: stack.temporal.address, namespace: 'default', taskQueue };
    const configPath = join(workDir, 'lifeboat.yaml');
    const target = (checkOnBackup: boolean) => ({ type: 'redis', repositories: ['local'], connection: { host: '127.0.0.1', port: redis.port }, checkOnBackup });
    await writeFile(
      configPath,
      stringify({
        repositories: { local: { type: 'fs', path: repository } },
        targets: { checked: target(true), unchecked: target(false) },
        compression: { level: 3, threads: 2 },
        temporal: settings,
      }),
    );
    const worker = await startWorkerProcess({ configPath, taskQueue, temporalAddress: settings.address, bundlePath: stack.bundlePath, s3: stack.s3, logFile: join(workDir, 'worker.log') });
    stopAll.unshift(() => worker.stop());
    const client = await connectClient(settings);
    const accounting: CpuAccounting = { serverPids: [] };
    const baselineOut = join(repository, 'baseline');
    await mkdir(baselineOut, { recursive: true });
    const baselineEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', [s3AccessKeyEnv]: '', [s3SecretKeyEnv]: '' };

    const settle = async () => {
      const quiet = await waitForQuiet(options.quietShare, options.quietWaitMs);
      if (quiet.busyShare > options.quietShare) say(`the machine stayed busy (${(quiet.busyShare * 100).toFixed(0)}% CPU) for ${(quiet.waitedMs / 1000).toFixed(0)} s; measuring anyway`);
    };
    const lifeboat = async (name: string): Promise<Execution> => {
      await settle();
      const { execution, result } = await runLifeboat({ client, settings, kind: 'backup', input: { target: name }, workerPid: worker.pid, accounting });
      execution.notes['RDB MB'] = (result as { sourceBytes: number }).sourceBytes / 1e3;
      say(`lifeboat ${name}: ${(execution.wallMs / 1000).toFixed(2)} s`);
      return execution;
    };
    const baseline = async (): Promise<Execution> => {
      await settle();
      const out = join(baselineOut, `dump-${randomBytes(3).toString('hex')}.rdb.zst`);
      const execution = await runShell({
        steps: [{ name: 'redis-cli --rdb - | zstd -T2 -3', script: `redis-cli -p ${redis.port} --rdb - 2>/dev/null | zstd -q -T2 -3 -c > ${out}` }],
        env: baselineEnv,
        scratchDir: workDir,
        accounting,
      });
      execution.notes['stored MB'] = (await stat(out)).size / 1e3;
      await rm(out, { force: true });
      say(`baseline: ${(execution.wallMs / 1000).toFixed(2)} s`);
      return execution;
    };

    const checked: Execution[] = [];
    const unchecked: Execution[] = [];
    const bare: Execution[] = [];
    for (let run = 0; run < options.runs; run++) {
      if (run % 2 === 0) {
        checked.push(await lifeboat('checked'));
        bare.push(await baseline());
        unchecked.push(await lifeboat('unchecked'));
      } else {
        bare.push(await baseline());
        unchecked.push(await lifeboat('unchecked'));
        checked.push(await lifeboat('checked'));
      }
    }
    const bytes = options.sizeMiB * 2 ** 20;
    const comparisons: Comparison[] = [
      { id: 'redis-backup', title: `Redis backup of ${options.sizeMiB} MiB to fs`, lifeboat: { label: 'lifeboat backup (default)', executions: unchecked }, baseline: { label: 'redis-cli --rdb - | zstd -T2 -3 > file', executions: bare }, maxRatio: 1.2, databaseBytes: bytes },
      { id: 'redis-backup-checked', title: `Redis backup of ${options.sizeMiB} MiB to fs, checkOnBackup: true`, lifeboat: { label: 'lifeboat backup (redis-check-rdb on the stream)', executions: checked }, baseline: { label: 'redis-cli --rdb - | zstd -T2 -3 > file', executions: bare }, databaseBytes: bytes },
    ];
    const allLifeboat = [...checked, ...unchecked];
    const report: Report = {
      date: new Date().toISOString(),
      machine: [`${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`, `load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`, `Redis dataset: ${info.keys} keys, used_memory ${info.memory}`],
      method: [`${options.runs} runs of each, alternating which goes first, each after waiting for a quiet machine (busy share <= ${options.quietShare}); best run reported`],
      comparisons,
      memory: [
        {
          title: 'worker peak RSS, Redis backups',
          workerPeakKb: Math.max(...allLifeboat.map((e) => e.workerPeakKb ?? 0)),
          workerTreePeakKb: Math.max(...allLifeboat.map((e) => e.workerTreePeakKb ?? 0)),
          workerAnonPeakKb: Math.max(...allLifeboat.map((e) => e.workerAnonPeakKb ?? 0)),
          limitBytes: 300e6,
        },
      ],
    };
    const text = ['# Redis benchmark (npm run bench:redis)', '', `Run ${report.date} on ${report.machine.join('; ')}.`, '', report.method.join(' '), '', ...targetsTable(report), '', ...resultsTable(report), '', ...breakdownLines(report), ''].join('\n');
    process.stdout.write(`${text}\n`);
    if (options.write) await writeFile(RESULTS_FILE, text);
  } finally {
    for (const stop of stopAll) await stop().catch(() => undefined);
    if (!options.keep) await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  say(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
