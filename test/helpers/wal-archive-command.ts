/**
 * The archive_command and restore_command lines the tests give PostgreSQL: the real
 * `lifeboat wal-push %p` and `lifeboat wal-fetch %f %p`, with a config written from a WalArchiveSpec.
 *
 * PostgreSQL runs them through /bin/sh as the server user, in the data directory: every path is
 * absolute, and the config and fs repositories must be readable (and writable) by that user.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { projectRoot } from '../../src/dev/tools.js';
import { chownToServerUser } from '../../src/postgres/tools.js';
import type { WalArchiveSpec } from '../../src/postgres/wal-archive.js';

const cli = join(projectRoot, 'bin', 'lifeboat.js');
const quote = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;

export interface WalArchiveConfig {
  configFile: string;
  target: string;
}

/** A Lifeboat config with one postgres target whose repositories are the spec's (and where the server is, if given). */
export async function writeWalArchiveConfig(
  dir: string,
  name: string,
  spec: WalArchiveSpec,
  connection?: { host: string; port: number; user: string },
  /** More settings of the target (archive, recovery). */
  targetSettings: Record<string, unknown> = {},
): Promise<WalArchiveConfig> {
  const configFile = join(dir, name);
  const config = {
    repositories: Object.fromEntries(spec.repositories.map(({ name: repository, repository: settings }) => [repository, settings])),
    targets: {
      [spec.target]: {
        type: 'postgres',
        repositories: spec.repositories.map(({ name: repository }) => repository),
        ...(connection ? { connection } : {}),
        ...targetSettings,
      },
    },
    compression: spec.compression,
  };
  await writeFile(configFile, stringify(config));
  await chownToServerUser(configFile);
  return { configFile, target: spec.target };
}

/** The archive_command ('push') or restore_command ('fetch') line, with PostgreSQL's %p and %f in place. */
export function walCommand(archive: WalArchiveConfig, mode: 'push' | 'fetch'): string {
  const args = mode === 'push' ? 'wal-push %p' : 'wal-fetch %f %p';
  return `${quote(process.execPath)} ${quote(cli)} --config ${quote(archive.configFile)} ${args} --target ${quote(archive.target)}`;
}

/** `lifeboat <args>` as a child process, never rejecting: its exit code and output. */
export function runCli(args: string[]): ReturnType<typeof execa<{ reject: false }>> {
  return execa(process.execPath, [cli, ...args], { reject: false });
}

/** Runs `lifeboat wal-push|wal-fetch` as PostgreSQL would (but as us). */
export async function runWalCommand(
  archive: WalArchiveConfig,
  args: ['push', string] | ['fetch', string, string],
): Promise<{ exitCode: number | undefined; stderr: string; durationMs: number }> {
  const started = performance.now();
  const [mode, ...rest] = args;
  const result = await runCli(['--config', archive.configFile, `wal-${mode}`, ...rest, '--target', archive.target]);
  return { exitCode: result.exitCode, stderr: String(result.stderr), durationMs: Math.round(performance.now() - started) };
}

/** `lifeboat archive-status <target> --json`: its exit code and the JSON document it printed. */
export async function runArchiveStatus(archive: WalArchiveConfig): Promise<{ exitCode: number | undefined; report: { healthy: boolean; problems: string[] }; stderr: string }> {
  const result = await runCli(['--config', archive.configFile, 'archive-status', archive.target, '--json']);
  return { exitCode: result.exitCode, report: JSON.parse(String(result.stdout)) as { healthy: boolean; problems: string[] }, stderr: String(result.stderr) };
}
