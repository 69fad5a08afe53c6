/**
 * `lifeboat archiver` as deployed (archive.mode "async"): a child process running as the server's
 * OS user beside a test cluster, and what the tests read of its spool.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../../src/dev/tools.js';
import { serverEnvironment, serverUser } from '../../src/postgres/tools.js';

export interface RunningArchiver {
  pid: number;
  process: ChildProcess;
  exited: Promise<unknown>;
  /** Its log (JSON lines). */
  logFile: string;
  /** SIGTERM, and waits until it exited. */
  stop(): Promise<void>;
  log(): Promise<string>;
}

export async function startArchiver(options: { configFile: string; target: string; dataDir: string; logFile: string; env?: Record<string, string>; extraArgs?: string[] }): Promise<RunningArchiver> {
  const user = await serverUser();
  const child = spawn(process.execPath, [join(projectRoot, 'bin', 'lifeboat.js'), '--config', options.configFile, 'archiver', '--target', options.target, '--data-dir', options.dataDir, ...(options.extraArgs ?? [])], {
    env: serverEnvironment(user, options.env),
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(user.switched ? { uid: user.uid, gid: user.gid } : {}),
  });
  const log = createWriteStream(options.logFile, { flags: 'a' });
  child.stderr!.pipe(log);
  const exited = once(child, 'exit');
  return {
    pid: child.pid!,
    process: child,
    exited,
    logFile: options.logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    log: () => readFile(options.logFile, 'utf8').catch(() => ''),
  };
}
