import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failuresReference } from '../../src/docs/failures-reference.js';
import { generatedParts } from '../../src/docs/parts.js';
import { errorGuide } from '../../src/errors-guide.js';
import { errorTypes, exitCodeFor, type ErrorType } from '../../src/errors.js';
import { assertPartIsCurrent } from '../helpers/generated-docs.js';

test('the list of failures in docs/failures.md is the one generated from src/errors.ts and src/errors-guide.ts (npm run docs:failures)', async () => {
  await assertPartIsCurrent(generatedParts.failures);
});

test('every typed failure has a meaning and an action, and its section says how the CLI exits', () => {
  const reference = failuresReference();
  for (const type of Object.keys(errorTypes) as ErrorType[]) {
    const { meaning, action } = errorGuide[type];
    assert.ok(meaning.trim().length > 20 && action.trim().length > 20, `${type}: write what it means and what to do in src/errors-guide.ts`);
    assert.match(reference, new RegExp(`^### ${type}$`, 'm'));
    assert.match(reference, new RegExp(`^\\| \\[${type}\\]\\(#${type.toLowerCase()}\\) \\| ${errorTypes[type]} \\| ${exitCodeFor(type)} \\|$`, 'm'));
  }
});
