import { errorGuide } from '../errors-guide.js';
import { errorTypes, exitCodeFor, type ErrorCategory, type ErrorType } from '../errors.js';

/**
 * The list of typed failures in docs/failures.md, generated from src/errors.ts (names and
 * categories) and src/errors-guide.ts (meaning and action), so a failure type cannot exist
 * without its entry on the page.
 */
const categories: Record<ErrorCategory, string> = {
  input: 'Bad input or configuration: fix what the message names and run again. The CLI exits 2.',
  data: 'A backup, an archived file or a database is damaged, missing or in conflict. The CLI exits 1.',
  runbook: 'A step of the runbook failed: a hook, a check, or a PostgreSQL tool. The CLI exits 1.',
  service: 'A service Lifeboat depends on could not be reached. The CLI exits 1.',
};

export function failuresReference(): string {
  const names = Object.keys(errorTypes) as ErrorType[];
  const order = Object.keys(categories) as ErrorCategory[];
  const byCategory = order.map((category) => ({ category, names: names.filter((name) => errorTypes[name] === category) }));
  const out = ['| failure | category | CLI exit code |', '| --- | --- | --- |'];
  for (const { names: inCategory } of byCategory) {
    for (const name of inCategory) out.push(`| [${name}](#${name.toLowerCase()}) | ${errorTypes[name]} | ${exitCodeFor(name)} |`);
  }
  for (const { category, names: inCategory } of byCategory) {
    if (inCategory.length === 0) continue;
    out.push('', `## ${category[0]!.toUpperCase()}${category.slice(1)} failures`, '', categories[category]);
    for (const name of inCategory) {
      const guide = errorGuide[name];
      out.push('', `### ${name}`, '', `**Meaning.** ${guide.meaning}`, '', `**What to do.** ${guide.action}`);
    }
  }
  return out.join('\n');
}
