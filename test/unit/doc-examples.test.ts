import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { blocksOfPage, docPages, fencedBlocks, type FencedBlock } from '../helpers/markdown.js';

/**
 * Examples that cannot rot: every ```yaml block of README.md and docs/ is loaded as a whole
 * lifeboat.config.yaml by the real loader (YAML parsing, the schema, cross-references), so a
 * renamed or removed option fails here, naming the page and the line of the block.
 */
const configLanguages = new Set(['yaml', 'yml']);

function checkConfigExample(block: FencedBlock): void {
  const where = `${block.file}:${block.line}`;
  if (block.body.trim() === '') throw new Error(`${where}: the \`\`\`${block.language} block is empty`);
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-doc-example-'));
  try {
    const path = join(dir, 'lifeboat.config.yaml');
    writeFileSync(path, block.body);
    loadConfig(path);
  } catch (error) {
    const message = (error as Error).message.replaceAll(join(dir, 'lifeboat.config.yaml'), 'the block');
    throw new Error(
      `${where}: the \`\`\`${block.language} block is not a complete, valid lifeboat.config.yaml ` +
        `(every YAML example must be one: write a small whole config around a fragment):\n${message}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const examples = docPages()
  .flatMap((page) => blocksOfPage(page))
  .filter((block) => configLanguages.has(block.language));

describe('every ```yaml example in README.md and docs/ is a complete lifeboat.config.yaml that validates', () => {
  test('the pages have YAML examples to check', () => {
    assert.ok(examples.length >= 5, `found only ${examples.length} yaml blocks in ${docPages().join(', ')}`);
  });
  for (const block of examples) {
    test(`${block.file}:${block.line}`, () => checkConfigExample(block));
  }
});

describe('the example check', () => {
  const page = [
    '# A page',
    '',
    '```yaml',
    'repositories: { local: { type: fs, path: /srv/backups } }',
    'targets:',
    '  app: { type: sqlite, path: /srv/app.db, repositories: [local] }',
    '```',
    '',
    '```yaml',
    'targets:',
    '  app: { type: sqlite, path: /srv/app.db, repositories: [local] }',
    '```',
    '',
    '````yaml',
    '````',
  ].join('\n');
  const blocks = fencedBlocks(page, 'docs/example.md');

  test('accepts a complete config', () => {
    assert.equal(blocks.length, 3);
    checkConfigExample(blocks[0]!);
  });

  test('names the page and line of a fragment and says what is missing', () => {
    assert.throws(() => checkConfigExample(blocks[1]!), (error: Error) => {
      assert.match(error.message, /^docs\/example\.md:9: the ```yaml block is not a complete, valid lifeboat\.config\.yaml/);
      assert.match(error.message, /\n {2}repositories: .*expected record/);
      return true;
    });
  });

  test('fails on an empty block', () => {
    assert.throws(() => checkConfigExample(blocks[2]!), /^Error: docs\/example\.md:14: the ```yaml block is empty$/);
  });
});
