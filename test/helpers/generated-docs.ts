import { AssertionError } from 'node:assert';
import { readPage, regeneratedPage, type GeneratedPart } from '../../src/docs/generated.js';

/** Fails, naming the first line that differs, unless the part of its page is what its generator makes now. */
export async function assertPartIsCurrent(part: GeneratedPart): Promise<void> {
  const actual = readPage(part);
  const expected = await regeneratedPage(part);
  if (actual === expected) return;
  const actualLines = actual.split('\n');
  const expectedLines = expected.split('\n');
  let line = 0;
  while (actualLines[line] === expectedLines[line]) line++;
  throw new AssertionError({
    message:
      `${part.page} is out of date at line ${line + 1}: run \`npm run docs:${part.name}\` and commit the page.\n` +
      `  page:      ${actualLines[line] ?? '(end of page)'}\n  generated: ${expectedLines[line] ?? '(end of page)'}`,
    actual,
    expected,
    operator: 'strictEqual',
  });
}
