import { configReference } from '../config/reference.js';
import { cliReference } from './cli-reference.js';
import { failuresReference } from './failures-reference.js';
import type { GeneratedPart } from './generated.js';

/** Every generated part of the docs (`npm run docs` rewrites them all; `npm run docs:<name>` one). */
export const generatedParts = {
  config: { name: 'config', page: 'docs/configuration.md', marker: 'config-reference', render: configReference },
  cli: { name: 'cli', page: 'docs/cli.md', marker: 'cli-reference', render: () => cliReference() },
  failures: { name: 'failures', page: 'docs/failures.md', marker: 'failures-reference', render: failuresReference },
} as const satisfies Record<string, GeneratedPart>;

export type GeneratedPartName = keyof typeof generatedParts;
