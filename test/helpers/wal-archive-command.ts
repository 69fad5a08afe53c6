/**
 * Stand-in for `lifeboat wal-push %p` and `lifeboat wal-fetch %f %p` in tests, until the CLI has
 * them: the same functions, the same exit statuses, the message on stderr. It reads the archive's
 * repositories from a JSON file (a WalArchiveSpec) instead of a config with a postgres target.
 *
 *   node --import <tsx> wal-archive-command.ts <spec.json> push <path>                 archive_command
 *   node --import <tsx> wal-archive-command.ts <spec.json> fetch <name> <destination>  restore_command
 *
 * PostgreSQL runs it through /bin/sh as the server user, in the data directory: every path in
 * the command line is absolute, and the script, the spec and fs repositories must be readable
 * (and the repositories writable) by that user.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { exitCodeFor, LifeboatError } from '../../src/errors.js';
import {
  archiveCommandExitCodes,
  fetchWal,
  openWalArchive,
  pushWal,
  restoreCommandExitCodes,
  type WalArchiveSpec,
} from '../../src/postgres/wal-archive.js';

const scriptPath = fileURLToPath(import.meta.url);

/**
 * The archive_command ('push') or restore_command ('fetch') line that runs this script with the
 * archive described in specFile, with PostgreSQL's placeholders (%p, %f) in place.
 */
export function walCommand(specFile: string, mode: 'push' | 'fetch'): string {
  const quote = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;
  const tsx = import.meta.resolve('tsx');
  const args = mode === 'push' ? '%p' : '%f %p';
  return `${quote(process.execPath)} --import ${quote(tsx)} ${quote(scriptPath)} ${quote(specFile)} ${mode} ${args}`;
}

async function main(argv: string[]): Promise<number> {
  const [specFile, mode, ...rest] = argv;
  const usage = 'usage: wal-archive-command.ts <spec.json> push <path> | <spec.json> fetch <name> <destination>';
  if (specFile === undefined || (mode === 'push' && rest.length !== 1) || (mode === 'fetch' && rest.length !== 2) || (mode !== 'push' && mode !== 'fetch')) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const failed = mode === 'push' ? archiveCommandExitCodes.failed : restoreCommandExitCodes.failed;
  try {
    const spec = JSON.parse(readFileSync(specFile, 'utf8')) as WalArchiveSpec;
    const archive = openWalArchive(spec);
    if (mode === 'push') {
      await pushWal(archive, rest[0]!);
      return archiveCommandExitCodes.archived;
    }
    const outcome = await fetchWal(archive, rest[0]!, rest[1]!);
    return restoreCommandExitCodes[outcome];
  } catch (error) {
    const type = error instanceof LifeboatError ? ` (${error.type}, ${exitCodeFor(error.type) === 2 ? 'bad input' : 'failure'})` : '';
    process.stderr.write(`lifeboat wal-${mode}${type}: ${error instanceof Error ? error.message : String(error)}\n`);
    return failed;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // exit() rather than exitCode: keep-alive sockets of the S3 client would hold the process open.
  process.exit(await main(process.argv.slice(2)));
}
