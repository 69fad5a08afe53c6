import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { withReference } from '../../src/config/reference.js';
import { projectRoot } from '../../src/dev/tools.js';

test('the configuration reference in README.md is the one generated from the schema (npm run docs:config)', () => {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  assert.equal(readme, withReference(readme));
});
