import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import {
  lifeboatSearchAttributes,
  startTemporalDevServer,
  type TemporalDevServer,
} from '../../src/dev/temporal-server.js';

// temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD; the proto
// package is only a transitive dependency, so the wire value is spelled out.
const INDEXED_VALUE_TYPE_KEYWORD = 2;

const lifeboatTarget = defineSearchAttributeKey('LifeboatTarget', SearchAttributeType.KEYWORD);

/** A fresh directory per test, removed afterwards, so db files never leak between tests. */
async function scratchDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-temporal-dev-server-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a headless server that is stopped when the test ends, even if it fails. */
async function startServer(t: { after(fn: () => Promise<void>): void }, dbFile: string): Promise<TemporalDevServer> {
  const server = await startTemporalDevServer({ dbFile, uiPort: false });
  t.after(() => server.stop());
  return server;
}

async function withConnection<T>(address: string, use: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address });
  try {
    return await use(connection);
  } finally {
    await connection.close();
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a started dev server already has the Lifeboat search attributes registered as Keyword', async (t) => {
  const server = await startServer(t, join(await scratchDir(t), 'temporal.db'));

  const { customAttributes } = await withConnection(server.address, (connection) =>
    connection.operatorService.listSearchAttributes({ namespace: 'default' }),
  );

  for (const name of Object.keys(lifeboatSearchAttributes)) {
    assert.equal(customAttributes?.[name], INDEXED_VALUE_TYPE_KEYWORD, `${name} should be a Keyword search attribute`);
  }
});

test('workflows started before a stop are still there after restarting on the same db file', async (t) => {
  const dbFile = join(await scratchDir(t), 'temporal.db');
  const workflowId = 'persisted-across-restart';

  // No worker polls this task queue, so the workflow stays open and only the
  // server's persisted state can explain it still existing after the restart.
  const first = await startServer(t, dbFile);
  await withConnection(first.address, (connection) =>
    new Client({ connection }).workflow.start('NeverExecuted', {
      taskQueue: 'no-worker-listens-here',
      workflowId,
      typedSearchAttributes: [{ key: lifeboatTarget, value: 'orders-db' }],
    }),
  );
  await first.stop();
  assert.equal(isProcessAlive(first.pid), false, 'the first server process should be gone');

  // Same db, and the search attributes are passed again although the db already has them.
  const second = await startServer(t, dbFile);
  const description = await withConnection(second.address, (connection) =>
    new Client({ connection }).workflow.getHandle(workflowId).describe(),
  );

  assert.equal(description.workflowId, workflowId);
  assert.equal(description.type, 'NeverExecuted');
  assert.equal(description.status.name, 'RUNNING');
  assert.equal(description.typedSearchAttributes.get(lifeboatTarget), 'orders-db');
});

test('stop() ends the server process, and calling it again is harmless', async (t) => {
  const server = await startServer(t, join(await scratchDir(t), 'temporal.db'));
  assert.equal(isProcessAlive(server.pid), true);

  const stoppedAt = Date.now();
  await server.stop();
  await server.stop();

  assert.equal(isProcessAlive(server.pid), false);
  assert.ok(Date.now() - stoppedAt < 10_000, 'a graceful SIGTERM stop should not need the SIGKILL fallback');
});

test('starting on a port another server already uses is refused with a message naming the port', async (t) => {
  const dir = await scratchDir(t);
  const running = await startServer(t, join(dir, 'running.db'));
  const takenPort = Number(running.address.split(':')[1]);

  await assert.rejects(
    startTemporalDevServer({ dbFile: join(dir, 'second.db'), port: takenPort, uiPort: false }),
    new RegExp(`port 127\\.0\\.0\\.1:${takenPort} is already in use`),
  );
});

test('a server that exits during startup fails fast and quotes its log in the error', async (t) => {
  const dir = await scratchDir(t);
  const dbFile = join(dir, 'not-a-database.db');
  await writeFile(dbFile, 'this is not an SQLite file');
  const logFile = join(dir, 'server.log');

  const startedAt = Date.now();
  await assert.rejects(startTemporalDevServer({ dbFile, uiPort: false, logFile }), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.match(error.message, /exited during startup \(exit code 1\)/);
    assert.match(error.message, /file is not a database/);
    assert.ok(error.message.includes(logFile), 'the error should name the log file');
    return true;
  });

  assert.ok(Date.now() - startedAt < 30_000, 'an early exit should not wait for the startup timeout');
  assert.match(await readFile(logFile, 'utf8'), /file is not a database/);
});
