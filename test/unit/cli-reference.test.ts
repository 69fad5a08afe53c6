import assert from 'node:assert/strict';
import { Command } from 'commander';
import { test } from 'node:test';
import { buildProgram } from '../../src/cli.js';
import { cliReference } from '../../src/docs/cli-reference.js';
import { generatedParts } from '../../src/docs/parts.js';
import { assertPartIsCurrent } from '../helpers/generated-docs.js';

test('the command reference in docs/cli.md is what the program prints (npm run docs:cli)', async () => {
  await assertPartIsCurrent(generatedParts.cli);
});

test('the command reference documents every command of the program, with its options', () => {
  const reference = cliReference();
  for (const command of buildProgram(() => undefined).commands) {
    assert.match(reference, new RegExp(`^### lifeboat ${command.name()}$`, 'm'), `no section for lifeboat ${command.name()}`);
    for (const option of command.options) assert.ok(reference.includes(option.flags), `lifeboat ${command.name()}: ${option.flags} is not documented`);
  }
});

test('nested subcommands, arguments, required and global options get their own synopsis line and section', () => {
  const program = new Command('tool').option('--config <file>', 'config file');
  const schedules = program.command('schedules').description('manage schedules');
  schedules.command('create <target>').description('create one').requiredOption('--cron <spec>', 'when').option('--paused', 'start paused');
  schedules.command('hidden-one', { hidden: true }).description('not shown');
  const reference = cliReference(program);
  assert.match(reference, /^tool \[--config <file>\] <command>$/m);
  assert.match(reference, /^tool schedules <command>$/m);
  assert.match(reference, /^tool schedules create <target> --cron <spec> \[--paused\]$/m);
  assert.match(reference, /^### tool schedules create$/m);
  assert.match(reference, /Usage: tool schedules create \[options\] <target>/);
  assert.match(reference, /Global Options:\n\s+--config <file>/);
  assert.doesNotMatch(reference, /hidden-one/);
});
