import { z } from 'zod';
import { configSchema } from './schema.js';

/**
 * The configuration reference in docs/configuration.md, generated from the schema so the docs
 * cannot drift from what is validated (`npm run docs:config` rewrites it; a unit test checks it is
 * current; see src/docs/parts.ts).
 */
interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
}

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants) return variants.map(typeOf).join(' \\| ');
  if (schema.type === 'array') return `list of ${schema.items ? typeOf(schema.items) : 'values'}`;
  if (schema.type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') return 'map of name →';
  const type = Array.isArray(schema.type) ? schema.type.join(' \\| ') : (schema.type ?? 'value');
  const bounded = schema.minimum !== undefined && schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER;
  const range = bounded ? ` ${schema.minimum}–${schema.maximum}` : '';
  return `${type}${range}`;
}

function rows(schema: JsonSchema, path: string, out: string[], kind = ''): void {
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants && variants.every((v) => v.type === 'object')) {
    for (const variant of variants) {
      const variantKind = variant.properties?.type?.const;
      rows(variant, path, out, variantKind === undefined ? kind : `(${String(variantKind)}) `);
    }
    return;
  }
  if (schema.type === 'object' && schema.properties) {
    for (const [key, child] of Object.entries(schema.properties)) {
      const childPath = path ? `${path}.${key}` : key;
      const required = schema.required?.includes(key) && child.default === undefined;
      const defaultText = child.default === undefined ? '' : `\`${JSON.stringify(child.default)}\``;
      out.push(`| \`${childPath}\` | ${typeOf(child)} | ${required ? 'yes' : ''} | ${defaultText} | ${kind}${child.description ?? ''} |`);
      rows(child, childPath, out, kind);
    }
    return;
  }
  if (schema.type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    rows(schema.additionalProperties, `${path}.<name>`, out, kind);
    return;
  }
  if (schema.type === 'array' && schema.items) rows(schema.items, `${path}[]`, out, kind);
}

export function configReference(): string {
  const json = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const out = ['| option | type | required | default | meaning |', '| --- | --- | --- | --- | --- |'];
  rows(json, '', out);
  return out.join('\n');
}
