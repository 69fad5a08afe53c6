/**
 * Clusters Lifeboat starts itself (src/postgres/cluster.ts), against the real PostgreSQL 15: the
 * throwaway clusters tests and drills use, and the start / settings / stop cycle a point-in-time
 * recovery goes through with a restored data directory.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { initCluster, isClusterRunning, removeCluster, startCluster, writeClusterSettings, type RunningCluster } from '../../src/postgres/cluster.js';
import { chownToServerUser, pgBinary, serverUser } from '../../src/postgres/tools.js';
import { lifeboatError } from '../helpers/assertions.js';
import { createTestCluster, type TestCluster } from '../helpers/postgres.js';

describe('a throwaway PostgreSQL cluster', () => {
  let first: TestCluster;
  let second: TestCluster;

  before(async () => {
    // Started together, as parallel test files would.
    [first, second] = await Promise.all([createTestCluster(), createTestCluster()]);
  });
  after(async () => {
    await Promise.all([first?.close(), second?.close()]);
  });

  it('runs as the postgres OS user (never root), on a private socket directory and a loopback port', async () => {
    const user = await serverUser();
    const { cluster } = first;
    if (process.getuid?.() === 0) {
      assert.equal(user.name, 'postgres');
      assert.notEqual(user.uid, 0);
    }
    assert.equal(await processUid(cluster.pid), user.uid, 'the postmaster runs as the server user');

    const socketDir = await stat(cluster.socketDir);
    assert.equal(socketDir.mode & 0o777, 0o700, 'only the server user (and root) can reach the socket');
    assert.equal(socketDir.uid, user.uid);
    assert.ok(existsSync(join(cluster.socketDir, `.s.PGSQL.${cluster.port}`)), 'the socket is in the private directory');

    const [settings] = await first.query<{ listen: string; port: string; sockets: string }>(
      `SELECT current_setting('listen_addresses') AS listen, current_setting('port') AS port,
              current_setting('unix_socket_directories') AS sockets`,
    );
    assert.deepEqual(settings, { listen: '127.0.0.1', port: String(cluster.port), sockets: cluster.socketDir });
    assert.equal(cluster.host, '127.0.0.1');
  });

  it('lets the password role log in over TCP with its password only', async () => {
    const { cluster, passwordRole } = first;
    const client = await cluster.connect({ via: 'tcp', user: passwordRole.user, password: passwordRole.password });
    try {
      const { rows } = await client.query<{ user: string; tcp: boolean }>('SELECT current_user AS user, inet_client_addr() IS NOT NULL AS tcp');
      assert.deepEqual(rows[0], { user: passwordRole.user, tcp: true });
    } finally {
      await client.end();
    }
    await assert.rejects(cluster.connect({ via: 'tcp', user: passwordRole.user, password: 'wrong' }), { code: '28P01' }, 'a wrong password is refused');
    await assert.rejects(cluster.connect({ via: 'tcp', user: 'postgres', password: 'anything' }), { code: '28P01' }, 'TCP always needs the right password, also for the superuser');

    const [stored] = await first.query<{ verifier: string }>('SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = $1', [passwordRole.user]);
    assert.match(stored?.verifier ?? '', /^SCRAM-SHA-256\$/, 'the password is stored as a SCRAM verifier');
  });

  it('gives a connection string that psql-compatible clients accept, over the socket and over TCP', async () => {
    const { cluster, passwordRole } = first;
    for (const options of [{}, { via: 'tcp' as const, user: passwordRole.user, password: passwordRole.password }]) {
      const client = new pg.Client({ connectionString: cluster.connectionString(options) });
      await client.connect();
      try {
        const { rows } = await client.query<{ port: number }>('SELECT inet_server_port() AS port');
        assert.equal(rows[0]?.port ?? null, options.via === 'tcp' ? cluster.port : null, 'socket connections have no server port');
      } finally {
        await client.end();
      }
    }
  });

  it('does not collide with another cluster started at the same time', async () => {
    assert.notEqual(first.cluster.port, second.cluster.port);
    assert.notEqual(first.dataDir, second.dataDir);
    assert.notEqual(first.cluster.socketDir, second.cluster.socketDir);
    const systemId = async (cluster: TestCluster) => (await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()'))[0]?.id;
    assert.notEqual(await systemId(first), await systemId(second), 'two separate clusters, not two names for one');

    await first.query('CREATE TABLE only_in_first (id int)');
    const [found] = await second.query<{ table: string | null }>(`SELECT to_regclass('only_in_first')::text AS table`);
    assert.equal(found?.table, null);
  });

  it('stops and removes everything on close', async () => {
    const third = await createTestCluster();
    const { pid, port } = third.cluster;
    await third.close();
    assert.equal(existsSync(third.dir), false, 'the data directory, socket and log are gone');
    assert.equal(await isAlive(pid), false, 'the postmaster has exited');
    assert.equal(await acceptsTcp(port), false, 'nothing listens on its port');
  });
});

describe('a cluster through its life cycle, as a point-in-time recovery drives it', () => {
  let dir: string;
  /** Every handle started here, stopped again even when a test fails halfway (stop is idempotent). */
  const started: RunningCluster[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-pg-cycle-'));
    await chmod(dir, 0o700);
    await chownToServerUser(dir);
  });
  after(async () => {
    for (const cluster of started) await cluster.stop({ mode: 'immediate' });
    await removeCluster(join(dir, 'data'));
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps settings written to its data directory across restarts (each on a free port), and is removed while running', async () => {
    const dataDir = join(dir, 'data');
    // A value needing both kinds of escaping in postgresql.conf.
    const note = String.raw`it's at C:\backups\n`;
    await initCluster({ dataDir, settings: { 'lifeboat.note': note, work_mem: '5MB' } });

    let cluster = await startCluster({ dataDir, settings: { application_name: 'only-this-run' } });
    started.push(cluster);
    const ownSocketDir = cluster.socketDir;
    const firstPort = cluster.port;
    let client = await cluster.connect();
    const { rows } = await client.query<{ note: string; work_mem: string }>(`SELECT current_setting('lifeboat.note') AS note, current_setting('work_mem') AS work_mem`);
    assert.deepEqual(rows[0], { note, work_mem: '5MB' }, 'the value comes back exactly as written');
    await client.end();

    await cluster.stop();
    assert.equal(await isClusterRunning(dataDir), false);
    assert.equal(existsSync(ownSocketDir), false, 'the socket directory startCluster made is removed with the server');
    await cluster.stop(); // stopping twice is harmless

    // What a recovery step does, possibly twice when it is retried.
    await writeClusterSettings(dataDir, { work_mem: '6MB', restore_command: 'false' });
    await writeClusterSettings(dataDir, { WORK_MEM: '7MB' });
    const autoConf = await readFile(join(dataDir, 'postgresql.auto.conf'), 'utf8');
    assert.equal(autoConf.match(/^work_mem/gim)?.length, 1, `one work_mem line, not one per write:\n${autoConf}`);
    assert.equal((await stat(join(dataDir, 'postgresql.auto.conf'))).uid, (await serverUser()).uid, 'the server can rewrite it (ALTER SYSTEM)');

    cluster = await startCluster({ dataDir });
    started.push(cluster);
    client = await cluster.connect();
    const again = await client.query<{ work_mem: string; note: string; restore: string; app: string }>(
      `SELECT current_setting('work_mem') AS work_mem, current_setting('lifeboat.note') AS note,
              current_setting('restore_command') AS restore, current_setting('application_name') AS app`,
    );
    await client.end();
    assert.deepEqual(again.rows[0], { work_mem: '7MB', note, restore: 'false', app: '' }, 'per-run settings are not written to the data directory');
    assert.ok(firstPort > 0 && cluster.port > 0);

    const pid = cluster.pid;
    await removeCluster(dataDir);
    assert.equal(existsSync(dataDir), false);
    assert.equal(await isAlive(pid), false, 'removing a running cluster stops it first');
    await cluster.stop(); // the handle copes with a server that is already gone
  });

  it('refuses to create a cluster in a directory that is not empty, and leaves it alone', async () => {
    const dataDir = join(dir, 'occupied');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'keep.txt'), 'precious');
    await assert.rejects(initCluster({ dataDir }), lifeboatError('InvalidInput', /not empty/));
    assert.equal(await readFile(join(dataDir, 'keep.txt'), 'utf8'), 'precious');
  });

  it('refuses to start a directory that is not a data directory', async () => {
    await assert.rejects(startCluster({ dataDir: join(dir, 'occupied') }), lifeboatError('InvalidInput', /not a PostgreSQL data directory/));
  });

  it('refuses setting names and values that could not be written safely', async () => {
    await assert.rejects(writeClusterSettings(join(dir, 'occupied'), { 'work_mem = 1; x': '1' }), lifeboatError('InvalidInput', /setting name/));
    await assert.rejects(writeClusterSettings(join(dir, 'occupied'), { work_mem: "1MB'\nfsync = 'off" }), lifeboatError('InvalidInput', /line break/));
  });
});

describe('PostgreSQL programs', () => {
  it('are found in the PostgreSQL 15 bin directory', () => {
    assert.equal(pgBinary('pg_ctl', {}), '/usr/lib/postgresql/15/bin/pg_ctl');
  });

  it('say how to install them when they are missing', () => {
    assert.throws(() => pgBinary('pg_ctl', { LIFEBOAT_PG_BINDIR: '/nonexistent/bin' }), /pg_ctl not found at \/nonexistent\/bin\/pg_ctl.*npm run bootstrap/);
  });
});

async function processUid(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  assert.ok(uid !== undefined, `no Uid line in /proc/${pid}/status`);
  return Number(uid);
}

/**
 * Whether pid is still running, allowing it a moment: the postmaster removes postmaster.pid (which
 * is what `pg_ctl stop --wait` waits for) just before it exits, and a zombie has exited too.
 */
async function isAlive(pid: number): Promise<boolean> {
  const running = async (): Promise<boolean> => {
    try {
      const state = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '')[0];
      return state !== 'Z' && state !== 'X';
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 5_000;
  while (await running()) {
    if (Date.now() > deadline) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
