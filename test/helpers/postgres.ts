import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { initCluster, startCluster, type ClusterSettings, type RunningCluster } from '../../src/postgres/cluster.js';
import { chownToServerUser } from '../../src/postgres/tools.js';

/**
 * A throwaway PostgreSQL 15 cluster for one test file: its own temp directory (owned by the server
 * user, so the server and the commands it runs can write there), a free loopback port, a private
 * socket, a superuser reachable over the socket, and a role that must log in with a password over
 * TCP. Several test files may create clusters at the same time: nothing is shared.
 */
export interface TestCluster {
  /** Scratch directory owned by the server user (data directory, log, and room for fs repositories). */
  dir: string;
  dataDir: string;
  logFile: string;
  cluster: RunningCluster;
  /** Superuser connection over the private socket, kept open for the file. */
  client: pg.Client;
  /** A LOGIN role with a scram-sha-256 password, for password-authentication tests (connect via: 'tcp'). */
  passwordRole: { user: string; password: string };
  /** Runs one statement as the superuser and returns its rows. */
  query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** ALTER SYSTEM SET each setting, then reload, e.g. to point archive_command at a test's repository. */
  configure(settings: ClusterSettings): Promise<void>;
  /** Stops the server (immediate: nothing here is worth a checkpoint) and removes everything. */
  close(): Promise<void>;
}

export interface TestClusterOptions {
  /**
   * WAL archiving prepared: wal_level=replica and archive_mode=on (both need a restart, so they
   * are set at creation), with an empty archive_command (WAL waits in pg_wal) for the test to set
   * through configure().
   */
  archive?: boolean;
  /** More settings for postgresql.auto.conf. */
  settings?: ClusterSettings;
  /** Environment of the server and of its archive/restore commands (e.g. S3 credentials). */
  env?: Record<string, string>;
}

export async function createTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-pg-test-'));
  // If the test process dies without close(), do not leave the directory behind (the cluster's own
  // exit hook stops the server).
  const removeOnExit = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeOnExit);
  let cluster: RunningCluster | undefined;
  let client: pg.Client | undefined;
  try {
    await chmod(dir, 0o700);
    await chownToServerUser(dir);
    const dataDir = join(dir, 'data');
    const logFile = join(dir, 'postgresql.log');
    await initCluster({
      dataDir,
      settings: {
        // A test cluster never has to survive a power cut; these make its writes cheap.
        fsync: 'off',
        synchronous_commit: 'off',
        ...(options.archive ? { wal_level: 'replica', archive_mode: 'on', archive_command: '' } : {}),
        ...options.settings,
      },
    });
    cluster = await startCluster({ dataDir, socketDir: join(dir, 'run'), logFile, ...(options.env ? { env: options.env } : {}) });
    const connected = await cluster.connect({ applicationName: 'lifeboat-test' });
    client = connected;

    const passwordRole = { user: 'lifeboat_app', password: randomBytes(12).toString('base64url') };
    await connected.query(`CREATE ROLE ${passwordRole.user} LOGIN PASSWORD ${connected.escapeLiteral(passwordRole.password)}`);

    const running = cluster;
    const query = async <Row extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<Row[]> =>
      (await connected.query<Row>(sql, params)).rows;
    return {
      dir,
      dataDir,
      logFile,
      cluster: running,
      client: connected,
      passwordRole,
      query,
      async configure(settings) {
        for (const [name, value] of Object.entries(settings)) {
          // ALTER SYSTEM takes no bind parameters; the name is checked, the value quoted.
          if (!/^[a-z_][a-z0-9_.]*$/i.test(name)) throw new Error(`invalid setting name ${name}`);
          await connected.query(`ALTER SYSTEM SET ${name} = ${connected.escapeLiteral(value)}`);
        }
        // pg_reload_conf() only signals the postmaster. Once this session has re-read the files,
        // the postmaster has passed the signal on to every child (the archiver among them), which
        // then re-reads them before its next file.
        const before = (await connected.query<{ at: Date }>('SELECT pg_conf_load_time() AS at')).rows[0]!.at.getTime();
        await connected.query('SELECT pg_reload_conf()');
        for (const deadline = Date.now() + 10_000; ; await new Promise((resolve) => setTimeout(resolve, 20))) {
          const { at } = (await connected.query<{ at: Date }>('SELECT pg_conf_load_time() AS at')).rows[0]!;
          if (at.getTime() > before) break;
          if (Date.now() > deadline) throw new Error(`PostgreSQL did not reload its configuration within 10 s (${Object.keys(settings).join(', ')})`);
        }
      },
      async close() {
        await connected.end().catch(() => undefined);
        await running.stop({ mode: 'immediate' });
        await rm(dir, { recursive: true, force: true });
        process.removeListener('exit', removeOnExit);
      },
    };
  } catch (error) {
    await client?.end().catch(() => undefined);
    await cluster?.stop({ mode: 'immediate' }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    process.removeListener('exit', removeOnExit);
    throw error;
  }
}
