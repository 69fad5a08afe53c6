/**
 * files targets: directory trees (configuration, certificates, application data), backed up in
 * one pass as tar parts plus an index (src/tree/); restored --into a new directory, or in place
 * (staged beside each root, swapped with the live root kept as safety copy, hooks, health check,
 * rollback), whole or --path by --path; drilled by a restore into scratch, every file's sha256
 * checked, and smoke checks (files that must exist, commands that must succeed). The steps are in
 * workflows/kinds/files.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { defineTargetKind } from '../contract.js';
import { resolveTreeTarget, restoredTree, treeAbsolutePaths } from '../../tree/kind.js';
import type { ResolvedTreeTarget } from '../../tree/target.js';
import { filesTargetSchema } from './config.js';
import { filesManifest } from './manifest.js';

export interface ResolvedFilesTarget extends ResolvedTreeTarget {
  type: 'files';
}

export const filesKind = defineTargetKind({
  type: 'files',
  configSchema: filesTargetSchema,
  methods: [],
  manifests: [filesManifest],
  absolutePaths: treeAbsolutePaths,
  resolve: (config, common): ResolvedFilesTarget => resolveTreeTarget(config, common),
  activities: async (dependencies) => (await import('./activities.js')).filesActivities(dependencies),
  cli: {
    restore(options, target) {
      const paths = options.path && options.path.length > 0 ? { paths: options.path } : {};
      // The path is on the worker's host: made absolute here, where the operator typed it.
      if (options.into) return { input: { into: resolvePath(options.into), ...paths } };
      const what = paths.paths ? `what --path names in the live roots` : 'the live roots';
      return { input: paths, replaces: `${what} (${target.config.roots.join(', ')})` };
    },
    restored: restoredTree,
    list: async (backup) => (await import('./list.js')).listFiles(backup),
  },
});
