import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { projectRoot } from '../../src/dev/tools.js';

/** A fenced code block of a Markdown page: where it is, its info string's first word, its text. */
export interface FencedBlock {
  /** The page, relative to the project root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  language: string;
  body: string;
}

/** The pages the docs tests read: README.md and every docs/**\/*.md, as paths relative to the project root. */
export function docPages(root: string = projectRoot): string[] {
  const docs = readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.md'))
    .map((path) => relative(root, join(root, 'docs', path)))
    .sort();
  return ['README.md', ...docs];
}

/**
 * Every fenced block (``` or ~~~, CommonMark rules: up to three spaces of indent, a closing fence of
 * the same character at least as long) of a page's text. An unclosed block runs to the end.
 */
export function fencedBlocks(text: string, file: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[index]!);
    if (!open) continue;
    const fence = open[1]!;
    const body: string[] = [];
    let end = index + 1;
    for (; end < lines.length; end++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[end]!);
      if (close && close[1]![0] === fence[0] && close[1]!.length >= fence.length) break;
      body.push(lines[end]!);
    }
    blocks.push({ file, line: index + 1, language: open[2]!.toLowerCase(), body: body.join('\n') });
    index = end;
  }
  return blocks;
}

export function blocksOfPage(file: string, root: string = projectRoot): FencedBlock[] {
  return fencedBlocks(readFileSync(join(root, file), 'utf8'), file);
}
