/**
 * Compression benchmark behind bench/compression-choice.md.
 *
 *   node --import tsx bench/compression.ts [file] [--runs N] [--only id,id]
 *
 * Without a file it generates a 256 MiB mix of SQL-like text and random bytes. Every measurement
 * runs in a fresh child process so each row's peak RSS is its own; zstd subprocesses are sampled
 * separately through /proc (VmHWM). Runs are interleaved; the table shows the best and the median wall time.
 *
 * zstd-napi is not a Lifeboat dependency. To include its rows, install it somewhere else and point
 * LIFEBOAT_BENCH_ZSTD_NAPI at that directory:
 *   mkdir /tmp/zstdprobe && cd /tmp/zstdprobe && npm init -y &&
 *   npm pkg set 'allowScripts.zstd-napi=true' --json && npm install zstd-napi
 *   LIFEBOAT_BENCH_ZSTD_NAPI=/tmp/zstdprobe node --import tsx bench/compression.ts big.db
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import { compressionInfo, createCompressor, createDecompressor } from '../src/pipeline/compress.js';
import { createDecryptor, createEncryptor } from '../src/pipeline/encrypt.js';
import { HashingPassThrough } from '../src/pipeline/hash.js';

const LEVEL = 3;
const THREADS = 2;
const READ_CHUNK = 1024 * 1024;
const SAMPLE_BYTES = 256 * 1024 * 1024;
const THIS_FILE = fileURLToPath(import.meta.url);

interface ZstdNapi {
  CompressStream: new (parameters?: { compressionLevel?: number; nbWorkers?: number }) => Duplex;
  DecompressStream: new () => Duplex;
}

/** Files a variant reads; the compressed and encrypted ones are made once by the parent. */
interface Inputs {
  source: string;
  zst: string;
  encrypted: string;
  scratch: string;
  keyHex: string;
}

interface Variant {
  id: string;
  label: string;
  direction: 'compress' | 'decompress';
  input: keyof Pick<Inputs, 'source' | 'zst' | 'encrypted'>;
  /** A raw zstd file -> file run: no Node process in the data path, the reference for the others. */
  baseline?: true;
  needsNapi?: boolean;
  run(inputs: Inputs, napi: ZstdNapi | undefined): Promise<number>;
}

interface Measurement {
  wallMs: number;
  inBytes: number;
  outBytes: number;
  nodeMaxRssKb: number;
  zstdMaxRssKb: number;
  loopMaxMs: number;
  nodeCpuMs: number;
}

