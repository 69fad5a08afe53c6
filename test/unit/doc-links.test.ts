import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, test } from 'node:test';
import { projectRoot } from '../../src/dev/tools.js';
import { docPages } from '../helpers/markdown.js';

/**
 * Every moved section stays one click away: each relative link of README.md and docs/ points at a
 * file that exists, each #anchor at a heading of its page (GitHub's anchor rules), and every page
 * of docs/ is linked from README.md or from the docs index it links.
 */

/** The text with fenced blocks and inline code blanked out (lines kept, so line numbers stay right). */
function proseOf(text: string): string {
  let fence: string | undefined;
  return text
    .split('\n')
    .map((line) => {
      const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === undefined && marker) {
        fence = marker;
        return '';
      }
      if (fence !== undefined) {
        if (marker && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) fence = undefined;
        return '';
      }
      return line.replace(/(`+)[^`].*?\1/g, '');
    })
    .join('\n');
}

/** GitHub's anchor of a heading: inline markup dropped, lowercase, punctuation removed, spaces to "-". */
function anchorOf(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a page's headings (read raw: proseOf blanks the inline code they hold), numbered when repeated. */
function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  const prose = proseOf(text).split('\n');
  const raw = text.split('\n');
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  prose.forEach((line, index) => {
    if (!/^#{1,6}\s/.test(line)) return;
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(raw[index]!)?.[1] ?? '';
    const base = anchorOf(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  });
  return anchors;
}

interface Link {
  page: string;
  line: number;
  target: string;
}

function linksOf(page: string): Link[] {
  const links: Link[] = [];
  proseOf(readFileSync(join(projectRoot, page), 'utf8'))
    .split('\n')
    .forEach((line, index) => {
      for (const match of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push({ page, line: index + 1, target: match[1]! });
    });
  return links;
}

function problemOf(link: Link): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) return undefined;
  const [path = '', anchor] = link.target.split('#');
  const file = path === '' ? join(projectRoot, link.page) : normalize(join(projectRoot, dirname(link.page), decodeURI(path)));
  if (!file.startsWith(projectRoot)) return `${link.target} leaves the repository`;
  if (!existsSync(file)) return `${relative(projectRoot, file)} does not exist`;
  if (anchor === undefined || !file.endsWith('.md')) return undefined;
  const anchors = anchorsOf(file);
  if (anchors.has(anchor)) return undefined;
  return `${relative(projectRoot, file)} has no heading with the anchor #${anchor}`;
}

describe('every relative link of README.md and docs/ leads somewhere', () => {
  for (const page of docPages()) {
    test(page, () => {
      const links = linksOf(page);
      const problems = links.flatMap((link) => {
        const problem = problemOf(link);
        return problem ? [`${link.page}:${link.line}: (${link.target}): ${problem}`] : [];
      });
      assert.deepEqual(problems, []);
    });
  }

  test('every page of docs/ is linked from README.md or from the docs index (docs/README.md)', () => {
    const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
    const index = readFileSync(join(projectRoot, 'docs', 'README.md'), 'utf8');
    const linked = (page: string) =>
      [`](${page})`, `](${page}#`].some((link) => readme.includes(link)) ||
      [`](${page.slice('docs/'.length)})`, `](${page.slice('docs/'.length)}#`].some((link) => index.includes(link));
    const missing = docPages().filter((page) => page.startsWith('docs/') && page !== 'docs/README.md' && !linked(page));
    assert.deepEqual(missing, [], 'link these pages from README.md or docs/README.md');
    assert.ok(readme.includes('](docs/README.md)'), 'README.md must link the docs index');
  });
});

test('anchors follow GitHub: inline code and punctuation dropped, spaces become hyphens', () => {
  assert.equal(anchorOf('PostgreSQL logical backups (pg_dump)'), 'postgresql-logical-backups-pg_dump');
  assert.equal(anchorOf('restore `{"target": "orders", "backupId"?: "...", "into"?: "/path"}`'), 'restore-target-orders-backupid--into-path');
  assert.equal(anchorOf('Five-minute tour'), 'five-minute-tour');
  assert.ok(anchorsOf(join(projectRoot, 'docs', 'cli.md')).size > 0);
});
