/**
 * A command target is ready when each of its programs (the backup, the restore, each drill check)
 * would start: the program is found on the PATH it will get (or at its path), its working
 * directory exists, and every variable its envFrom names is set. Nothing is run: a program's own
 * success is the backup's or the drill's to prove.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { Finding, messageOf } from '../../check/result.js';
import { LifeboatError } from '../../errors.js';
import { commandEnvironment, describeArgv, type CommandSpec } from '../../pipeline/command-stream.js';
import type { PreflightContext } from '../contract.js';
import type { CommandTargetConfig } from './config.js';

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Where argv[0] would be run from, with the PATH the program gets; undefined when it is nowhere. */
export async function locateProgram(program: string, path: string): Promise<string | undefined> {
  if (program.includes('/')) return (await executable(program)) ? program : undefined;
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, program);
    if (await executable(candidate)) return candidate;
  }
  return undefined;
}

async function checkProgram(spec: Pick<CommandSpec, 'argv' | 'cwd' | 'env' | 'envFrom'>, env: NodeJS.ProcessEnv, what: string): Promise<string> {
  const childEnv = commandEnvironment(spec, env, what);
  const program = spec.argv[0]!;
  // A drill check may name the scratch copy itself ({payload}): nothing to find before it exists.
  if (!program.includes('{')) {
    const found = await locateProgram(program, childEnv.PATH ?? '');
    if (!found) {
      throw new Finding(
        `${what}: ${program} is not ${program.includes('/') ? 'an executable file' : `on its PATH (${childEnv.PATH})`}`,
        `Install ${program} where the worker runs, or give its absolute path in argv`,
      );
    }
  }
  if (spec.cwd !== undefined) {
    const dir = isAbsolute(spec.cwd) ? spec.cwd : undefined;
    const isDir = dir ? await stat(dir).then((s) => s.isDirectory(), () => false) : false;
    if (!isDir) throw new Finding(`${what}: its working directory ${spec.cwd} does not exist`, `Create ${spec.cwd} or change cwd`);
  }
  return `\`${describeArgv(spec.argv)}\` would start${spec.cwd ? ` in ${spec.cwd}` : ''}`;
}

export async function preflightCommand(name: string, target: CommandTargetConfig, context: PreflightContext): Promise<void> {
  const programs: Array<[string, Pick<CommandSpec, 'argv' | 'cwd' | 'env' | 'envFrom'>]> = [
    ['backup', target.backup],
    ...(target.restore ? [['restore', target.restore] as [string, CommandSpec]] : []),
    ...target.drill.checks.map((check) => [`drill check "${check.name}"`, check] as [string, CommandSpec]),
  ];
  for (const [role, spec] of programs) {
    await context.check('command', `${name}: ${role}`, context.timeoutMs, () => checkProgram(spec, context.env, `the ${role} command of target "${name}"`), (error) =>
      error instanceof LifeboatError && error.hint ? error.hint : messageOf(error),
    );
  }
}
