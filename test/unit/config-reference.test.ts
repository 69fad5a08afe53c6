import { test } from 'node:test';
import { generatedParts } from '../../src/docs/parts.js';
import { assertPartIsCurrent } from '../helpers/generated-docs.js';

test('the configuration reference in docs/configuration.md is the one generated from the schema (npm run docs:config)', async () => {
  await assertPartIsCurrent(generatedParts.config);
});
