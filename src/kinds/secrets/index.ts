/**
 * secrets targets: files-like directory trees that are always encrypted. A backup without an
 * encryption key is refused before anything is read; names and contents live only inside the
 * encrypted parts and index (the manifest holds counts, sizes and sha256s); restored files get
 * their recorded mode (0600 when none) and owner; steps name entries by number, never by name, so
 * nothing of them reaches a log, a result or history. Restores are whole (no --path: a glob would
 * put a name into the run's history). The steps are in workflows/kinds/secrets.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { UsageError } from '../../errors.js';
import { defineTargetKind } from '../contract.js';
import { resolveTreeTarget, restoredTree, treeAbsolutePaths } from '../../tree/kind.js';
import type { ResolvedTreeTarget } from '../../tree/target.js';
import { secretsTargetSchema } from './config.js';
import { secretsManifest } from './manifest.js';

export interface ResolvedSecretsTarget extends ResolvedTreeTarget {
  type: 'secrets';
}

export const secretsKind = defineTargetKind({
  type: 'secrets',
  configSchema: secretsTargetSchema,
  methods: [],
  manifests: [secretsManifest],
  absolutePaths: treeAbsolutePaths,
  resolve: (config, common): ResolvedSecretsTarget => resolveTreeTarget(config, common),
  activities: async (dependencies) => (await import('./activities.js')).secretsActivities(dependencies),
  cli: {
    restore(options, target) {
      if (options.path && options.path.length > 0) {
        throw new UsageError(`--path is refused for secrets targets ("${target.name}"): a glob would put a name into the run's history. Restore the whole backup --into a private directory instead`);
      }
      if (options.into) return { input: { into: resolvePath(options.into) } };
      return { input: {}, replaces: `the live roots (${target.config.roots.join(', ')})` };
    },
    restored: restoredTree,
    list: ({ manifest }) => {
      throw new UsageError(
        `the names in secrets backup ${manifest.id} are not listed (they never leave its encrypted payload): it holds ${manifest.source.entries} entries, ${manifest.source.files} files, ${manifest.source.bytes} bytes. ` +
          'Restore it --into a private directory to see them',
      );
    },
  },
});
