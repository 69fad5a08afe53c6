/**
 * Records one workflow history per runbook path on a fresh stack and saves them as the replay
 * fixtures in test/fixtures/histories/<scenario>.json (the SDK's history JSON, as `temporal
 * workflow show --output json` writes it). test/integration/replay.test.ts replays them against
 * the current workflow code, and records fresh ones the same way (recordHistories below).
 *
 *   node --import tsx scripts/record-histories.ts                    writes every fixture
 *   node --import tsx scripts/record-histories.ts pg-pitr-latest ...  runs all, writes only these
 *   node --import tsx scripts/record-histories.ts --out <dir> ...      writes them to <dir>
 *
 * Re-record when a workflow changes on purpose, and keep the old files if runs started by the old
 * code may still be open when the new code is deployed (then both must replay): move them into
 * test/fixtures/histories/older/ under a name that says what changed; the replay test replays them.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { runbookFailure } from '../src/client.js';
import { projectRoot } from '../src/dev/tools.js';
import { quoteIdentifier } from '../src/postgres/dump-connection.js';
import { removeRecoveredCluster } from '../src/postgres/recovery.js';
import type { PitrResult } from '../workflows/pitr.js';
import type { RestoreResult } from '../workflows/restore.js';
import { createLifeboat, type Lifeboat } from '../test/helpers/lifeboat.js';
import { archivedSource, commitRows, switchAndArchive, type FsArchivedSource } from '../test/helpers/pitr-workload.js';
import { createTestRedis, type TestRedis } from '../test/helpers/redis.js';

export const fixturesDir = join(projectRoot, 'test', 'fixtures', 'histories');

/** Every path through the runbooks a fixture covers; the file names are these names. */
export const scenarios = [
  'backup',
  'restore-into',
  'restore-in-place',
  'restore-rolled-back',
  'restore-health-failed',
  'drill-passed',
  'drill-failed',
  // The same runbooks on a postgres target take other paths (workflows/kinds/postgres/, pitr.ts).
  'pg-dump-backup',
  'pg-dump-restore',
  'pg-dump-drill',
  'pg-base-backup',
  'pg-base-restore',
  'pg-pitr-latest',
  'pg-pitr-unreachable',
  'pg-base-drill',
  // Directory trees (workflows/kinds/tree.ts): files targets, and secrets targets (the same steps, other names).
  'files-backup',
  'files-restore-into',
  'files-restore-in-place',
  'files-drill',
  'secrets-backup',
  'secrets-restore-in-place',
  // A redis target: a live server (test/helpers/redis.ts); the restore replaces its RDB between the hooks.
  'redis-backup',
  'redis-restore-in-place',
  'redis-drill',
  // A command target: its stdout is the backup, piped into the restore command, checked by the drill's commands.
  'command-backup',
  'command-restore',
  'command-drill',
] as const;
export type Scenario = (typeof scenarios)[number];

export interface RecordedHistory {
  scenario: Scenario;
  workflowId: string;
  history: History;
}

/** A database of a few rows: the histories stay small, and the runbooks take a second each. */
function createTinyDatabase(path: string): void {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = wal');
    db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL); INSERT INTO notes (body) VALUES ('one'), ('two'), ('three');");
  } finally {
    db.close();
  }
}

/**
 * Runs every scenario on the given installation (it must have a worker running: startWorker()),
 * overwriting its config, and returns the histories in the order of `scenarios`. The postgres
 * scenarios run against a throwaway cluster whose WAL is archived by `lifeboat wal-push`, removed
 * at the end.
 */
export async function recordHistories(lifeboat: Lifeboat): Promise<RecordedHistory[]> {
  const [source, redis] = await Promise.all([archivedSource(lifeboat, 'ledger'), createTestRedis()]);
  try {
    return await recordOn(lifeboat, source, redis);
  } finally {
    await source.db.close();
    await redis.close();
  }
}

