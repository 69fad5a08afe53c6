/**
 * SQLite targets: a database file, backed up as one consistent snapshot streamed into every
 * repository; restored in place (stop hook, safety copy, atomic swap, start hook, health check,
 * rollback) or beside the live file (--into); drilled by a restore into a scratch directory and
 * SQL smoke checks. The steps are in workflows/kinds/sqlite.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { defineTargetKind, type ResolvedTargetBase } from '../contract.js';
import { sqliteTargetSchema, type SqliteTargetConfig } from './config.js';
import { sqliteManifest } from './manifest.js';

export interface ResolvedSqliteTarget extends ResolvedTargetBase {
  type: 'sqlite';
  path: string;
  checks: SqliteTargetConfig['checks'];
  hooks?: SqliteTargetConfig['hooks'];
  drill: SqliteTargetConfig['drill'];
}

export const sqliteKind = defineTargetKind({
  type: 'sqlite',
  configSchema: sqliteTargetSchema,
  methods: [],
  landsWithFewerCopies: true,
  manifests: [sqliteManifest],
  absolutePaths(config, absolute) {
    config.path = absolute(config.path);
    if (config.drill.scratchDir) config.drill.scratchDir = absolute(config.drill.scratchDir);
  },
  resolve(config, common): ResolvedSqliteTarget {
    return {
      name: common.name,
      type: config.type,
      path: config.path,
      checks: config.checks,
      repositories: common.repositories,
      ...(config.hooks ? { hooks: config.hooks } : {}),
      drill: config.drill,
      compression: common.compression,
      encryption: common.encryption,
    };
  },
  activities: async (dependencies) => (await import('./activities.js')).sqliteActivities(dependencies),
  cli: {
    restore(options, target) {
      if (!options.into) return { input: {}, replaces: `the live database (${target.config.path})` };
      // The path is on the worker's host: made absolute here, where the operator typed it (the
      // worker's working directory means nothing to them).
      return { input: { into: resolvePath(options.into) } };
    },
    restored: (r) => `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}${r.safetyCopy ? `; previous database kept at ${r.safetyCopy}` : ''}`,
  },
});
