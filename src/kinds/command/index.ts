/**
 * Command targets: anything a command can export. The backup is the stdout of a configured
 * command, streamed like any payload (zstd, encryption, sha256, every repository at once, no local
 * copy); a restore pipes the verified payload into a configured command's stdin (or writes it to a
 * file, --into); a drill decodes it into a scratch directory and runs configured checks on it. The
 * steps are in workflows/kinds/command.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { UsageError } from '../../errors.js';
import { describeArgv } from '../../pipeline/command-stream.js';
import { defineTargetKind, type ResolvedTargetBase } from '../contract.js';
import { commandTargetSchema, type CommandTargetConfig } from './config.js';
import { commandManifest } from './manifest.js';

export interface ResolvedCommandTarget extends ResolvedTargetBase {
  type: 'command';
  /** envFrom holds references (variable names) only; cwd is absolute when set. */
  backup: CommandTargetConfig['backup'];
  restore?: CommandTargetConfig['restore'];
  payloadName: string;
  /** scratchDir is absolute when set. */
  drill: CommandTargetConfig['drill'];
}

export const commandKind = defineTargetKind({
  type: 'command',
  configSchema: commandTargetSchema,
  methods: [],
  manifests: [commandManifest],
  absolutePaths(config, absolute) {
    if (config.backup.cwd) config.backup.cwd = absolute(config.backup.cwd);
    if (config.restore?.cwd) config.restore.cwd = absolute(config.restore.cwd);
    for (const check of config.drill.checks) if (check.cwd) check.cwd = absolute(check.cwd);
    if (config.drill.scratchDir) config.drill.scratchDir = absolute(config.drill.scratchDir);
  },
  resolve(config, common): ResolvedCommandTarget {
    return {
      ...common,
      type: 'command',
      backup: config.backup,
      ...(config.restore ? { restore: config.restore } : {}),
      payloadName: config.payloadName,
      drill: config.drill,
    };
  },
  preflight: async (name, config, context) => (await import('./preflight.js')).preflightCommand(name, config, context),
  activities: async (dependencies) => (await import('./activities.js')).commandActivities(dependencies),
  cli: {
    restore(options, target) {
      if (options.into) return { input: { into: resolvePath(options.into) } };
      const restore = target.config.restore;
      if (!restore) throw new UsageError(`target "${target.name}" has no restore command: give --into <file> to write the payload to a file, or set restore.argv in its config`);
      return { input: {}, replaces: `whatever \`${describeArgv(restore.argv)}\` writes (it reads the backup on its stdin)` };
    },
    restored: (r) => (r.restoredTo.startsWith('/') ? `restored backup ${r.backupId} (taken ${r.snapshotAt}) to ${r.restoredTo}` : `restored backup ${r.backupId} (taken ${r.snapshotAt}): ${r.restoredTo}`),
  },
});