async function recordOn(lifeboat: Lifeboat, source: FsArchivedSource, redis: TestRedis): Promise<RecordedHistory[]> {
  const path = (name: string) => join(lifeboat.dir, `${name}.sqlite`);
  for (const name of ['notes', 'hooked', 'unhealthy']) createTinyDatabase(path(name));
  const keyFile = join(lifeboat.dir, 'replay.key');
  await writeFile(keyFile, randomBytes(32));
  const rowsExist = { name: 'rows exist', sql: 'SELECT count(*) FROM notes', expect: 3 };
  const config = lifeboat.baseConfig(
      {
        notes: { type: 'sqlite', path: path('notes'), repositories: ['local'], drill: { rtoTargetSeconds: 600, rpoTargetSeconds: 3600, smokeChecks: [rowsExist] } },
        // Same database, a smoke check that cannot pass: the drill completes with passed=false.
        strict: { type: 'sqlite', path: path('notes'), repositories: ['local'], drill: { smokeChecks: [rowsExist, { name: 'impossible', sql: 'SELECT count(*) FROM notes', expect: -1 }] } },
        // The start hook fails after the swap: the restore rolls back to the safety copy and reports HookFailed.
        hooked: { type: 'sqlite', path: path('hooked'), repositories: ['local'], hooks: { stop: 'true', start: 'echo application did not start >&2; exit 3' } },
        // The application starts but never answers its health URL (nothing listens on port 9): stop, roll back, start.
        unhealthy: { type: 'sqlite', path: path('unhealthy'), repositories: ['local'], hooks: { stop: 'true', start: 'true', healthUrl: 'http://127.0.0.1:9/health', healthTimeoutSeconds: 1 } },
        // One database, both methods; base backups and WAL in the repository the server archives into.
        // A drill follows the target's method, hence two targets.
        ledger: {
          type: 'postgres',
          repositories: ['archive'],
          connection: source.connection,
          method: 'base',
          dump: { jobs: 1 },
          base: { partSizeMiB: 1 },
          recovery: { dir: source.recoveryDir, timeoutSeconds: 120 },
          drill: { smokeChecks: [{ name: 'ledger is readable', sql: 'SELECT count(*) FROM ledger', minRows: 1 }] },
        },
        'ledger-dump': { type: 'postgres', repositories: ['archive'], connection: source.connection, method: 'dump', dump: { jobs: 1 } },
        sessions: {
          type: 'redis',
          repositories: ['local'],
          connection: { host: '127.0.0.1', port: redis.port, passwordEnv: redis.passwordEnv },
          hooks: { stop: redis.stopCommand, start: redis.startCommand },
          drill: { smokeChecks: [{ name: 'greeting', get: 'greeting', equals: 'hello' }] },
        },
        exported: {
          type: 'command',
          repositories: ['local'],
          backup: { argv: ['printf', 'one\\ntwo\\nthree\\n'] },
          restore: { argv: ['sh', '-c', 'cat > "$1"', 'restore', join(lifeboat.dir, 'imported.txt')] },
          drill: { checks: [{ name: 'three lines', argv: ['sh', '-c', 'test "$(wc -l < "$LIFEBOAT_PAYLOAD")" -eq 3'] }] },
        },
      },
      { encryption: { keyFile } },
  );
  const tree = join(lifeboat.dir, 'tree', 'etc');
  const vault = join(lifeboat.dir, 'tree', 'vault');
  await mkdir(join(tree, 'conf.d'), { recursive: true });
  await mkdir(vault, { recursive: true });
  await writeFile(join(tree, 'app.conf'), 'listen 8080;\n');
  await writeFile(join(tree, 'conf.d', 'site.conf'), 'server_name example;\n');
  await writeFile(join(vault, 'token'), randomBytes(16).toString('hex'), { mode: 0o600 });
  (config.targets as Record<string, unknown>).tree = {
    type: 'files',
    roots: [tree],
    repositories: ['local'],
    drill: { mustExist: ['etc/app.conf'], commands: [{ name: 'config is there', run: 'test -s etc/app.conf' }] },
  };
  (config.targets as Record<string, unknown>).vault = { type: 'secrets', roots: [vault], repositories: ['local'] };
  (config.repositories as Record<string, unknown>).archive = { type: 'fs', path: source.repositoryPath };
  await lifeboat.writeConfig(config);

  const recorded: RecordedHistory[] = [];
  const keep = async (scenario: Scenario, workflowId: string) => {
    recorded.push({ scenario, workflowId, history: await lifeboat.client.workflow.getHandle(workflowId).fetchHistory() });
  };
  const completed = async (scenario: Scenario, handle: Awaited<ReturnType<Lifeboat['start']>>) => {
    await handle.result();
    await keep(scenario, handle.workflowId);
  };

  const failedWith = async (scenario: Scenario, handle: Awaited<ReturnType<Lifeboat['start']>>, type: string) => {
    const failure = await handle.result().then(
      () => ({ type: undefined, message: 'it succeeded' }),
      (error: unknown) => runbookFailure(error),
    );
    if (failure.type !== type) throw new Error(`${scenario}: ${handle.workflowId} should fail with ${type}, not ${failure.type}: ${failure.message}`);
    await keep(scenario, handle.workflowId);
  };

  const backup = await lifeboat.start('backup', { target: 'notes' });
  await completed('backup', backup);
  await completed('restore-into', await lifeboat.start('restore', { target: 'notes', into: join(lifeboat.dir, 'restored-notes.sqlite') }));
  await completed('restore-in-place', await lifeboat.start('restore', { target: 'notes' }));
  await lifeboat.run('backup', { target: 'hooked' });
  const rolledBack = await lifeboat.start('restore', { target: 'hooked' });
  await failedWith('restore-rolled-back', rolledBack, 'HookFailed');
  await lifeboat.run('backup', { target: 'unhealthy' });
  await failedWith('restore-health-failed', await lifeboat.start('restore', { target: 'unhealthy' }), 'HealthCheckFailed');
  const passed = await lifeboat.start('drill', { target: 'notes' });
  if (!(await passed.result()).passed) throw new Error('the drill of "notes" did not pass');
  await keep('drill-passed', passed.workflowId);
  await lifeboat.run('backup', { target: 'strict' });
  const failed = await lifeboat.start('drill', { target: 'strict' });
  if ((await failed.result()).passed) throw new Error('the drill of "strict" passed');
  await keep('drill-failed', failed.workflowId);

  await source.db.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
  await commitRows(source.db, 1, 3);
  await completed('pg-dump-backup', await lifeboat.start('backup', { target: 'ledger-dump' }));
  const restored = await lifeboat.start('restore', { target: 'ledger-dump' });
  await completed('pg-dump-restore', restored);
  await source.db.query(`DROP DATABASE ${quoteIdentifier(((await restored.result()) as RestoreResult).restoredTo)}`);
  const dumpDrill = await lifeboat.start('drill', { target: 'ledger-dump' });
  if (!(await dumpDrill.result()).passed) throw new Error('the dump drill of "ledger-dump" did not pass');
  await keep('pg-dump-drill', dumpDrill.workflowId);

  await completed('pg-base-backup', await lifeboat.start('backup', { target: 'ledger' }));
  await commitRows(source.db, 4, 3);
  await switchAndArchive(source, 'ledger');
  const baseRestore = await lifeboat.start('restore', { target: 'ledger', into: join(source.recoveryDir, 'restored') });
  await completed('pg-base-restore', baseRestore);
  await rm(join(source.recoveryDir, 'restored'), { recursive: true, force: true });
  const latest = await lifeboat.start('pitr', { target: 'ledger', recoveryTarget: { kind: 'latest' } });
  await completed('pg-pitr-latest', latest);
  await removeRecoveredCluster(((await latest.result()) as PitrResult).cluster);
  const tooLate = new Date(Date.now() + 3_600_000).toISOString();
  await failedWith('pg-pitr-unreachable', await lifeboat.start('pitr', { target: 'ledger', recoveryTarget: { kind: 'time', time: tooLate } }), 'RecoveryTargetUnreachable');
  const baseDrill = await lifeboat.start('drill', { target: 'ledger' });
  if (!(await baseDrill.result()).passed) throw new Error('the base drill of "ledger" did not pass');
  await keep('pg-base-drill', baseDrill.workflowId);

  await completed('files-backup', await lifeboat.start('backup', { target: 'tree' }));
  await completed('files-restore-into', await lifeboat.start('restore', { target: 'tree', into: join(lifeboat.dir, 'restored-tree') }));
  await completed('files-restore-in-place', await lifeboat.start('restore', { target: 'tree' }));
  const filesDrill = await lifeboat.start('drill', { target: 'tree' });
  if (!(await filesDrill.result()).passed) throw new Error('the drill of "tree" did not pass');
  await keep('files-drill', filesDrill.workflowId);
  await completed('secrets-backup', await lifeboat.start('backup', { target: 'vault' }));
  await completed('secrets-restore-in-place', await lifeboat.start('restore', { target: 'vault' }));
  await redis.call('SET', 'greeting', 'hello');
  await completed('redis-backup', await lifeboat.start('backup', { target: 'sessions' }));
  await completed('redis-restore-in-place', await lifeboat.start('restore', { target: 'sessions' }));
  const redisDrill = await lifeboat.start('drill', { target: 'sessions' });
  if (!(await redisDrill.result()).passed) throw new Error('the drill of "sessions" did not pass');
  await keep('redis-drill', redisDrill.workflowId);

  await completed('command-backup', await lifeboat.start('backup', { target: 'exported' }));
  await completed('command-restore', await lifeboat.start('restore', { target: 'exported' }));
  const commandDrill = await lifeboat.start('drill', { target: 'exported' });
  if (!(await commandDrill.result()).passed) throw new Error('the drill of "exported" did not pass');
  await keep('command-drill', commandDrill.workflowId);
  return recorded;
}


