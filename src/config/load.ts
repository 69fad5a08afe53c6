import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { LifeboatError } from '../errors.js';
import { configSchema, type Config } from './schema.js';

export const defaultConfigFile = 'lifeboat.config.yaml';

/** --config, else LIFEBOAT_CONFIG, else ./lifeboat.config.yaml. */
export function configPathFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.LIFEBOAT_CONFIG ?? defaultConfigFile);
}

function describeFound(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  return `${typeof input} ${JSON.stringify(input)}`;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** Validates parsed YAML; throws InvalidConfig naming the field, what was expected and what was found. */
export function parseConfig(raw: unknown, source: string): Config {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(top level)';
    const found = issue.code === 'unrecognized_keys' ? '' : ` (found ${describeFound(valueAt(raw, issue.path))})`;
    return `  ${field}: ${issue.message}${found}`;
  });
  throw new LifeboatError(
    'InvalidConfig',
    `${source} is not a valid Lifeboat config:\n${lines.join('\n')}\n`,
    'Fix the fields above; README.md#configuration lists every option',
  );
}

/** Relative paths in the config are relative to the config file, not to the current directory. */
function resolvePaths(config: Config, baseDir: string): Config {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  for (const repository of Object.values(config.repositories)) {
    if (repository.type === 'fs') repository.path = at(repository.path);
  }
  for (const target of Object.values(config.targets)) {
    target.path = at(target.path);
    if (target.drill.scratchDir) target.drill.scratchDir = at(target.drill.scratchDir);
  }
  if (config.encryption) config.encryption.keyFile = at(config.encryption.keyFile);
  return config;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new LifeboatError(
      'InvalidConfig',
      `cannot read config file ${path} (${code ?? String(error)})`,
      'Pass --config <file>, set LIFEBOAT_CONFIG, or create ./lifeboat.config.yaml (see README.md#configuration)',
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new LifeboatError('InvalidConfig', `${path} is not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`);
  }
  return resolvePaths(parseConfig(raw, path), dirname(path));
}