const variants: Variant[] = [
  {
    id: 'zstd-file',
    label: `\`zstd -T${THREADS} -${LEVEL}\` file -> file (baseline)`,
    direction: 'compress',
    input: 'source',
    baseline: true,
    async run(inputs) {
      const out = join(inputs.scratch, 'baseline.zst');
      await execa('zstd', [`-T${THREADS}`, `-${LEVEL}`, '-q', '-f', inputs.source, '-o', out]);
      return (await stat(out)).size;
    },
  },
  {
    id: 'zstd-cli',
    label: `zstd CLI via execa, stdin -> stdout (\`createCompressor\`, -T${THREADS} -${LEVEL})`,
    direction: 'compress',
    input: 'source',
    run: (inputs) => drain(inputs.source, [createCompressor({ level: LEVEL, threads: THREADS })]),
  },
  {
    id: 'zstd-napi',
    label: `zstd-napi \`CompressStream\`, nbWorkers=${THREADS}, level ${LEVEL}`,
    direction: 'compress',
    input: 'source',
    needsNapi: true,
    run: (inputs, napi) => drain(inputs.source, [new (napi as ZstdNapi).CompressStream({ compressionLevel: LEVEL, nbWorkers: THREADS })]),
  },
  {
    id: 'zstd-napi-st',
    label: `zstd-napi \`CompressStream\`, single-threaded, level ${LEVEL}`,
    direction: 'compress',
    input: 'source',
    needsNapi: true,
    run: (inputs, napi) => drain(inputs.source, [new (napi as ZstdNapi).CompressStream({ compressionLevel: LEVEL })]),
  },
  {
    id: 'gzip',
    label: 'node:zlib gzip level 6',
    direction: 'compress',
    input: 'source',
    run: (inputs) => drain(inputs.source, [createGzip({ level: 6 })]),
  },
  {
    id: 'backup-cli',
    label: 'backup chain: createCompressor -> createEncryptor -> HashingPassThrough',
    direction: 'compress',
    input: 'source',
    run: (inputs) =>
      drain(inputs.source, [
        createCompressor({ level: LEVEL, threads: THREADS }),
        createEncryptor(Buffer.from(inputs.keyHex, 'hex')),
        new HashingPassThrough(),
      ]),
  },
  {
    id: 'backup-napi',
    label: 'backup chain with zstd-napi (nbWorkers=2) in place of createCompressor',
    direction: 'compress',
    input: 'source',
    needsNapi: true,
    run: (inputs, napi) =>
      drain(inputs.source, [
        new (napi as ZstdNapi).CompressStream({ compressionLevel: LEVEL, nbWorkers: THREADS }),
        createEncryptor(Buffer.from(inputs.keyHex, 'hex')),
        new HashingPassThrough(),
      ]),
  },
  {
    id: 'unzstd-file',
    label: '`zstd -d` file -> /dev/null (baseline; a real restore also pays for writing the file)',
    direction: 'decompress',
    input: 'zst',
    baseline: true,
    async run(inputs) {
      // zstd treats /dev/null specially: it writes to it without trying to replace it.
      await execa('zstd', ['-d', '-q', '-f', inputs.zst, '-o', '/dev/null']);
      return (await stat(inputs.source)).size;
    },
  },
  {
    id: 'unzstd-cli',
    label: 'zstd CLI via execa (`createDecompressor`)',
    direction: 'decompress',
    input: 'zst',
    run: (inputs) => drain(inputs.zst, [createDecompressor()]),
  },
  {
    id: 'unzstd-napi',
    label: 'zstd-napi `DecompressStream`',
    direction: 'decompress',
    input: 'zst',
    needsNapi: true,
    run: (inputs, napi) => drain(inputs.zst, [new (napi as ZstdNapi).DecompressStream()]),
  },
  {
    id: 'restore-cli',
    label: 'restore chain: HashingPassThrough -> createDecryptor -> createDecompressor -> HashingPassThrough',
    direction: 'decompress',
    input: 'encrypted',
    run: (inputs) =>
      drain(inputs.encrypted, [
        new HashingPassThrough(),
        createDecryptor(Buffer.from(inputs.keyHex, 'hex')),
        createDecompressor(),
        new HashingPassThrough(),
      ]),
  },
];

/** Streams a file through the stages into a counting sink; resolves with the bytes that came out. */
async function drain(path: string, stages: Duplex[]): Promise<number> {
  let bytes = 0;
  await pipeline(
    createReadStream(path, { highWaterMark: READ_CHUNK }),
    ...(stages as [Duplex, ...Duplex[]]),
    new Writable({
      highWaterMark: READ_CHUNK,
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback();
      },
    }),
  );
  return bytes;
}

function loadZstdNapi(): ZstdNapi | undefined {
  const dir = process.env.LIFEBOAT_BENCH_ZSTD_NAPI;
  try {
    return createRequire(dir ? join(dir, 'package.json') : import.meta.url)('zstd-napi') as ZstdNapi;
  } catch {
    return undefined;
  }
}

/**
 * Highest VmHWM of any direct child (the zstd subprocesses), sampled every 20 ms. VmHWM is itself a
 * peak, so sampling only risks missing growth in a child's last 20 ms.
 */
