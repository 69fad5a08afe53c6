/**
 * `npm run bench:files`: what backing up and restoring a directory tree costs (files and secrets
 * targets, src/tree/), against the shell procedure it replaces, run in the same script:
 *
 *   pack into an fs repository       vs  tar -cf - root | zstd -T2 -3 > out.tar.zst      (time, ratio)
 *   restore whole                    vs  zstd -d < out.tar.zst | tar -xf -                (time, ratio)
 *   restore one path (--path)        vs  restore whole                                    (bytes fetched, GETs)
 *   peak RSS of this process while packing and restoring
 *
 * Lifeboat does more in the same pass (a sha256 of every file and of every stored object, an
 * index, parts, encryption with --encrypted, every restored file hashed and given its mode, owner
 * and mtime): the ratios say what that costs. The steps run in this process, without Temporal
 * (whose per-step overhead is constant, not per byte).
 *
 * Usage: npm run bench:files -- [--files 4000] [--size-mib 512] [--part-size-mib 64] [--runs 2] [--encrypted] [--keep]
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../src/dev/tools.js';
import { FsBackend } from '../src/repository/fs/backend.js';
import { Repository } from '../src/repository/repository.js';
import { entryNamers } from '../src/tree/entry.js';
import { packTree } from '../src/tree/pack.js';
import { restoreTree, type TreeBackup } from '../src/tree/restore.js';
import { keyId } from '../src/pipeline/encrypt.js';
import { CountingBackend } from '../test/helpers/counting-backend.js';

const say = (line: string): void => void process.stderr.write(`bench:files: ${line}\n`);

function options() {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '4000' },
      'size-mib': { type: 'string', default: '512' },
      'part-size-mib': { type: 'string', default: '64' },
      runs: { type: 'string', default: '2' },
      encrypted: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const int = (name: 'files' | 'size-mib' | 'part-size-mib' | 'runs'): number => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1`);
    return value;
  };
  return { files: int('files'), sizeMiB: int('size-mib'), partSizeMiB: int('part-size-mib'), runs: int('runs'), encrypted: values.encrypted, keep: values.keep };
}

/** A tree like a config-and-data directory: many small text files, a few large mixed ones. */
async function makeTree(root: string, files: number, sizeMiB: number): Promise<void> {
  const small = Math.floor(files * 0.95);
  const large = files - small;
  const smallBytes = 8 << 10;
  const largeBytes = Math.max(1 << 20, Math.floor((sizeMiB * 2 ** 20 - small * smallBytes) / Math.max(1, large)));
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${i % 50}`, `e${i % 7}`);
    await mkdir(dir, { recursive: true });
    const bytes = i < small ? 1024 + (i % 15) * 512 : largeBytes;
    // Half text (compresses), half random (does not): like configs, certificates and blobs together.
    const random = randomBytes(Math.floor(bytes / 4));
    await writeFile(join(dir, `f${i}.dat`), Buffer.concat([Buffer.from(random.toString('base64')), random]).subarray(0, bytes));
  }
}

interface Timed {
  seconds: number;
  peakRssMiB: number;
}

async function timed(work: () => Promise<unknown>): Promise<Timed> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = process.hrtime.bigint();
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, peakRssMiB: Math.max(peak, process.memoryUsage().rss) / 2 ** 20 };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const opts = options();
  const work = join(projectRoot, '.lifeboat', 'bench', 'files');
  const root = join(work, 'tree', 'data');
  const marker = join(work, 'tree', `.made-${opts.files}-${opts.sizeMiB}`);
  if (!existsSync(marker)) {
    await rm(join(work, 'tree'), { recursive: true, force: true });
    say(`making a tree of ${opts.files} files, ${opts.sizeMiB} MiB`);
    await makeTree(root, opts.files, opts.sizeMiB);
    await writeFile(marker, '');
  }
  const key = opts.encrypted ? randomBytes(32) : undefined;
  const compression = { level: 3, threads: 2 };
  const rows: Record<string, number[]> = { tarPack: [], lifeboatPack: [], tarRestore: [], lifeboatRestore: [], partialRestore: [], packRss: [], restoreRss: [] };
  let partial = { gets: 0, partsFetched: 0, parts: 0 };

  for (let run = 0; run < opts.runs; run++) {
    const runDir = join(work, `run-${run}`);
    await rm(runDir, { recursive: true, force: true });
    await mkdir(runDir, { recursive: true });
    await execa('sync');
    const tarFile = join(runDir, 'out.tar.zst');
    rows.tarPack!.push((await timed(() => execa('bash', ['-c', `tar -cf - -C ${join(root, '..')} data | zstd -q -T2 -3 -c > ${tarFile}`]))).seconds);

    const counting = new CountingBackend(new FsBackend({ path: join(runDir, 'repository') }));
    const repository = new Repository('bench', counting);
    let backup: TreeBackup | undefined;
    const pack = await timed(async () => {
      const packed = await packTree({
        repositories: [repository],
        target: 'tree',
        backupId: `20260101T000000Z-${String(run).padStart(6, '0')}`,
        roots: [{ name: 'data', path: root }],
        selection: { include: ['**'], exclude: [] },
        symlinksOutsideRoot: 'refuse',
        partSizeBytes: opts.partSizeMiB * 2 ** 20,
        compression,
        key,
        attempt: 1,
        name: entryNamers.byName,
      });
      backup = { id: `20260101T000000Z-${String(run).padStart(6, '0')}`, target: 'tree', encryption: key ? { keyId: keyId(key) } : null, parts: packed.parts, index: packed.index };
    });
    rows.lifeboatPack!.push(pack.seconds);
    rows.packRss!.push(pack.peakRssMiB);
    await execa('sync');

    const tarInto = join(runDir, 'tar-restored');
    await mkdir(tarInto);
    rows.tarRestore!.push((await timed(() => execa('bash', ['-c', `zstd -q -d -c ${tarFile} | tar -xf - -C ${tarInto}`]))).seconds);

    const into = join(runDir, 'restored');
    await mkdir(into);
    const restore = await timed(() =>
      restoreTree({ repositories: [repository], backup: backup!, key, destinations: { data: join(into, 'data') }, symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: process.getuid?.() === 0 }),
    );
    rows.lifeboatRestore!.push(restore.seconds);
    rows.restoreRss!.push(restore.peakRssMiB);

    counting.take();
    const one = join(runDir, 'one');
    await mkdir(one);
    let partsFetched = 0;
    const partialRun = await timed(async () => {
      const restored = await restoreTree({ repositories: [repository], backup: backup!, key, destinations: { data: join(one, 'data') }, paths: ['data/d7/e3/*'], symlinksOutsideRoot: 'refuse', name: entryNamers.byName, secret: false, owners: false });
      partsFetched = restored.partsFetched;
    });
    rows.partialRestore!.push(partialRun.seconds);
    partial = { gets: counting.take().get, partsFetched, parts: backup!.parts.length };
    say(`run ${run + 1}/${opts.runs}: pack ${pack.seconds.toFixed(2)} s (tar|zstd ${rows.tarPack!.at(-1)!.toFixed(2)} s), restore ${restore.seconds.toFixed(2)} s (zstd|tar ${rows.tarRestore!.at(-1)!.toFixed(2)} s)`);
    if (!opts.keep) await rm(runDir, { recursive: true, force: true });
  }

  const m = (name: string) => median(rows[name]!);
  const lines = [
    `files: ${opts.files} files, ${opts.sizeMiB} MiB, parts of ${opts.partSizeMiB} MiB, zstd -3 -T2${opts.encrypted ? ', encrypted' : ''}; median of ${opts.runs} runs`,
    '',
    '| measure | Lifeboat | baseline | ratio |',
    '|---|---:|---:|---:|',
    `| backup (pack into an fs repository) | ${m('lifeboatPack').toFixed(2)} s | ${m('tarPack').toFixed(2)} s (tar \\| zstd) | ${(m('lifeboatPack') / m('tarPack')).toFixed(2)}x |`,
    `| restore whole | ${m('lifeboatRestore').toFixed(2)} s | ${m('tarRestore').toFixed(2)} s (zstd -d \\| tar -x) | ${(m('lifeboatRestore') / m('tarRestore')).toFixed(2)}x |`,
    `| restore one directory (--path) | ${m('partialRestore').toFixed(2)} s, ${partial.gets} GETs (${partial.partsFetched} of ${partial.parts} parts) | ${m('lifeboatRestore').toFixed(2)} s, ${partial.parts + 1} GETs (whole) | ${(m('partialRestore') / m('lifeboatRestore')).toFixed(2)}x |`,
    `| peak RSS of the process (pack / restore) | ${m('packRss').toFixed(0)} / ${m('restoreRss').toFixed(0)} MiB | | |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  say(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
