/**
 * secrets targets: files-like directory trees that are always encrypted. A backup without an
 * encryption key is refused before anything is read; names and contents live only inside the
 * encrypted parts and index (the manifest holds counts, sizes and sha256s); restored files get
 * their recorded mode (0600 when none) and owner; steps name entries by number, never by name, so
 * nothing of them reaches a log, a result or history. Restores are whole (no --path: a glob would
 * put a name into the run's history). The steps are in workflows/kinds/secrets.ts.
 */
import { basename, resolve as resolvePath } from 'node:path';
import { UsageError } from '../../errors.js';
import { defineTargetKind } from '../contract.js';
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
  absolutePaths(config, absolute) {
    config.roots = config.roots.map((root) => absolute(root));
    if (config.drill.scratchDir) config.drill.scratchDir = absolute(config.drill.scratchDir);
  },
  resolve(config, common): ResolvedSecretsTarget {
    return {
      ...common,
      type: config.type,
      roots: config.roots.map((path) => ({ name: basename(path), path })),
      include: config.include,
      exclude: config.exclude,
      partSizeMiB: config.partSizeMiB,
      symlinksOutsideRoot: config.symlinksOutsideRoot,
      ...(config.hooks ? { hooks: config.hooks } : {}),
      drill: { ...config.drill, mustExist: [] },
    };
  },
  activities: async (dependencies) => (await import('./activities.js')).secretsActivities(dependencies),
  cli: {
    restore(options, target) {
      if (options.path && options.path.length > 0) {
        throw new UsageError(`--path is refused for secrets targets ("${target.name}"): a glob would put a name into the run's history. Restore the whole backup --into a private directory instead`);
      }
      if (options.into) return { input: { into: resolvePath(options.into) } };
      return { input: {}, replaces: `the live roots (${target.config.roots.join(', ')})` };
    },
    restored: (r) => `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}${r.safetyCopy ? `; the previous trees are kept at ${r.safetyCopy}` : ''}`,
    list: ({ manifest }) => {
      throw new UsageError(
        `the names in secrets backup ${manifest.id} are not listed (they never leave its encrypted payload): it holds ${manifest.source.entries} entries, ${manifest.source.files} files, ${manifest.source.bytes} bytes. ` +
          'Restore it --into a private directory to see them',
      );
    },
  },
});