function watchChildRss(): () => number {
  const seen = new Map<string, number>();
  const sample = async (): Promise<void> => {
    let children: string[] = [];
    try {
      children = (await readFile(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
    } catch {
      return;
    }
    for (const pid of children) {
      try {
        const kb = Number(/VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
        seen.set(pid, Math.max(seen.get(pid) ?? 0, kb));
      } catch {
        // exited between listing and reading
      }
    }
  };
  const timer = setInterval(() => void sample(), 20);
  return () => {
    clearInterval(timer);
    return Math.max(0, ...seen.values());
  };
}

/** Child mode: one measurement, printed as a JSON line. */
async function measure(variant: Variant, inputs: Inputs): Promise<void> {
  const napi = loadZstdNapi();
  const inBytes = (await stat(inputs[variant.input])).size;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  const stopRss = watchChildRss();
  loop.enable();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const outBytes = await variant.run(inputs, napi);
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  loop.disable();
  const result: Measurement = {
    wallMs,
    inBytes,
    outBytes,
    nodeMaxRssKb: process.resourceUsage().maxRSS,
    zstdMaxRssKb: stopRss(),
    loopMaxMs: loop.max / 1e6,
    nodeCpuMs: (cpu.user + cpu.system) / 1000,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function runChild(variant: Variant, inputs: Inputs): Promise<Measurement> {
  const { stdout } = await execa(process.execPath, ['--import', 'tsx', THIS_FILE, '--measure', variant.id, JSON.stringify(inputs)], {
    stderr: 'inherit',
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as Measurement;
}

async function generateSample(path: string): Promise<void> {
  const text = Buffer.from(
    Array.from({ length: 2000 }, (_, i) => `INSERT INTO events VALUES (${i}, 'order', 'user-${i % 997} did refund on item ${i * 7919}');\n`).join(''),
  );
  async function* blocks(): AsyncGenerator<Buffer> {
    for (let written = 0; written < SAMPLE_BYTES; written += 2 * 64 * 1024) {
      yield text.subarray(written % 4096, (written % 4096) + 64 * 1024);
      yield randomBytes(64 * 1024);
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(path));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const mb = (bytes: number): string => (bytes / 1e6).toFixed(0);
const rss = (kb: number): string => (kb > 0 ? `${(kb / 1024).toFixed(0)} MiB` : '—');

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const measureIndex = args.indexOf('--measure');
  if (measureIndex >= 0) {
    const variant = variants.find((v) => v.id === args[measureIndex + 1]);
    if (!variant) throw new Error(`unknown variant ${String(args[measureIndex + 1])}`);
    await measure(variant, JSON.parse(args[measureIndex + 2] as string) as Inputs);
    return;
  }

  const runsIndex = args.indexOf('--runs');
  const runs = runsIndex >= 0 ? Number(args[runsIndex + 1]) : 3;
  const onlyIndex = args.indexOf('--only');
  const only = onlyIndex >= 0 ? (args[onlyIndex + 1] as string).split(',') : undefined;
  const positional = args.filter((arg, i) => !arg.startsWith('--') && args[i - 1] !== '--runs' && args[i - 1] !== '--only');

  const scratch = await mkdtemp(join(tmpdir(), 'lifeboat-bench-'));
  try {
    let source = positional[0];
    if (source === undefined) {
      source = join(scratch, 'sample.bin');
      console.error(`no file given: generating a ${mb(SAMPLE_BYTES)} MB text/random sample at ${source}`);
      await generateSample(source);
    } else if (!existsSync(source)) {
      throw new Error(`${source} does not exist`);
    }
    const inputs: Inputs = {
      source,
      zst: join(scratch, 'baseline.zst'),
      encrypted: join(scratch, 'baseline.zst.lbenc'),
      scratch,
      keyHex: randomBytes(32).toString('hex'),
    };
    const napi = loadZstdNapi();
    const sourceBytes = (await stat(source)).size;

    // Warm the page cache so the first row does not pay for disk reads the others do not.
    await drain(source, []);
    await execa('zstd', [`-T${THREADS}`, `-${LEVEL}`, '-q', '-f', source, '-o', inputs.zst]);
    await pipeline(createReadStream(inputs.zst), createEncryptor(Buffer.from(inputs.keyHex, 'hex')), createWriteStream(inputs.encrypted));

    const zstd = await compressionInfo();
    console.log(`# Compression benchmark`);
    console.log();
    console.log(`- input: ${source}, ${mb(sourceBytes)} MB`);
    console.log(`- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; Node ${process.version}; zstd CLI ${zstd.version}`);
    console.log(`- load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`- ${runs} interleaved run(s) per row; MB/s and × baseline use the best run; node CPU is the median; MB/s counts database (uncompressed) MB; RSS is the peak over all runs; node RSS includes ~80 MiB for Node + tsx themselves`);
    console.log();

    // Runs are interleaved (every variant once, then again) so that load from other processes on a
    // shared machine spreads over all rows instead of skewing whichever row it happened to hit.
    const selected = variants.filter((v) => (!only || only.includes(v.id)) && !(v.needsNapi && !napi));
    const skipped = variants.filter((v) => (!only || only.includes(v.id)) && v.needsNapi && !napi);
    const results = new Map<string, Measurement[]>(selected.map((v) => [v.id, []]));
    for (let run = 0; run < runs; run += 1) {
      for (const variant of selected) {
        const measurement = await runChild(variant, inputs);
        results.get(variant.id)?.push(measurement);
        console.error(`run ${run + 1}/${runs} ${variant.id}: ${(measurement.wallMs / 1000).toFixed(2)} s`);
      }
    }

    // On a shared machine other load only ever adds time, so the best run is the best estimate of
    // the intrinsic cost; the median shows how much that estimate moved.
    const bestWall = (id: string): number | undefined => {
      const measured = results.get(id);
      return measured && measured.length > 0 ? Math.min(...measured.map((r) => r.wallMs)) : undefined;
    };
    const rows: string[] = [];
    for (const variant of variants) {
      if (only && !only.includes(variant.id)) continue;
      const measured = results.get(variant.id);
      if (!measured) {
        rows.push(`| ${variant.label} | skipped: zstd-napi not installed (set LIFEBOAT_BENCH_ZSTD_NAPI) | | | | | | | | |`);
        continue;
      }
      const wallMs = bestWall(variant.id) as number;
      const medianMs = median(measured.map((r) => r.wallMs));
      const first = measured[0] as Measurement;
      const dbBytes = variant.direction === 'compress' ? first.inBytes : first.outBytes;
      const storedBytes = variant.direction === 'compress' ? first.outBytes : first.inBytes;
      const reference = bestWall(variant.direction === 'compress' ? 'zstd-file' : 'unzstd-file');
      rows.push(
        [
          '',
          variant.label,
          `${(wallMs / 1000).toFixed(2)} s`,
          `${(medianMs / 1000).toFixed(2)} s`,
          reference ? `${(wallMs / reference).toFixed(2)}×` : '—',
          (dbBytes / 1e6 / (wallMs / 1000)).toFixed(0),
          (sourceBytes / storedBytes).toFixed(2),
          variant.baseline ? '—' : rss(Math.max(...measured.map((r) => r.nodeMaxRssKb))),
          rss(Math.max(...measured.map((r) => r.zstdMaxRssKb))),
          variant.baseline ? '—' : `${(median(measured.map((r) => r.nodeCpuMs)) / 1000).toFixed(2)} s`,
          variant.baseline ? '—' : `${Math.max(...measured.map((r) => r.loopMaxMs)).toFixed(0)} ms`,
          '',
        ].join(' | ').trim(),
      );
    }
    console.log('| variant | best wall | median wall | best × baseline | MB/s | ratio | node peak RSS | zstd process peak RSS | node CPU | max event-loop delay |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const row of rows) console.log(row);
    console.log();
    console.log(`- load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if (skipped.length > 0) console.log(`- skipped (zstd-napi not installed): ${skipped.map((v) => v.id).join(', ')}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