/**
 * History <-> the SDK's history JSON (proto3 JSON, as historyToJSON/historyFromJSON of
 * @temporalio/common and `temporal workflow show --output json` produce it).
 *
 * Not those SDK functions themselves: in this install @temporalio/common and @temporalio/proto
 * each get their own copy of protobufjs 8 (the root node_modules holds protobufjs 7 for
 * @grpc/proto-loader), so common's protojson rejects proto's types with "type must be a Type".
 * The same conversion with the protobufjs copy that @temporalio/proto itself uses works.
 */
interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}
const fromCommon = createRequire(createRequire(import.meta.url).resolve('@temporalio/common'));
const protoEntry = fromCommon.resolve('@temporalio/proto');
const proto = createRequire(protoEntry)(protoEntry) as { temporal: { api: { history: { v1: { History: { fromObject(history: unknown): unknown } } } } } };
const protojson = createRequire(protoEntry)('protobufjs/ext/protojson') as ProtoJson;
const { patchProtobufRoot } = fromCommon('@temporalio/proto/lib/patch-protobuf-root') as { patchProtobufRoot(root: unknown): { lookupType(name: string): unknown } };
const historyType = patchProtobufRoot(proto).lookupType('temporal.api.history.v1.History');

/** A history as pretty-printed JSON text (one space indentation, so a re-recording diffs readably). */
export function historyToJson(history: History): string {
  return `${JSON.stringify(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 1)}\n`;
}

