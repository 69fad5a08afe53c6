/**
 * A PostgreSQL target is ready when Lifeboat can connect, its PostgreSQL programs can handle the
 * server's major version, and (when WAL is archived) archive_command is Lifeboat's and a segment
 * the check forces out arrives in every repository of the target, as pgBackRest's `check` does.
 */
import { execa } from 'execa';
import type pg from 'pg';
import type { PostgresTargetConfig, RepositoryConfig } from '../../config/schema.js';
import { LifeboatError } from '../../errors.js';
import { connectTo, describeConnection } from '../../postgres/dump-connection.js';
import { pgBinary, pgBinDirEnv, type PgTool } from '../../postgres/tools.js';
import { archiveCommandLine as commandLine, type ArchiveCommandSettings } from '../../postgres/archive-commands.js';
import { archiveStatus, walRecordKey } from '../../postgres/wal-archive.js';
import { openBackend } from '../../repository/open.js';
import { Finding, messageOf } from '../../check/result.js';
import type { PreflightContext } from '../contract.js';

interface ServerFacts {
  version: string;
  major: number;
  archiveMode: string;
  archiveCommand: string;
  walLevel: string;
  inRecovery: boolean;
}

/** What a failed connection needs changed: the typed failure's hint. */
export function connectionFix(error: unknown): string {
  if (error instanceof LifeboatError && error.hint) return error.hint;
  return 'Check the target\'s connection settings (host, port, user, database, passwordEnv or passfile) and that the server accepts connections from this host';
}

export async function withConnection<T>(connection: PostgresTargetConfig['connection'], env: NodeJS.ProcessEnv, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectTo(connection, env);
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function serverFacts(client: pg.Client): Promise<ServerFacts> {
  const row = (
    await client.query<{ version: string; num: number; archive_mode: string; archive_command: string; wal_level: string; in_recovery: boolean }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
              current_setting('archive_mode') AS archive_mode, current_setting('archive_command') AS archive_command,
              current_setting('wal_level') AS wal_level, pg_is_in_recovery() AS in_recovery`,
    )
  ).rows[0]!;
  return { version: row.version, major: Math.floor(row.num / 10_000), archiveMode: row.archive_mode, archiveCommand: row.archive_command, walLevel: row.wal_level, inRecovery: row.in_recovery };
}

export async function checkConnection(connection: PostgresTargetConfig['connection'], env: NodeJS.ProcessEnv): Promise<{ detail: string; facts: ServerFacts }> {
  const facts = await withConnection(connection, env, serverFacts);
  return { detail: `PostgreSQL ${facts.version} at ${describeConnection(connection)}${facts.inRecovery ? ' (a standby, in recovery)' : ''}`, facts };
}

async function toolVersion(tool: PgTool): Promise<{ version: string; major: number }> {
  const path = pgBinary(tool);
  const result = await execa(path, ['--version'], { reject: false, stdin: 'ignore' });
  const version = /(\d+)(?:\.(\d+))?/.exec(String(result.stdout));
  if (result.failed || !version) throw new Error(`${path} --version failed: ${String(result.stderr || result.stdout).trim().slice(0, 200)}`);
  return { version: version[0], major: Number(version[1]) };
}

/**
 * pg_dump and pg_restore must be at least the server's major version (an older pg_dump refuses a
 * newer server); the server-side programs a base backup's restore, recovery and drill run
 * (postgres, pg_ctl, initdb, pg_verifybackup) must be the server's own major version.
 */
export async function checkPostgresTools(target: PostgresTargetConfig, serverMajor: number): Promise<string> {
  const atLeast: PgTool[] = ['pg_dump', 'pg_restore', 'pg_basebackup'];
  const same: PgTool[] = target.method === 'base' ? ['postgres', 'pg_ctl', 'initdb', 'pg_verifybackup'] : [];
  const found: string[] = [];
  const wrong: string[] = [];
  for (const tool of [...atLeast, ...same]) {
    const { version, major } = await toolVersion(tool);
    found.push(`${tool} ${version}`);
    if (atLeast.includes(tool) ? major < serverMajor : major !== serverMajor) wrong.push(`${tool} ${version}`);
  }
  if (wrong.length) {
    throw new Finding(
      `${wrong.join(', ')} cannot work with the server's PostgreSQL ${serverMajor} (${atLeast.join(', ')} must be ${serverMajor} or newer${same.length ? `; ${same.join(', ')} exactly ${serverMajor}` : ''})`,
      `Install PostgreSQL ${serverMajor}'s programs on this host (Debian: apt-get install postgresql-${serverMajor}) and point ${pgBinDirEnv} at their bin directory (e.g. /usr/lib/postgresql/${serverMajor}/bin)`,
    );
  }
  return found.join(', ');
}

/** The archive_command line that makes the server archive into this target (as the deployment page shows it). */
export function archiveCommandLine(targetName: string, configPath: string, archive?: ArchiveCommandSettings): string {
  return commandLine(targetName, configPath, archive);
}

