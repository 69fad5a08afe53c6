import { spawn } from 'node:child_process';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { freePort, waitForPort } from './ports.js';
import { toolPath } from './tools.js';

/**
 * A real S3-compatible server on loopback for `lifeboat dev` and the tests: versitygw with its
 * posix backend, so objects are plain files under dataDir and survive restarts.
 *
 * Layout of dataDir (owned by the server):
 *   buckets/        the posix root; each subdirectory is a bucket, each file an object
 *   versitygw.log   server output (default logFile; kept outside buckets/ so it is not a bucket)
 */
export interface S3ServerOptions {
  dataDir: string;
  /** Default: a free port picked by the OS. */
  port?: number;
  accessKeyId: string;
  secretAccessKey: string;
  /** Created when missing; existing buckets and their objects are kept. */
  buckets: string[];
  /** Default: <dataDir>/versitygw.log. Appended to, so restarts keep the history. */
  logFile?: string;
}

export interface S3Server {
  /** e.g. "http://127.0.0.1:43121"; use with forcePathStyle: true. */
  endpoint: string;
  pid: number;
  /** SIGTERM, then SIGKILL if the server has not exited after 10 s. Safe to call twice. */
  stop(): Promise<void>;
}

const startTimeoutMs = 30_000;
const stopGraceMs = 10_000;
/** S3's bucket naming rules, which versitygw enforces (it answers InvalidBucketName otherwise). */
const bucketNamePattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  for (const bucket of options.buckets) {
    if (!bucketNamePattern.test(bucket)) {
      throw new Error(`invalid bucket name ${JSON.stringify(bucket)}: use 3-63 lowercase letters, digits, "." or "-"`);
    }
  }
  const binary = toolPath('versitygw');
  const root = join(options.dataDir, 'buckets');
  await mkdir(root, { recursive: true, mode: 0o700 });
  const logFile = options.logFile ?? join(options.dataDir, 'versitygw.log');

  // freePort() can race with another process grabbing the port before versitygw binds it;
  // when we picked the port ourselves, simply pick another one.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      const server = await launch(binary, root, port, logFile, options);
      try {
        await createBuckets(server.endpoint, options);
      } catch (error) {
        await server.stop();
        throw error;
      }
      return server;
    } catch (error) {
      if (error instanceof PortInUse && options.port === undefined && attempt < 3) continue;
      throw error;
    }
  }
}

class PortInUse extends Error {}

async function launch(
  binary: string,
  root: string,
  port: number,
  logFile: string,
  options: S3ServerOptions,
): Promise<S3Server> {
  const log = await open(logFile, 'a', 0o600);
  let child;
  try {
    await log.write(`\n--- ${new Date().toISOString()} starting versitygw on 127.0.0.1:${port}, posix root ${root}\n`);
    child = spawn(binary, ['--port', `127.0.0.1:${port}`, 'posix', root], {
      // Credentials go through the environment, not argv, so they do not show up in `ps`. The
      // environment is otherwise minimal: versitygw reads many VGW_* / LOGFILE variables that
      // must not leak in from the caller's shell.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ROOT_ACCESS_KEY_ID: options.accessKeyId,
        ROOT_SECRET_ACCESS_KEY: options.secretAccessKey,
      },
      stdio: ['ignore', log.fd, log.fd],
    });
  } catch (error) {
    await log.close();
    throw error;
  }

  // Listening before anything else is awaited: a server that fails at once (port taken) may exit
  // before the next await returns, and a missed exit would leave stop() waiting forever.
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolveExit();
    });
    child.once('error', (error) => {
      exitInfo = `could not be started: ${error.message}`;
      resolveExit();
    });
  });
  await log.close(); // the child has its own copy of the descriptor

  // If our process exits without calling stop() (process.exit, an uncaught error), do not leave
  // an orphaned server holding the port and the data directory.
  const killOnExit = (): void => void child.kill('SIGTERM');
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      if (exitInfo !== undefined) return;
      child.kill('SIGTERM');
      const forceKill = setTimeout(() => child.kill('SIGKILL'), stopGraceMs);
      await exited;
      clearTimeout(forceKill);
    })());

  // Ready means: our child is alive AND an authenticated S3 call works. An open port alone is not
  // enough, since someone else may hold it (then versitygw exits with "address already in use").
  const endpoint = `http://127.0.0.1:${port}`;
  const client = adminClient(endpoint, options);
  const deadline = Date.now() + startTimeoutMs;
  try {
    for (;;) {
      if (exitInfo !== undefined) {
        await stop();
        const tail = await logTail(logFile);
        const message = `versitygw ${exitInfo} before listening on 127.0.0.1:${port}; see ${logFile}:\n${tail}`;
        throw /address already in use/i.test(tail) ? new PortInUse(message) : new Error(message);
      }
      // Whichever comes first: a failed start is reported at once, not after the probe times out.
      if (await Promise.race([answersS3(client, port), exited.then(() => false)])) break;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`versitygw did not answer on 127.0.0.1:${port} within ${startTimeoutMs} ms; see ${logFile}`);
      }
      await new Promise((resolveSleep) => setTimeout(resolveSleep, 100));
    }
  } finally {
    client.destroy();
  }
  if (exitInfo !== undefined || child.pid === undefined) {
    await stop();
    throw new Error(`versitygw ${exitInfo ?? 'has no pid'} right after starting; see ${logFile}`);
  }
  return { endpoint, pid: child.pid, stop };
}

function adminClient(endpoint: string, options: S3ServerOptions): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
    maxAttempts: 1,
  });
}

/** One readiness probe: the port is open and a signed ListBuckets succeeds. */
async function answersS3(client: S3Client, port: number): Promise<boolean> {
  try {
    await waitForPort(port, '127.0.0.1', 0); // a single TCP probe; cheaper than an HTTP attempt
    // Time-boxed: whatever holds the port may accept connections and never answer.
    await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(2_000) });
    return true;
  } catch {
    return false;
  }
}

async function createBuckets(endpoint: string, options: S3ServerOptions): Promise<void> {
  const client = adminClient(endpoint, options);
  try {
    for (const bucket of options.buckets) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
      } catch (error) {
        // Restarting on the same dataDir finds its buckets already there: that is the point.
        const name = error instanceof S3ServiceException ? error.name : undefined;
        if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') continue;
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(`could not create bucket "${bucket}" on ${endpoint}: ${reason}`, { cause: error });
      }
    }
  } finally {
    client.destroy();
  }
}

async function logTail(logFile: string, lines = 20): Promise<string> {
  try {
    return (await readFile(logFile, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(log file unreadable)';
  }
}
