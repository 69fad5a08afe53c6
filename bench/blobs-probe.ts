/**
 * `node --import tsx bench/blobs-probe.ts <tree> [--pack-mib 8] [--backup-only]`: the blobs kind's
 * backup and restore steps run in this process, without Temporal (a stand-in activity context),
 * into a scratch fs repository, encrypted, zstd level 1: their wall time and the process's peak
 * RSS, heap and external (Buffer) memory, sampled every 20 ms. For finding where the worker's time
 * and memory go (bench/RESULTS-blobs.md); the benchmark proper is bench/blobs.ts. Start it as the
 * worker starts: MALLOC_ARENA_MAX=2 UV_THREADPOOL_SIZE=16 node --max-semi-space-size=2 --import tsx ...
 */
import { asyncLocalStorage } from '@temporalio/activity';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupBlobTree } from '../src/kinds/blobs/backup.js';
import { restoreBlobTree } from '../src/kinds/blobs/restore.js';
import type { BlobsManifest } from '../src/kinds/blobs/manifest.js';

const tree = process.argv[2];
if (!tree) throw new Error('usage: bench/blobs-probe.ts <tree> [--pack-mib 8] [--backup-only]');
const packMiB = Number(process.argv[process.argv.indexOf('--pack-mib') + 1] ?? 8) || 8;
const scratch = await mkdtemp(join(tmpdir(), 'lifeboat-blobs-probe-'));
const repo = join(scratch, 'repository');
const keyFile = join(scratch, 'key');
await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
const logger = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} };
const context = { info: { attempt: 1, workflowExecution: { workflowId: 'probe', runId: 'r' }, workflowType: 'backup', namespace: 'default' }, cancellationSignal: new AbortController().signal, heartbeat() {}, log: logger };
const target = { type: 'blobs' as const, name: 'media', path: tree, concurrency: 8, packSizeMiB: packMiB, drill: { mustExist: [] }, repositories: [{ name: 'local', location: repo, config: { type: 'fs' as const, path: repo } as never }], compression: { level: 1, threads: 2 }, encryption: { keyFile, keyId: 'probe' } };
let peak = { rss: 0, heap: 0, external: 0, arrayBuffers: 0 };
const timer = setInterval(() => { const m = process.memoryUsage(); if (m.rss > peak.rss) peak = { rss: m.rss, heap: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }; }, 20);
const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
const show = (label: string) => { console.log(label, 'peak rss', mb(peak.rss), 'heapUsed', mb(peak.heap), 'external', mb(peak.external), 'arrayBuffers', mb(peak.arrayBuffers)); peak = { rss: 0, heap: 0, external: 0, arrayBuffers: 0 }; };
console.log('start rss', mb(process.memoryUsage().rss));
const t0 = Date.now();
const stored = await asyncLocalStorage.run(context as never, () => backupBlobTree({ target: target as never, backupId: '20261206T000000Z-000aaa' }, process.env));
console.log('backup', Date.now() - t0, 'ms'); show('backup');
const manifest = { id: '20261206T000000Z-000aaa', target: 'media', kind: 'blobs', ...stored, encryption: stored.encryption } as unknown as BlobsManifest;
if (process.argv.includes('--backup-only')) {
  clearInterval(timer);
  await rm(scratch, { recursive: true, force: true });
  process.exit(0);
}
const t1 = Date.now();
await asyncLocalStorage.run(context as never, () => restoreBlobTree({ target: target as never, manifest, destination: join(scratch, 'restored') }, process.env));
console.log('restore', Date.now() - t1, 'ms'); show('restore');
clearInterval(timer);
await rm(scratch, { recursive: true, force: true });
