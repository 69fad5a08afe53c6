/**
 * commandOf names the subcommand before commander parses anything: bin/lifeboat.js loads the CLI
 * by it, and a wal-fetch that fails early must exit 126 (see archive-exit-codes.ts). It skips the
 * values of the global options that take one, so it must know all of them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { commandOf } from '../../bin/command-of.js';
import { buildProgram } from '../../src/cli.js';

describe('commandOf', () => {
  test('finds the subcommand after global options and their values', () => {
    assert.equal(commandOf(['wal-fetch', 'a', 'b']), 'wal-fetch');
    assert.equal(commandOf(['--config', 'wal-push', 'wal-fetch', 'a']), 'wal-fetch', 'a config file may have any name');
    assert.equal(commandOf(['--config=/etc/l.yaml', 'backup', 'x']), 'backup');
    assert.equal(commandOf(['--help']), undefined);
    assert.equal(commandOf([]), undefined);
  });

  test('the only global option that takes a value is --config (a new one must be taught to commandOf)', () => {
    const program = buildProgram(() => undefined);
    assert.deepEqual(program.options.filter((option) => option.required || option.optional).map((option) => option.long), ['--config']);
  });
});
