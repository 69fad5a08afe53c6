import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import type pg from 'pg';
import { LifeboatError } from '../errors.js';
import { copyEndMarker } from './dump-archive.js';
import { databaseConninfo, describeConnection, libpqEnvironment, quoteIdentifier, quoteLiteral, toolConnectionFailure, type PostgresConnection } from './dump-connection.js';
import { pgBinary } from './tools.js';

/**
 * pg_dump, pg_restore and psql as Lifeboat drives them, and the database-level statements
 * (CREATE / DROP / RENAME DATABASE) of restores. These are client programs: they run as the
 * worker's own OS user, with the password in their environment (see dump-connection.ts).
 */

/** How many lines of a program's stderr an error quotes. */
const stderrLines = 20;

export interface ToolRun {
  connection: PostgresConnection;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/** The last lines a program printed on stderr, for an error message. */
export function stderrTail(stderr: string, lines = stderrLines): string {
  const kept = stderr.trim().split('\n').filter((line) => line.trim() !== '');
  return kept.slice(-lines).join('\n');
}

function failureOf(
  type: 'DumpFailed' | 'RestoreFailed',
  what: string,
  result: { exitCode?: number; signal?: string; stderr: string; isCanceled?: boolean },
  run: ToolRun,
  database: string,
  hint: string,
): Error {
  const connectionError = toolConnectionFailure(result.stderr, run.connection, database);
  if (connectionError) return connectionError;
  const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.exitCode ?? '?'}`;
  const detail = stderrTail(result.stderr);
  // Killed or cancelled: another attempt may well succeed (a worker shutting down, a server restart).
  if (result.signal || result.isCanceled) return new Error(`${what} ${how}${detail ? `:\n${detail}` : ''}`);
  return new LifeboatError(type, `${what} ${how}${detail ? `:\n${detail}` : ''}`, hint);
}

/**
 * How a libpq tool runs: with the connection's environment only (the password from its
 * reference, nothing else inherited), no stdin, cancelled by run.signal, and never throwing
 * (failures are read from the result, with the tool's stderr).
 */
function libpqToolOptions(run: ToolRun, applicationName: string, extraEnv: Record<string, string> = {}) {
  return {
    env: { ...libpqEnvironment(run.connection, run.env, applicationName), ...extraEnv },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    ...(run.signal ? { cancelSignal: run.signal } : {}),
  } as const;
}

/** pg_dump -Fd -j N into an empty spool directory, from an exported snapshot. */
export async function dumpToDirectory(run: ToolRun & { snapshot: string; directory: string; jobs: number }): Promise<void> {
  const { connection } = run;
  const result = await execa(
    pgBinary('pg_dump'),
    ['--format=directory', `--jobs=${run.jobs}`, '--compress=0', `--snapshot=${run.snapshot}`, '--no-password', '--file', run.directory, '--dbname', databaseConninfo(connection.database)],
    libpqToolOptions(run, 'lifeboat-dump'),
  );
  if (result.failed) {
    throw failureOf('DumpFailed', `pg_dump of ${describeConnection(connection)}`, { ...result, stderr: String(result.stderr) }, run, connection.database, 'Nothing was stored; fix what pg_dump reports and run the backup again');
  }
}

export interface CustomDump {
  stdout: Readable;
  /** Resolves when pg_dump exited successfully; rejects with DumpFailed (its stderr) otherwise. */
  done: Promise<void>;
  kill(): void;
}

/** pg_dump -Fc -Z0 to stdout, from an exported snapshot: nothing is written to local disk. */
export function dumpCustomToStdout(run: ToolRun & { snapshot: string }): CustomDump {
  const { connection } = run;
  const child: ResultPromise<{ reject: false; stdin: 'ignore'; encoding: 'buffer'; buffer: { stdout: false; stderr: true } }> = execa(
    pgBinary('pg_dump'),
    ['--format=custom', '--compress=0', `--snapshot=${run.snapshot}`, '--no-password', '--dbname', databaseConninfo(connection.database)],
    { ...libpqToolOptions(run, 'lifeboat-dump'), encoding: 'buffer', buffer: { stdout: false, stderr: true } },
  );
  const done = child.then((result) => {
    if (!result.failed) return;
    throw failureOf(
      'DumpFailed',
      `pg_dump of ${describeConnection(connection)}`,
      { ...result, stderr: Buffer.from(result.stderr as Uint8Array).toString('utf8') },
      run,
      connection.database,
      'Nothing was stored; fix what pg_dump reports and run the backup again',
    );
  });
  done.catch(() => undefined);
  return { stdout: child.stdout, done, kill: () => void child.kill('SIGKILL') };
}

/**
 * `pg_restore --list` of a dump directory or of an archive's header and TOC (given as bytes):
 * proves pg_restore can read what was stored. Returns the number of TOC entries it lists.
 */
export async function listArchive(source: { directory: string } | { tocBytes: Buffer }, env: NodeJS.ProcessEnv): Promise<number> {
  const args = 'directory' in source ? ['--list', '--format=directory', source.directory] : ['--list', '--format=custom'];
  const result = await execa(pgBinary('pg_restore'), args, {
    reject: false,
    extendEnv: false,
    env: { PATH: env.PATH ?? '/usr/bin:/bin' },
    ...('tocBytes' in source ? { input: source.tocBytes } : { stdin: 'ignore' as const }),
  });
  if (result.failed) {
    throw new LifeboatError('DumpFailed', `pg_restore --list cannot read the dump: ${stderrTail(String(result.stderr)) || `exit status ${result.exitCode}`}`, 'The dump is unusable; nothing was kept. Run the backup again');
  }
  const entries = /^;\s+TOC Entries:\s+(\d+)/m.exec(String(result.stdout));
  if (!entries) throw new LifeboatError('DumpFailed', 'pg_restore --list printed no TOC entry count', 'The dump is unusable; run the backup again');
  return Number(entries[1]);
}

/**
 * pg_restore -j N into an existing, empty database. pg_restore carries on past errors and exits 1
 * when it ignored some ("errors ignored on restore: N"): that is a failure here, with its messages.
 */
export async function restoreInto(run: ToolRun & { database: string; source: string; format: 'directory' | 'custom'; jobs: number }): Promise<{ warnings: string }> {
  const { connection } = run;
  const result = await execa(
    pgBinary('pg_restore'),
    [`--format=${run.format}`, `--jobs=${run.jobs}`, '--no-password', '--dbname', databaseConninfo(run.database), run.source],
    libpqToolOptions(run, 'lifeboat-restore'),
  );
  const stderr = String(result.stderr);
  if (result.failed) {
    throw failureOf(
      'RestoreFailed',
      `pg_restore into ${describeConnection(connection, run.database)}`,
      { ...result, stderr },
      run,
      run.database,
      'The database it restored into is dropped; nothing else was changed. Fix what pg_restore reports (missing roles, extensions, privileges) and run the restore again',
    );
  }
  return { warnings: stderrTail(stderr) };
}

/**
 * sha256 and row count of a table's COPY text in a database, in the form pg_dump wrote it (with
 * its end marker), so it can be compared with the fingerprint taken at dump time. Sequential
 * scans start at block 0 (synchronize_seqscans off): a table loaded by one COPY reads back in
 * the order it was written.
 */
export async function copyFingerprint(run: ToolRun & { database: string; copy: string; encoding: string }): Promise<{ rows: number; sha256: string }> {
  const statement = run.copy.replace(/\s+FROM\s+stdin;\s*$/i, ' TO STDOUT');
  if (statement === run.copy) throw new Error(`unexpected COPY statement in the manifest: ${run.copy}`);
  const child = execa(
    pgBinary('psql'),
    ['--no-psqlrc', '--quiet', '--no-password', '--set', 'ON_ERROR_STOP=1', '--command', 'SET synchronize_seqscans = off', '--command', statement, '--dbname', databaseConninfo(run.database)],
    {
      ...libpqToolOptions(run, 'lifeboat-verify', { PGCLIENTENCODING: run.encoding }),
      encoding: 'buffer',
      buffer: { stdout: false, stderr: true },
    },
  );
  const hash = createHash('sha256');
  let lines = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
  });
  const result = await child;
  if (result.failed) {
    const stderr = Buffer.from(result.stderr as Uint8Array).toString('utf8');
    throw toolConnectionFailure(stderr, run.connection, run.database) ?? new Error(`${statement} in ${run.database} failed: ${stderrTail(stderr)}`);
  }
  hash.update(copyEndMarker);
  return { rows: lines, sha256: hash.digest('hex') };
}

// Database-level statements; `client` is connected to the maintenance database.

export async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length > 0;
}

/** Drops a database if it exists, disconnecting its sessions first (WITH FORCE). Idempotent. */
export async function dropDatabase(client: pg.Client, name: string): Promise<boolean> {
  const existed = await databaseExists(client, name);
  if (existed) await client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
  return existed;
}

/** An empty database with the encoding and locale of the dumped one (from template0, as pg_dump --create does). */
export async function createDatabase(client: pg.Client, name: string, like: { encoding: string; collate: string; ctype: string }): Promise<void> {
  await client.query(
    `CREATE DATABASE ${quoteIdentifier(name)} WITH TEMPLATE = template0 ENCODING = ${quoteLiteral(like.encoding)} ` +
      `LC_COLLATE = ${quoteLiteral(like.collate)} LC_CTYPE = ${quoteLiteral(like.ctype)}`,
  );
}

/** Disconnects every other session of a database. */
export async function terminateSessions(client: pg.Client, name: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    'SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  return Number(rows[0]?.n ?? 0);
}

export async function setAllowConnections(client: pg.Client, name: string, allow: boolean): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdentifier(name)} WITH ALLOW_CONNECTIONS ${allow ? 'true' : 'false'}`);
}

/**
 * Puts `staging` in the place of `into` in one transaction: `into` (if it exists) becomes
 * `safety`, `staging` becomes `into`. Clients see the old database or the new one, never none.
 * Neither database may have sessions; the caller has closed `into` to new ones first.
 */
export async function swapDatabases(client: pg.Client, names: { staging: string; into: string; safety: string | null }): Promise<void> {
  await client.query('BEGIN');
  try {
    if (names.safety) await client.query(`ALTER DATABASE ${quoteIdentifier(names.into)} RENAME TO ${quoteIdentifier(names.safety)}`);
    await client.query(`ALTER DATABASE ${quoteIdentifier(names.staging)} RENAME TO ${quoteIdentifier(names.into)}`);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