/** Whether archive_command runs Lifeboat's wal-push for this target. */
export function isLifeboatArchiveCommand(command: string, targetName: string): boolean {
  const escaped = targetName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const namesTarget = new RegExp(`--target[= ]['"]?${escaped}['"]?(\\s|$)`).test(command) || new RegExp(`LIFEBOAT_TARGET=['"]?${escaped}['"]?(\\s|$)`).test(command);
  return /lifeboat/.test(command) && /(^|\s)wal-push(\s|$)/.test(command) && namesTarget;
}

const pollMs = 250;

/**
 * archive_command is Lifeboat's, and a segment switched out now reaches every repository of the
 * target within timeoutMs. A dump-only target without archiving is fine (skipped); a base-backup
 * target without it cannot recover to a point in time (failed).
 */
export async function checkArchiving(
  targetName: string,
  target: PostgresTargetConfig,
  repositories: Array<{ name: string; config: RepositoryConfig }>,
  options: { configPath: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<string> {
  const line = archiveCommandLine(targetName, options.configPath, target.archive);
  return withConnection(target.connection, options.env, async (client) => {
    const facts = await serverFacts(client);
    if (facts.archiveMode === 'off') {
      const fix = `In postgresql.conf: wal_level = replica, archive_mode = on, archive_command = '${line}', then restart PostgreSQL`;
      if (target.method === 'base') throw new Finding('archive_mode is off: base backups without archived WAL cannot be recovered to a point in time, and pitr and base drills need the archive', fix);
      throw new Finding('archive_mode is off: fine for dump backups; point-in-time recovery would need WAL archiving', fix, 'skipped');
    }
    if (!isLifeboatArchiveCommand(facts.archiveCommand, targetName)) {
      throw new Finding(
        `archive_command is ${facts.archiveCommand ? `'${facts.archiveCommand}'` : 'empty'}, not Lifeboat's wal-push for target "${targetName}"`,
        `Set archive_command = '${line}' (ALTER SYSTEM SET archive_command = ...; SELECT pg_reload_conf();)`,
      );
    }
    if (facts.inRecovery) throw new Finding('the server is a standby (in recovery): it cannot switch WAL segments; run the check against the primary', 'Point connection at the primary', 'skipped');

    let segment: string;
    try {
      // A restore point writes a WAL record, so the switch always completes a segment (as pgBackRest's check does).
      await client.query(`SELECT pg_create_restore_point('lifeboat check')`);
      segment = (await client.query<{ segment: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS segment')).rows[0]!.segment;
    } catch (error) {
      if ((error as { code?: string }).code === '42501') {
        throw new Finding(
          `${target.connection.user} may not force a WAL switch (${(error as Error).message})`,
          `GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO ${target.connection.user}; or connect as a superuser`,
        );
      }
      throw error;
    }
    const backends = repositories.map(({ name, config }) => ({ name, backend: openBackend(config, options.env) }));
    const waiting = new Set(backends.map(({ name }) => name));
    const started = Date.now();
    for (;;) {
      for (const { name, backend } of backends) {
        if (waiting.has(name) && (await backend.head(walRecordKey(targetName, segment)))) waiting.delete(name);
      }
      if (waiting.size === 0) return `archive_command is Lifeboat's; segment ${segment}, switched out now, reached ${backends.map((b) => b.name).join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s`;
      const status = await archiveStatus(client);
      if (status.failing && status.lastFailedWal === segment) {
        throw new Finding(
          `archive_command failed for segment ${segment} at ${status.lastFailedAt ?? '?'} (${status.failedCount} failures since ${status.statsResetAt ?? 'the statistics reset'})`,
          `Read the PostgreSQL server log for wal-push's message; run the same command as the server's OS user to see it: ${line.replace('%p', `pg_wal/${segment}`)}`,
        );
      }
      if (Date.now() - started > options.timeoutMs) {
        throw new Finding(
          `segment ${segment} did not reach ${[...waiting].join(', ')} within ${options.timeoutMs / 1000} s (last archived: ${status.lastArchivedWal ?? 'nothing'})`,
          `Read the PostgreSQL server log; check that archive_command's --config names this config (or one with the same repositories) and that the server's environment holds the repository credentials`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  });
}

/**
 * `lifeboat check` of one postgres target: Lifeboat's connection, PostgreSQL's programs for the
 * server's major version, and WAL archiving through Lifeboat (a forced segment switch must reach
 * the archive of every repository).
 */
export async function preflightPostgres(name: string, target: PostgresTargetConfig, context: PreflightContext): Promise<void> {
  let serverMajor: number | undefined;
  const connected = await context.check('postgres', name, context.timeoutMs, async () => {
    const { detail, facts } = await checkConnection(target.connection, context.env);
    serverMajor = facts.major;
    return detail;
  }, connectionFix);
  if (connected.status !== 'ok' || serverMajor === undefined) return;
  const major = serverMajor;
  await context.check('tools', `${name}: PostgreSQL programs`, context.timeoutMs, () => checkPostgresTools(target, major), (error) => messageOf(error));
  await context.check('postgres', `${name}: WAL archive`, context.archiveTimeoutMs + context.timeoutMs, () =>
    checkArchiving(name, target, context.repositories, { configPath: context.configPath, env: context.env, timeoutMs: context.archiveTimeoutMs }),
  connectionFix);
}
