import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { PostgresConnectionConfig } from '../kinds/postgres/config.js';
import { LifeboatError } from '../errors.js';

/**
 * How Lifeboat reaches a PostgreSQL server for dumps and restores, from a target's `connection`
 * settings. The password is read here, from the environment variable the config names (or a
 * pgpass file), and handed to libpq programs through their environment (PGPASSWORD / PGPASSFILE)
 * and to node-postgres in memory: never on a command line, never in a log line or an error.
 */

export type PostgresConnection = PostgresConnectionConfig;

/** "user@host:port/database", for messages (no secret in it). */
export function describeConnection(connection: PostgresConnection, database = connection.database): string {
  return `${connection.user}@${connection.host}:${connection.port}/${database}`;
}

function where(connection: PostgresConnection): string {
  return `${connection.host}:${connection.port}`;
}

/** The password from connection.passwordEnv; undefined when none is configured (passfile, trust, peer). */
function passwordFrom(connection: PostgresConnection, env: NodeJS.ProcessEnv): string | undefined {
  if (!connection.passwordEnv) return undefined;
  const value = env[connection.passwordEnv];
  if (value === undefined || value === '') {
    throw new LifeboatError(
      'CredentialsUnavailable',
      `the environment variable ${connection.passwordEnv} (connection.passwordEnv of the target) is not set in the worker's environment`,
      `Set ${connection.passwordEnv} to the password of ${connection.user} for ${where(connection)} where the worker runs, and start the run again`,
    );
  }
  return value;
}

/** Unescapes one pgpass field (\: and \\). */
function pgpassField(field: string): string {
  return field.replace(/\\(.)/g, '$1');
}

/** The password a pgpass file holds for this connection (libpq's rules: first match wins, * matches anything). */
export function pgpassLookup(text: string, connection: PostgresConnection, database: string): string | undefined {
  const host = connection.host.startsWith('/') ? ['localhost', connection.host] : [connection.host];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields = line.split(/(?<!\\):/);
    if (fields.length < 5) continue;
    const [h, p, d, u] = fields.slice(0, 4).map(pgpassField);
    const password = pgpassField(fields.slice(4).join(':'));
    const matches = (pattern: string | undefined, values: string[]) => pattern === '*' || (pattern !== undefined && values.includes(pattern));
    if (matches(h, host) && matches(p, [String(connection.port)]) && matches(d, [database]) && matches(u, [connection.user])) return password;
  }
  return undefined;
}

/**
 * Environment for libpq programs (pg_dump, pg_restore, psql): where to connect, who as, the
 * password or passfile, and a connect timeout. Nothing else from the worker's environment but
 * PATH and locale: root's PG* variables must not silently change what the programs do.
 */
export function libpqEnvironment(connection: PostgresConnection, env: NodeJS.ProcessEnv, applicationName = 'lifeboat'): Record<string, string> {
  const inherited: Record<string, string> = {};
  for (const name of ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'HOME', 'TMPDIR']) {
    const value = env[name];
    if (value !== undefined) inherited[name] = value;
  }
  inherited.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  const password = passwordFrom(connection, env);
  return {
    ...inherited,
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGUSER: connection.user,
    PGCONNECT_TIMEOUT: '15',
    PGAPPNAME: applicationName,
    ...(password !== undefined ? { PGPASSWORD: password } : connection.passfile ? { PGPASSFILE: connection.passfile } : {}),
  };
}

/**
 * A libpq connection string naming only the database (host, user and password come from the
 * environment): a database name containing "=" would otherwise be read as a connection string.
 */
export function databaseConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

const authFailureCodes = new Set(['28P01', '28000']);
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOENT', 'EAI_AGAIN']);

function passwordHint(connection: PostgresConnection): string {
  if (connection.passwordEnv) return `Check the password in $${connection.passwordEnv} (connection.passwordEnv), and the role ${connection.user}`;
  if (connection.passfile) return `Check the entry for ${where(connection)} in ${connection.passfile} (connection.passfile), and the role ${connection.user}`;
  return `No password is configured: set connection.passwordEnv to the NAME of an environment variable that holds ${connection.user}'s password`;
}

/**
 * A typed, non-retryable error for connection failures that retrying cannot fix (wrong password,
 * unknown role, no route to the server, no such database), or undefined for anything else.
 */
export function connectionFailure(error: unknown, connection: PostgresConnection, database: string): LifeboatError | undefined {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  if ((code !== undefined && authFailureCodes.has(code)) || /password authentication failed|client password must be a string|no password supplied|SASL/i.test(message)) {
    return new LifeboatError('PostgresAuthFailed', `PostgreSQL at ${where(connection)} refused ${connection.user} for database ${database}: ${message}`, passwordHint(connection));
  }
  if (code === '3D000') {
    return new LifeboatError('PostgresConnectionFailed', `database "${database}" does not exist on ${where(connection)}`, 'Check connection.database of the target');
  }
  if ((code !== undefined && unreachableCodes.has(code)) || /timeout expired|Connection terminated due to connection timeout|could not connect|Connection refused|could not translate host name/i.test(message)) {
    return new LifeboatError(
      'PostgresConnectionFailed',
      `cannot reach PostgreSQL at ${where(connection)} (${message})`,
      'Check connection.host and connection.port of the target, and that the server is running and accepts connections from the worker',
    );
  }
  return undefined;
}

/** Classifies what a libpq program printed when it could not connect (pg_dump, pg_restore, psql). */
export function toolConnectionFailure(stderr: string, connection: PostgresConnection, database: string): LifeboatError | undefined {
  if (!/connection to server|could not connect|could not translate host name|password authentication failed|no password supplied|fe_sendauth/i.test(stderr)) return undefined;
  const line = stderr.split('\n').find((l) => l.trim() !== '')?.trim() ?? stderr.trim();
  const code = /password authentication failed|no password supplied|fe_sendauth/i.test(stderr) ? '28P01' : /does not exist/.test(stderr) && /database/.test(stderr) ? '3D000' : 'ECONNREFUSED';
  return connectionFailure(Object.assign(new Error(line), { code }), connection, database);
}

/** A node-postgres client connected to `database` (default: the target's), with typed connection failures. */
export async function connectTo(connection: PostgresConnection, env: NodeJS.ProcessEnv, database = connection.database): Promise<pg.Client> {
  let password = passwordFrom(connection, env);
  if (password === undefined && connection.passfile) {
    try {
      password = pgpassLookup(readFileSync(connection.passfile, 'utf8'), connection, database);
    } catch (error) {
      throw new LifeboatError('CredentialsUnavailable', `cannot read the pgpass file ${connection.passfile} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, 'Check connection.passfile of the target');
    }
  }
  const client = new pg.Client({
    host: connection.host,
    port: connection.port,
    user: connection.user,
    database,
    application_name: 'lifeboat',
    connectionTimeoutMillis: 15_000,
    ...(password === undefined ? {} : { password }),
  });
  // An idle client whose server goes away emits 'error'; the next query reports it instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw connectionFailure(error, connection, database) ?? error;
  }
  return client;
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
