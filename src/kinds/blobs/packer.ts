import { createHash } from 'node:crypto';
import { Readable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressor } from '../../pipeline/compress.js';
import { createEncryptor } from '../../pipeline/encrypt.js';
import type { Repository } from '../../repository/repository.js';
import type { SharedObjectRecord } from '../../repository/shared-objects.js';
import { blobSizeBytes, type BlobLocation } from './tree-index.js';

/**
 * Packs new blobs into shared objects: blobs are appended to an open pack until it holds about
 * packSizeBytes; a full pack is sealed (zstd, then AES-256-GCM when a key is set) in memory,
 * named by the sha256 of its stored bytes (`<target>/blobs/<sha256>`: the name proves the
 * content, and the same name always means the same bytes, so a second write of it is harmless)
 * and stored in every repository. At most `sealing` packs are sealed at once; add() waits while
 * they are all busy, which bounds the memory a backup holds whatever the size of the tree.
 *
 * A pack is one zstd frame: a blob is read by decoding its pack from the start (a restore reads
 * each pack once, in order, so that is free; packs are small enough that reading one blob is too).
 */
export class Packer {
  private open: { buffer: Buffer | undefined; bytes: number; blobs: Array<{ id: string; offset: number; length: number }> } = { buffer: undefined, bytes: 0, blobs: [] };
  /**
   * Pack buffers to use again: a blob is copied into its pack's buffer and the reader's copy dies
   * young, and a sealed pack's buffer comes back here. Buffers that outlive a few garbage
   * collections (a blob waiting in its pack) are freed only at a major one, tens of MB later.
   */
  private readonly pool: Buffer[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Set while a full pack waits for a sealer: no blob is added meanwhile. */
  private gate: Promise<void> | undefined;
  private failure: unknown;
  /** Blob id -> where it went (for every blob added so far whose pack is stored). */
  readonly stored = new Map<string, BlobLocation>();
  /** Shared objects stored by this packer. */
  readonly objects = new Map<string, SharedObjectRecord>();
  /** Blobs added and not yet stored (their pack is open or sealing). */
  private readonly pending = new Set<string>();
  storedBytes = 0;

  constructor(
    private readonly options: {
      repositories: Repository[];
      target: string;
      backupId: string;
      packSizeBytes: number;
      sealing: number;
      key: Buffer | undefined;
      compression: { level: number };
      signal?: AbortSignal;
      onStored?: (object: SharedObjectRecord) => void;
    },
  ) {}

  /** Whether a blob is already stored or on its way (a duplicate within this backup). */
  has(id: string): boolean {
    return this.stored.has(id) || this.pending.has(id);
  }

  /** Adds a blob (its id is the sha256 of data); waits while a full pack waits for a free sealer. */
  async add(id: string, data: Buffer): Promise<void> {
    while (this.gate) await this.gate;
    this.throwIfFailed();
    if (this.has(id)) return;
    this.pending.add(id);
    this.open.buffer ??= this.pool.pop() ?? Buffer.allocUnsafe(this.options.packSizeBytes + blobSizeBytes);
    this.open.blobs.push({ id, offset: this.open.bytes, length: data.length });
    data.copy(this.open.buffer, this.open.bytes);
    this.open.bytes += data.length;
    if (this.open.bytes >= this.options.packSizeBytes) {
      this.gate = this.seal();
      try {
        await this.gate;
      } finally {
        this.gate = undefined;
      }
    }
  }

  /** Seals the last pack and waits for every pack to be stored. */
  async finish(): Promise<void> {
    if (this.open.blobs.length > 0) await this.seal();
    await Promise.all(this.inFlight);
    this.throwIfFailed();
  }

  /** Stops: waits for the packs being sealed (nothing keeps running after a failed backup). */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.inFlight);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async seal(): Promise<void> {
    const pack = this.open;
    this.open = { buffer: undefined, bytes: 0, blobs: [] };
    while (this.inFlight.size >= this.options.sealing) await Promise.race(this.inFlight);
    this.throwIfFailed();
    const sealing = this.store(pack).then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    this.inFlight.add(sealing);
    void sealing.finally(() => this.inFlight.delete(sealing));
  }

  private async store(pack: Packer['open']): Promise<void> {
    const { repositories, target, key } = this.options;
    const buffer = pack.buffer!;
    pack.buffer = undefined;
    const sealed = await sealParts([buffer.subarray(0, pack.bytes)], { key, level: this.options.compression.level, ...(this.options.signal ? { signal: this.options.signal } : {}) });
    // zstd has read the whole pack: its buffer can take the next one.
    if (this.pool.length < this.options.sealing + 1) this.pool.push(buffer);
    const sha256 = sealed.sha256;
    const relativeKey = `blobs/${sha256}`;
    await Promise.all(
      repositories.map((repository) =>
        repository.backend.put(`${target}/${relativeKey}`, Readable.from(sealed.chunks), this.options.signal ? { signal: this.options.signal } : {}).catch((error: Error) => {
          throw new Error(`storing pack ${relativeKey} in repository "${repository.name}" (${repository.location}) failed: ${error.message}`, { cause: error });
        }),
      ),
    );
    const record: SharedObjectRecord = { key: relativeKey, sizeBytes: sealed.sizeBytes, sha256, addedBy: this.options.backupId };
    this.objects.set(relativeKey, record);
    this.storedBytes += sealed.sizeBytes;
    for (const blob of pack.blobs) {
      this.stored.set(blob.id, { b: blob.id, o: relativeKey, s: blob.offset, n: blob.length });
      this.pending.delete(blob.id);
    }
    this.options.onStored?.(record);
  }
}

/**
 * zstd (one process per pack, one thread: packs are sealed side by side) then encryption; the
 * sealed bytes are kept as the chunks they came in (no copy into one buffer) with their sha256.
 */
export async function sealParts(parts: Buffer[], options: { key: Buffer | undefined; level: number; signal?: AbortSignal }): Promise<{ chunks: Buffer[]; sizeBytes: number; sha256: string }> {
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  let sizeBytes = 0;
  const stages: Array<Readable | Duplex> = [Readable.from(parts), createCompressor({ level: options.level, threads: 1 })];
  if (options.key) stages.push(createEncryptor(options.key));
  await pipeline(
    [
      ...(stages as NodeJS.ReadableStream[]),
      async function (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          chunks.push(chunk);
          hash.update(chunk);
          sizeBytes += chunk.length;
        }
      } as unknown as NodeJS.WritableStream,
    ],
    ...(options.signal ? [{ signal: options.signal }] : []),
  );
  return { chunks, sizeBytes, sha256: hash.digest('hex') };
}
