import { join, resolve } from 'node:path';
import { projectRoot } from '../dev/tools.js';
import { spoolDirOf } from './archive-spool.js';

/**
 * The command lines PostgreSQL runs for Lifeboat, in one place: archive_command (`wal-push`, or
 * in mode "async" the quick bin/lifeboat-wal-push in front of it) and restore_command
 * (`wal-fetch`, with prefetch the quick bin/lifeboat-wal-fetch in front of it). PostgreSQL runs
 * them through /bin/sh, so every part is shell-quoted and '%' in paths doubled (PostgreSQL
 * replaces %p and %f itself).
 */

/** Quoted only when it must be: the lines are pasted into postgresql.conf, inside quotes of their own. */
const quote = (value: string): string => (/^[\w/.:@+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`).replace(/%/g, '%%')}'`);

export interface CommandPaths {
  /** Default: this process's node. */
  node?: string;
  /** The checkout (or installation) whose bin/ holds lifeboat.js and the quick scripts; default: this one. */
  root?: string;
}

function lifeboat(paths: CommandPaths, configPath: string): string {
  return `${quote(paths.node ?? process.execPath)} ${quote(join(paths.root ?? projectRoot, 'bin', 'lifeboat.js'))} --config ${quote(resolve(configPath))}`;
}

/** The archive settings that shape archive_command (a postgres target's `archive` block). */
export interface ArchiveCommandSettings {
  mode: 'on' | 'async' | 'off';
  spoolDir: string;
}

/** archive_command for target: `lifeboat wal-push %p`, behind the quick check of the archiver's spool in mode "async". */
export function archiveCommandLine(target: string, configPath: string, archive?: ArchiveCommandSettings, paths: CommandPaths = {}): string {
  const push = `${lifeboat(paths, configPath)} wal-push %p --target ${quote(target)}`;
  if (archive?.mode !== 'async') return push;
  return `${quote(join(paths.root ?? projectRoot, 'bin', 'lifeboat-wal-push'))} ${quote(spoolDirOf(archive.spoolDir, target))} %p ${push}`;
}

/**
 * restore_command for target: `lifeboat wal-fetch %f %p`; with a prefetch spool, the quick
 * bin/lifeboat-wal-fetch first moves a file fetched ahead into place, and wal-fetch keeps a
 * prefetcher filling the spool.
 */
export function walFetchCommand(options: { configPath: string; target: string; prefetchSpool?: string } & CommandPaths): string {
  const fetch = `${lifeboat(options, options.configPath)} wal-fetch %f %p --target ${quote(options.target)}`;
  if (options.prefetchSpool === undefined) return fetch;
  const spool = quote(resolve(options.prefetchSpool));
  return `${quote(join(options.root ?? projectRoot, 'bin', 'lifeboat-wal-fetch'))} ${spool} ${quote(options.target)} %f %p ${fetch} --prefetch ${spool}`;
}
