import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { startS3Server } from '../../src/dev/s3-server.js';
import { startTemporalDevServer } from '../../src/dev/temporal-server.js';
import { projectRoot } from '../../src/dev/tools.js';

/**
 * The servers integration tests run against. `npm test` (test/run.ts) starts
 * one stack for the whole run and hands it to the test processes through
 * these environment variables; a test file run on its own starts its own.
 */
export const testStackEnv = {
  temporalAddress: 'LIFEBOAT_TEST_TEMPORAL_ADDRESS',
  workflowBundle: 'LIFEBOAT_TEST_WORKFLOW_BUNDLE',
  s3Endpoint: 'LIFEBOAT_TEST_S3_ENDPOINT',
  s3Bucket: 'LIFEBOAT_TEST_S3_BUCKET',
  s3AccessKeyId: 'LIFEBOAT_TEST_S3_ACCESS_KEY_ID',
  s3SecretAccessKey: 'LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY',
} as const;

export const testBucket = 'lifeboat-test';

export const workflowsEntry = join(projectRoot, 'workflows', 'index.ts');

export interface TestS3 {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface TestStack {
  /** gRPC address of a Temporal dev server with the Lifeboat search attributes registered. */
  temporalAddress: string;
  /** Prebuilt workflow bundle for `Worker.create({ workflowBundle: { codePath } })`; absent until workflows/index.ts exists. */
  workflowBundlePath?: string;
  s3?: TestS3;
  /** Stops only what this call started; servers shared by `npm test` stay up. */
  close(): Promise<void>;
}

export interface TestStackNeeds {
  /** Default true. Bundling takes a few seconds when it is not shared through the environment. */
  workflowBundle?: boolean;
  /** Default true. */
  s3?: boolean;
}

/**
 * The stack for a test file: the shared servers of `npm test` when its
 * environment variables are set, otherwise servers of its own (so
 * `node --import tsx --test test/x.test.ts` works alone). Call close() in
 * `after()`.
 */
export async function testStack(needs: TestStackNeeds = {}): Promise<TestStack> {
  const env = process.env;
  const sharedTemporal = env[testStackEnv.temporalAddress];
  const sharedBundle = env[testStackEnv.workflowBundle];
  const sharedS3 = s3FromEnv();
  // When npm test ran, the bundle variable is absent only because there are no workflows to bundle.
  const bundleIsShared = sharedBundle !== undefined || sharedTemporal !== undefined;

  // Created even when everything is shared: an empty directory costs nothing and keeps this simple.
  const stateDir = await mkdtemp(join(tmpdir(), 'lifeboat-test-stack-'));
  let own: StartedTestServers;
  try {
    own = await startTestServers({
      temporal: sharedTemporal === undefined,
      s3: needs.s3 !== false && sharedS3 === undefined,
      workflowBundle: needs.workflowBundle !== false && !bundleIsShared,
      stateDir,
    });
  } catch (error) {
    await rm(stateDir, { recursive: true, force: true });
    throw error;
  }

  const workflowBundlePath = sharedBundle ?? own.workflowBundlePath;
  const s3 = needs.s3 === false ? undefined : (sharedS3 ?? own.s3);
  return {
    temporalAddress: sharedTemporal ?? required(own.temporalAddress, 'temporal address'),
    ...(workflowBundlePath === undefined ? {} : { workflowBundlePath }),
    ...(s3 === undefined ? {} : { s3 }),
    close: async () => {
      await own.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export interface StartedTestServers {
  temporalAddress?: string;
  workflowBundlePath?: string;
  s3?: TestS3;
  close(): Promise<void>;
}

/**
 * Starts the requested parts in parallel under stateDir. If one part fails,
 * the others are stopped before the error is thrown, so nothing is leaked.
 */
export async function startTestServers(parts: {
  temporal: boolean;
  s3: boolean;
  workflowBundle: boolean;
  /** Directory for server state (databases, logs); must exist. */
  stateDir: string;
  /** Where to write the bundle; default <stateDir>/workflow-bundle.js. */
  bundleFile?: string;
}): Promise<StartedTestServers> {
  const stoppers: Array<() => Promise<void>> = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(stoppers.splice(0).map((stop) => stop()));
  };

  const temporal = async (): Promise<string | undefined> => {
    if (!parts.temporal) return undefined;
    const server = await startTemporalDevServer({ dbFile: join(parts.stateDir, 'temporal.db'), uiPort: false });
    stoppers.push(() => server.stop());
    return server.address;
  };
  const s3 = async (): Promise<TestS3 | undefined> => {
    if (!parts.s3) return undefined;
    // Random per run: nothing outside this run can have them, so no test can pass by accident on leftovers.
    const accessKeyId = `lifeboat-${randomBytes(6).toString('hex')}`;
    const secretAccessKey = randomBytes(24).toString('base64url');
    const server = await startS3Server({
      dataDir: join(parts.stateDir, 's3'),
      accessKeyId,
      secretAccessKey,
      buckets: [testBucket],
    });
    stoppers.push(() => server.stop());
    return { endpoint: server.endpoint, bucket: testBucket, accessKeyId, secretAccessKey };
  };
  const bundle = async (): Promise<string | undefined> => {
    if (!parts.workflowBundle) return undefined;
    return bundleWorkflows(parts.bundleFile ?? join(parts.stateDir, 'workflow-bundle.js'));
  };

  const [temporalResult, s3Result, bundleResult] = await Promise.allSettled([temporal(), s3(), bundle()]);
  const failures = [temporalResult, s3Result, bundleResult].flatMap((result) =>
    result.status === 'rejected' ? [result.reason instanceof Error ? result.reason.message : String(result.reason)] : [],
  );
  if (failures.length > 0) {
    await close();
    throw new Error(`could not start the test stack:\n- ${failures.join('\n- ')}`);
  }
  const value = <T>(result: PromiseSettledResult<T>): T | undefined =>
    result.status === 'fulfilled' ? result.value : undefined;
  const temporalAddress = value(temporalResult);
  const s3Value = value(s3Result);
  const workflowBundlePath = value(bundleResult);
  return {
    ...(temporalAddress === undefined ? {} : { temporalAddress }),
    ...(s3Value === undefined ? {} : { s3: s3Value }),
    ...(workflowBundlePath === undefined ? {} : { workflowBundlePath }),
    close,
  };
}

/**
 * Bundles workflows/index.ts once so workers in tests start in milliseconds
 * instead of each running webpack. Returns undefined while there is no
 * workflows/index.ts yet.
 */
export async function bundleWorkflows(outFile: string): Promise<string | undefined> {
  if (!existsSync(workflowsEntry)) return undefined;
  let code: string;
  try {
    ({ code } = await bundleWorkflowCode({ workflowsPath: workflowsEntry, logger: new DefaultLogger('WARN') }));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`bundling ${workflowsEntry} failed (fix the workflow code; see the webpack errors): ${reason}`, {
      cause: error,
    });
  }
  await mkdir(dirname(outFile), { recursive: true });
  await writeFile(outFile, code);
  return outFile;
}

/** Environment variables that hand a stack to child processes (see {@link testStackEnv}). */
export function testStackToEnv(stack: Omit<TestStack, 'close'>): Record<string, string> {
  return {
    [testStackEnv.temporalAddress]: stack.temporalAddress,
    ...(stack.workflowBundlePath === undefined ? {} : { [testStackEnv.workflowBundle]: stack.workflowBundlePath }),
    ...(stack.s3 === undefined
      ? {}
      : {
          [testStackEnv.s3Endpoint]: stack.s3.endpoint,
          [testStackEnv.s3Bucket]: stack.s3.bucket,
          [testStackEnv.s3AccessKeyId]: stack.s3.accessKeyId,
          [testStackEnv.s3SecretAccessKey]: stack.s3.secretAccessKey,
        }),
  };
}

function s3FromEnv(): TestS3 | undefined {
  const endpoint = process.env[testStackEnv.s3Endpoint];
  if (endpoint === undefined) return undefined;
  const read = (name: string): string => {
    const value = process.env[name];
    if (value === undefined) {
      throw new Error(`${testStackEnv.s3Endpoint} is set but ${name} is not; set all LIFEBOAT_TEST_S3_* variables or none`);
    }
    return value;
  };
  return {
    endpoint,
    bucket: read(testStackEnv.s3Bucket),
    accessKeyId: read(testStackEnv.s3AccessKeyId),
    secretAccessKey: read(testStackEnv.s3SecretAccessKey),
  };
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`internal error: the test stack has no ${what}`);
  return value;
}

/**
 * The S3 server of `npm test` when it shares one, otherwise one of our own (for suites that need
 * no Temporal); its shutdown is pushed onto cleanups.
 */
export async function sharedOrOwnS3(cleanups: Array<() => Promise<void>>): Promise<TestS3> {
  const env = process.env;
  const endpoint = env[testStackEnv.s3Endpoint];
  if (endpoint) {
    return {
      endpoint,
      bucket: env[testStackEnv.s3Bucket] ?? testBucket,
      accessKeyId: env[testStackEnv.s3AccessKeyId] ?? '',
      secretAccessKey: env[testStackEnv.s3SecretAccessKey] ?? '',
    };
  }
  const stateDir = await mkdtemp(join(tmpdir(), 'lifeboat-test-s3-'));
  const servers = await startTestServers({ temporal: false, s3: true, workflowBundle: false, stateDir });
  cleanups.push(async () => {
    await servers.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  if (!servers.s3) throw new Error('internal error: the S3 server did not start');
  return servers.s3;
}
