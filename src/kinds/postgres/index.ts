/**
 * PostgreSQL targets: logical backups (pg_dump, restored into a database) and physical base
 * backups (pg_basebackup, restored as a data directory, the start of a point-in-time recovery with
 * the archived WAL); drills of either. The steps are in workflows/kinds/postgres/; the pitr
 * runbook and the WAL archive commands are PostgreSQL's alone.
 */
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { UsageError } from '../../errors.js';
import { defineTargetKind, type ResolvedTargetBase } from '../contract.js';
import { postgresTargetSchema, type PostgresTargetConfig } from './config.js';
import { postgresBaseManifest, postgresDumpManifest } from './manifest.js';

export interface ResolvedPostgresTarget extends ResolvedTargetBase {
  type: 'postgres';
  method: PostgresTargetConfig['method'];
  /** References only: passwordEnv names a variable and passfile a file; the activities read them. */
  connection: PostgresTargetConfig['connection'];
  /** spoolDir is absolute (relative paths in the config are relative to the config file). */
  dump: PostgresTargetConfig['dump'];
  base: PostgresTargetConfig['base'];
  /** Absent in runs resolved before archive checks existed. */
  archive?: PostgresTargetConfig['archive'];
  /** dir is absolute and always set (default: <system temp dir>/lifeboat-recovery). */
  recovery: PostgresTargetConfig['recovery'] & { dir: string };
  /** scratchDir is absolute when set. */
  drill: PostgresTargetConfig['drill'];
}

export const postgresKind = defineTargetKind({
  type: 'postgres',
  configSchema: postgresTargetSchema,
  methods: ['dump', 'base'],
  manifests: [postgresDumpManifest, postgresBaseManifest],
  absolutePaths(config, absolute) {
    if (config.connection.passfile) config.connection.passfile = absolute(config.connection.passfile);
  },
  resolve(config, common, { configPath }): ResolvedPostgresTarget {
    const spoolDir = config.dump.spoolDir;
    const scratchDir = config.drill.scratchDir;
    const absolute = (path: string): string => (isAbsolute(path) ? path : resolvePath(dirname(configPath), path));
    return {
      ...common,
      type: 'postgres',
      method: config.method,
      connection: config.connection,
      dump: { ...config.dump, ...(spoolDir ? { spoolDir: absolute(spoolDir) } : {}) },
      base: config.base,
      archive: config.archive,
      recovery: {
        ...config.recovery,
        dir: absolute(config.recovery.dir ?? join(tmpdir(), 'lifeboat-recovery')),
        ...(config.recovery.cutover ? { cutover: { ...config.recovery.cutover, dataDir: absolute(config.recovery.cutover.dataDir) } } : {}),
      },
      drill: { ...config.drill, ...(scratchDir ? { scratchDir: absolute(scratchDir) } : {}) },
    };
  },
  activities: async (dependencies) => (await import('./activities.js')).postgresActivities(dependencies),
  preflight: async (name, config, context) => (await import('./preflight.js')).preflightPostgres(name, config, context),
  state: {
    archiver: async (config, env, now) => (await import('./state.js')).readArchiver(config.connection, env, now),
    wal: async (input) => (await import('./state.js')).readWal(input),
  },
  cli: {
    restore(options, target) {
      const method = options.method ?? target.config.method;
      if (method === 'base' && options.yes) throw new UsageError('--yes: a base backup is restored into a new data directory only; to replace the live cluster use `lifeboat pitr --cutover`');
      // A data directory is a path on the worker's host: made absolute here, where the operator
      // typed it; a database name stays as it is.
      const into = options.into && method === 'base' ? resolvePath(options.into) : options.into;
      return {
        input: { ...(options.method ? { method: options.method } : {}), ...(into ? { into } : {}), ...(method === 'dump' && options.yes ? { replaceExisting: true } : {}) },
        notes:
          method === 'dump' && options.into && !options.yes
            ? [`if database ${options.into} exists, the restore waits for an approval before it replaces it: \`lifeboat approve <workflow id>\` (or --reject)`]
            : [],
      };
    },
    restored(r) {
      const what = `backup ${r.backupId} (snapshot ${r.snapshotAt})`;
      return r.backupKind === postgresBaseManifest.kind
        ? `restored base ${what} as data directory ${r.restoredTo}, verified by pg_verifybackup; started as it is (pg_ctl -D), it replays the WAL inside and opens as of the snapshot. Set its port, and archive_mode = off unless it replaces the live cluster, before starting it`
        : `restored ${what} into database ${r.restoredTo}${r.safetyCopy ? `; the previous database is kept as ${r.safetyCopy}` : ''}`;
    },
  },
});

