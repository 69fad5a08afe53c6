import { join, relative } from 'node:path';
import { connectClient, runbookFailure, startRunbook } from '../client.js';
import { loadConfig } from '../config/load.js';
import { declaredSchedules } from '../schedules/declared.js';
import { describeChange, syncSchedules } from '../schedules/sync.js';
import type { BackupResult } from '../../workflows/backup.js';
import { createWorker } from '../worker.js';
import { demoBucket, prepareDemo, touchDemoDatabase } from './demo.js';
import { startS3Server } from './s3-server.js';
import { startTemporalDevServer } from './temporal-server.js';
import { projectRoot } from './tools.js';

const say = (line: string) => process.stderr.write(`${line}\n`);

export interface DevStackOptions {
  demo: boolean;
}

/**
 * `lifeboat dev`: everything on this machine, state under .lifeboat/dev so a second start resumes
 * where the first stopped. Ctrl-C stops the worker first (it finishes or hands back its tasks),
 * then the servers.
 */
export async function runDevStack(options: DevStackOptions): Promise<void> {
  const dir = join(projectRoot, '.lifeboat', 'dev');
  // The terminal is for the human text below; the worker only speaks up for warnings and errors.
  process.env.LIFEBOAT_LOG_LEVEL ??= 'warn';
  const temporalPort = Number(process.env.LIFEBOAT_DEV_TEMPORAL_PORT ?? 7233);
  const uiPort = Number(process.env.LIFEBOAT_DEV_UI_PORT ?? 8233);
  const s3Port = Number(process.env.LIFEBOAT_DEV_S3_PORT ?? 9090);

  say('starting the Temporal dev server ...');
  const temporal = await startTemporalDevServer({ dbFile: join(dir, 'temporal.db'), port: temporalPort, uiPort });
  const stops: Array<() => Promise<void>> = [() => temporal.stop()];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((error: Error) => say(`while stopping: ${error.message}`));
  };
  try {
    const demo = await prepareDemo(dir, `http://127.0.0.1:${s3Port}`);
    Object.assign(process.env, demo.env);
    say('starting the S3 server ...');
    const s3 = await startS3Server({
      dataDir: join(dir, 's3'),
      port: s3Port,
      accessKeyId: demo.env.LIFEBOAT_DEMO_S3_ACCESS_KEY_ID!,
      secretAccessKey: demo.env.LIFEBOAT_DEMO_S3_SECRET_ACCESS_KEY!,
      buckets: [demoBucket],
    });
    stops.push(() => s3.stop());

    const settings = { address: temporal.address, namespace: 'default', taskQueue: 'lifeboat' };
    const worker = await createWorker({ temporalAddress: settings.address, namespace: settings.namespace, taskQueue: settings.taskQueue, configPath: demo.configPath });
    const running = worker.run();
    stops.push(async () => {
      worker.shutdown();
      await running;
    });
    let stopping = false;
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      say('\nstopping ...');
      void stopAll().then(() => process.exit(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    say(`Temporal UI:  ${temporal.uiUrl ?? '(headless)'}`);
    say(`Temporal:     ${temporal.address}   S3: ${s3.endpoint} (bucket ${demoBucket})`);
    const client = await connectClient(settings);
    try {
      // The demo's schedules (nightly backup, daily verify, weekly drill), as `lifeboat schedules apply` makes them.
      const plan = await syncSchedules(client, settings, declaredSchedules(loadConfig(demo.configPath), settings));
      say(`schedules (${temporal.uiUrl ? `${temporal.uiUrl}/namespaces/default/schedules` : 'lifeboat schedules list'}):`);
      for (const change of plan) say(`  ${describeChange(change)}`);
    } catch (error) {
      say(`the schedules were not applied: ${(error as Error).message}`);
    }
    if (options.demo) {
      touchDemoDatabase(demo.databasePath);
      const handle = await startRunbook(client, settings, 'backup', { target: 'demo' });
      say(`running the demo backup ${handle.workflowId} ...`);
      try {
        const result = (await handle.result()) as BackupResult;
        say(`backup ${result.backupId}: ${result.sourceBytes} bytes -> ${result.storedBytes} stored in ${result.repositories.join(' and ')}`);
      } catch (error) {
        say(`the demo backup failed: ${runbookFailure(error).message}`);
      }
    }
    await client.connection.close();
    const config = relative(process.cwd(), demo.configPath) || demo.configPath;
    const credentials = relative(process.cwd(), demo.credentialsFile) || demo.credentialsFile;
    say(`
Lifeboat is running (Ctrl-C stops it; \`npm start\` again resumes the same state). Try, in another terminal:
  export LIFEBOAT_CONFIG=${config}
  set -a; . ${credentials}; set +a      # the demo S3 credentials, for commands that read the repository
  npx lifeboat backup demo --wait
  npx lifeboat backups demo
  npx lifeboat drill demo --wait
  npx lifeboat restore demo --into /tmp/demo-restored.sqlite --wait
  npx lifeboat restore demo --yes --wait
  npx lifeboat schedules list
  npx lifeboat schedules trigger demo/nightly-backup
Open ${temporal.uiUrl ?? 'the Temporal UI'} to watch the runs, their timelines (Queries tab) and their steps.`);
    await running;
  } catch (error) {
    await stopAll();
    throw error;
  }
}