export function historyFromJson(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('not a history: expected an object with an array of events');
  }
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}

/** Reads a fixture: the history and the workflow id it ran under (recorded in its first event). */
export async function readHistoryFile(path: string): Promise<{ workflowId: string; history: History }> {
  const history = historyFromJson(JSON.parse(await readFile(path, 'utf8')));
  const workflowId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId;
  if (!workflowId) throw new TypeError(`${path}: the first event is not a WorkflowExecutionStarted with a workflowId`);
  return { workflowId, history };
}

/** The file a scenario's history is stored in. */
export function fixturePath(scenario: Scenario, dir = fixturesDir): string {
  return join(dir, `${scenario}.json`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const outAt = args.indexOf('--out');
  if (outAt >= 0 && !args[outAt + 1]) throw new Error('--out needs a directory');
  const outDir = outAt >= 0 ? resolve(args[outAt + 1]!) : fixturesDir;
  const wanted = outAt >= 0 ? [...args.slice(0, outAt), ...args.slice(outAt + 2)] : args;
  const unknown = wanted.filter((name) => !(scenarios as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`unknown scenarios: ${unknown.join(', ')}; known: ${scenarios.join(', ')}`);
  const lifeboat = await createLifeboat('record-histories');
  try {
    await lifeboat.startWorker();
    const histories = (await recordHistories(lifeboat)).filter(({ scenario }) => wanted.length === 0 || wanted.includes(scenario));
    await mkdir(outDir, { recursive: true });
    for (const { scenario, workflowId, history } of histories) {
      const json = historyToJson(history);
      await writeFile(fixturePath(scenario, outDir), json);
      process.stderr.write(`${scenario}: ${workflowId}, ${history.events?.length ?? 0} events, ${(json.length / 1024).toFixed(0)} KiB -> ${fixturePath(scenario, outDir)}\n`);
    }
  } finally {
    await lifeboat.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
  process.exit(0);
}
