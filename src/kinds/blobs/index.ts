/**
 * Blobs targets: a directory tree of uploads or media, backed up incrementally by content. Each
 * distinct blob (a file, or a 4 MiB piece of a larger one) is stored once per repository, in packs
 * named by their sha256 under `<target>/blobs/`; each backup's index maps every path to its
 * blobs, so a backup reads and uploads only what changed, and any backup restores in full from
 * the repository alone. Restored in place (stop hook, safety copy, swap of directories, start
 * hook, health check, rollback) or into a new directory (--into); drilled by a restore into
 * scratch. The steps are in workflows/kinds/blobs.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { defineTargetKind, type ResolvedTargetBase } from '../contract.js';
import { blobsTargetSchema, type BlobsTargetConfig } from './config.js';
import { blobsManifest } from './manifest.js';

export interface ResolvedBlobsTarget extends ResolvedTargetBase {
  type: 'blobs';
  path: string;
  concurrency: number;
  packSizeMiB: number;
  hooks?: BlobsTargetConfig['hooks'];
  drill: BlobsTargetConfig['drill'];
}

export const blobsKind = defineTargetKind({
  type: 'blobs',
  configSchema: blobsTargetSchema,
  methods: [],
  manifests: [blobsManifest],
  absolutePaths(config, absolute) {
    config.path = absolute(config.path).replace(/\/+$/, '') || '/';
    if (config.drill.scratchDir) config.drill.scratchDir = absolute(config.drill.scratchDir);
  },
  resolve(config, common): ResolvedBlobsTarget {
    return {
      ...common,
      type: config.type,
      path: config.path,
      concurrency: config.concurrency,
      packSizeMiB: config.packSizeMiB,
      ...(config.hooks ? { hooks: config.hooks } : {}),
      drill: config.drill,
    };
  },
  activities: async (dependencies) => (await import('./activities.js')).blobsActivities(dependencies),
  preflight: async (name, config, context) => (await import('./preflight.js')).preflightBlobs(name, config, context),
  cli: {
    restore(options, target) {
      if (!options.into) return { input: {}, replaces: `the live tree (${target.config.path})` };
      return { input: { into: resolvePath(options.into) } };
    },
    restored: (r) => `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}${r.safetyCopy ? `; previous tree kept at ${r.safetyCopy}` : ''}`,
  },
});
