import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { LifeboatError } from '../errors.js';
import { configSchema, type Config } from './schema.js';
import { targetKindOf } from '../kinds/index.js';

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

/**
 * A field that names where a secret lives (`secretAccessKeyEnv`, `passwordEnv`): a wrong value there
 * is often the secret itself, pasted in, and the message must not repeat it.
 */
const namesASecret = (key: PropertyKey | undefined) => typeof key === 'string' && /Env$|password|secret|token/i.test(key);

function describeFoundAt(raw: unknown, path: ReadonlyArray<PropertyKey>): string {
  const found = valueAt(raw, path);
  if (typeof found === 'string' && namesASecret(path.at(-1))) return `a string of ${found.length} characters, not shown: it may be a secret`;
  return describeFound(found);
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  while (current instanceof z.ZodOptional || current instanceof z.ZodDefault || current instanceof z.ZodNullable) current = current.unwrap() as z.ZodType;
  return current;
}

/** The keys the config allows at path (for "unknown field" messages), following the parsed YAML through unions. */
function allowedKeysAt(raw: unknown, path: ReadonlyArray<PropertyKey>): string[] | undefined {
  let schema: z.ZodType | undefined = configSchema;
  for (let depth = 0; schema; depth++) {
    schema = unwrap(schema);
    if (schema instanceof z.ZodDiscriminatedUnion) {
      const discriminator = schema.def.discriminator;
      const tag = (valueAt(raw, path.slice(0, depth)) as Record<string, unknown> | undefined)?.[discriminator];
      schema = (schema.options as z.ZodType[]).find((option) => {
        const literal = option instanceof z.ZodObject ? (option.shape as Record<string, z.ZodType>)[discriminator] : undefined;
        return literal instanceof z.ZodLiteral && literal.values.has(tag as never);
      });
      if (!schema) return undefined;
    }
    if (depth === path.length) return schema instanceof z.ZodObject ? Object.keys(schema.shape) : undefined;
    const key = path[depth];
    if (schema instanceof z.ZodObject) schema = (schema.shape as Record<string, z.ZodType>)[String(key)];
    else if (schema instanceof z.ZodRecord) schema = schema.valueType as z.ZodType;
    else if (schema instanceof z.ZodArray) schema = schema.element as z.ZodType;
    else return undefined;
  }
  return undefined;
}

/** Validates parsed YAML; throws InvalidConfig naming the field, what was expected and what was found. */
export function parseConfig(raw: unknown, source: string): Config {
  const result = configSchema.safeParse(raw);
  if (result.success) return withObjectiveDefaults(result.data);
  const lines = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(top level)';
    let found = ` (found ${describeFoundAt(raw, issue.path)})`;
    let message = issue.message;
    if (issue.code === 'invalid_key') {
      // The rule the key broke is in the nested issue; the key itself is the last part of the path.
      message = `a name must be ${issue.issues[0]?.message ?? 'valid'}`;
      found = ` (found the name ${JSON.stringify(String(issue.path.at(-1)))})`;
    }
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(raw, issue.path);
      found = allowed ? ` (expected one of: ${allowed.join(', ')})` : '';
    }
    return `  ${field}: ${message}${found}`;
  });
  throw new LifeboatError(
    'InvalidConfig',
    `${source} is not a valid Lifeboat config:\n${lines.join('\n')}\nFix the fields above; docs/configuration.md lists every option`,
  );
}

/**
 * A drill is measured against the target's objectives when its own rtoTargetSeconds /
 * rpoTargetSeconds are unset, so that one objective holds everywhere (drill, status, alerts).
 */
function withObjectiveDefaults(config: Config): Config {
  for (const target of Object.values(config.targets)) {
    const objectives = target.objectives ?? {};
    if (target.drill.rtoTargetSeconds === undefined && objectives.rtoSeconds !== undefined) target.drill.rtoTargetSeconds = objectives.rtoSeconds;
    if (target.drill.rpoTargetSeconds === undefined && objectives.rpoSeconds !== undefined) target.drill.rpoTargetSeconds = objectives.rpoSeconds;
  }
  return config;
}

/** Relative paths in the config are relative to the config file, not to the current directory. */
function resolvePaths(config: Config, baseDir: string): Config {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  for (const repository of Object.values(config.repositories)) {
    if (repository.type === 'fs') repository.path = at(repository.path);
  }
  for (const target of Object.values(config.targets)) {
    targetKindOf(target.type)?.absolutePaths?.(target, at);
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
      'Pass --config <file>, set LIFEBOAT_CONFIG, or create ./lifeboat.config.yaml (see docs/configuration.md)',
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    // The parser's first line repeats the position and ends in ":" before its source excerpt.
    const reason = (error as Error).message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new LifeboatError('InvalidConfig', `${path} is not valid YAML${where}: ${reason}`);
  }
  return resolvePaths(parseConfig(raw, path), dirname(path));
}

/**
 * The named target of a config, or TargetNotFound naming the targets there are (only those of
 * `type`, when the caller needs one kind). One place for the message every entry point shows.
 */
export function targetNamed<T extends { type: string }>(targets: Record<string, T>, name: string, source: string, type?: T['type']): T {
  const target = targets[name];
  if (target !== undefined) return target;
  const known = Object.entries(targets)
    .filter(([, candidate]) => type === undefined || candidate.type === type)
    .map(([known]) => known);
  const kind = type === undefined ? 'Known targets' : `Targets of type ${type}`;
  throw new LifeboatError(
    'TargetNotFound',
    `no target named "${name}" in ${source}`,
    known.length ? `${kind}: ${known.join(', ')}` : `Define ${type === undefined ? 'it' : `a target of type ${type}`} under targets:`,
  );
}
