import type { Readable } from 'node:stream';
import type { Backend, FolderListing, ObjectInfo, PutOptions } from '../../src/repository/backend.js';

/** Requests a reader made, by kind, and what S3 would have been asked for them (one LIST request per 1,000 keys). */
export interface RequestCounts {
  get: number;
  head: number;
  list: number;
  listFolder: number;
  put: number;
  delete: number;
  /** Keys the lists returned. */
  listedKeys: number;
  /** get + head + LIST pages (a list or folder listing of n entries is max(1, ceil(n / 1000)) requests on S3). */
  s3Requests: number;
}

/** A Backend that counts what is asked of the one it wraps (tests and the monitoring benchmark). */
export class CountingBackend implements Backend {
  counts: RequestCounts = CountingBackend.zero();

  constructor(private readonly inner: Backend) {}

  static zero(): RequestCounts {
    return { get: 0, head: 0, list: 0, listFolder: 0, put: 0, delete: 0, listedKeys: 0, s3Requests: 0 };
  }

  /** The counts so far, and zero from now on. */
  take(): RequestCounts {
    const counts = this.counts;
    this.counts = CountingBackend.zero();
    return counts;
  }

  get location(): string {
    return this.inner.location;
  }

  put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo> {
    this.counts.put++;
    return this.inner.put(key, body, options);
  }

  get(key: string): Promise<Readable> {
    this.counts.get++;
    this.counts.s3Requests++;
    return this.inner.get(key);
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    this.counts.head++;
    this.counts.s3Requests++;
    return this.inner.head(key);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const objects = await this.inner.list(prefix);
    this.counts.list++;
    this.counts.listedKeys += objects.length;
    this.counts.s3Requests += Math.max(1, Math.ceil(objects.length / 1000));
    return objects;
  }

  async listFolder(folder: string): Promise<FolderListing> {
    const listing = await this.inner.listFolder(folder);
    const entries = listing.objects.length + listing.folders.length;
    this.counts.listFolder++;
    this.counts.listedKeys += entries;
    this.counts.s3Requests += Math.max(1, Math.ceil(entries / 1000));
    return listing;
  }

  delete(key: string): Promise<void> {
    this.counts.delete++;
    return this.inner.delete(key);
  }

  discardIncomplete(prefix: string): Promise<number> {
    return this.inner.discardIncomplete(prefix);
  }
}

/** Sums counts of several backends. */
export function sumCounts(all: RequestCounts[]): RequestCounts {
  const total = CountingBackend.zero();
  for (const counts of all) for (const key of Object.keys(total) as Array<keyof RequestCounts>) total[key] += counts[key];
  return total;
}
