import { Help, type Command } from 'commander';
import { buildProgram } from '../cli.js';

/**
 * The command reference of docs/cli.md, generated from the commander program itself: a synopsis
 * line per command and each command's own `--help` (with its global options), at a fixed width so
 * the page does not depend on the terminal. Walks every command, nested subcommands too, so a new
 * command is documented by rerunning `npm run docs:cli`.
 */
const helpWidth = 100;

interface Documented {
  path: string;
  command: Command;
}

/** Commands the program shows, depth first; commander's implicit `help` command is left out (the lists name it). */
function documentedCommands(command: Command, path: string = command.name()): Documented[] {
  const shown = new Help().visibleCommands(command).filter((child) => command.commands.includes(child));
  return [{ path, command }, ...shown.flatMap((child) => documentedCommands(child, `${path} ${child.name()}`))];
}

/** Exactly what `<command> --help` prints, including text added with addHelpText. */
function helpOf(command: Command): string {
  let text = '';
  const collect = (chunk: string) => {
    text += chunk;
  };
  command.configureOutput({
    writeOut: collect,
    writeErr: collect,
    getOutHelpWidth: () => helpWidth,
    getErrHelpWidth: () => helpWidth,
    getOutHasColors: () => false,
    getErrHasColors: () => false,
  });
  command.configureHelp({ ...command.configureHelp(), showGlobalOptions: true });
  command.outputHelp();
  return text.trimEnd();
}

/**
 * One line: the command, its arguments and every option (required ones without brackets); a
 * command with subcommands ends in `<command>`, after its options, as it is typed.
 */
function synopsisOf({ path, command }: Documented): string {
  const options = new Help()
    .visibleOptions(command)
    .filter((option) => option.long !== '--help')
    .map((option) => {
      const name = option.long ?? option.short ?? option.flags;
      const term = `${name}${option.flags.slice(option.flags.indexOf(name) + name.length)}`;
      return option.mandatory ? term : `[${term}]`;
    });
  const argumentTerms = command.registeredArguments.map((argument) => {
    const name = `${argument.name()}${argument.variadic ? '...' : ''}`;
    return argument.required ? `<${name}>` : `[${name}]`;
  });
  const subcommand = command.commands.length > 0 ? ['<command>'] : [];
  return [path, ...argumentTerms, ...options, ...subcommand].join(' ');
}

export function cliReference(program: Command = buildProgram(() => undefined)): string {
  const commands = documentedCommands(program);
  const out = ['## Synopsis', '', '```text', ...commands.map(synopsisOf), '```', '', '## Commands'];
  for (const documented of commands) {
    out.push('', `### ${documented.path}`, '', '```text', helpOf(documented.command), '```');
  }
  return out.join('\n');
}
