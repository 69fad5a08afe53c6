// Rewrites the generated parts of the docs from the code (src/docs/parts.ts):
//   npm run docs                 every part
//   npm run docs -- cli config   only these (also: npm run docs:cli, docs:config, docs:failures)
import { generatedParts, type GeneratedPartName } from '../src/docs/parts.js';
import { writeGeneratedPart } from '../src/docs/generated.js';

const known = Object.keys(generatedParts) as GeneratedPartName[];
const asked = process.argv.slice(2);
const unknown = asked.filter((name) => !(known as string[]).includes(name));
if (unknown.length > 0) {
  process.stderr.write(`scripts/docs.ts: no generated part named ${unknown.join(', ')}; the parts are: ${known.join(', ')}\n`);
  process.exit(2);
}
for (const name of asked.length > 0 ? (asked as GeneratedPartName[]) : known) {
  const part = generatedParts[name];
  const changed = await writeGeneratedPart(part);
  process.stderr.write(`${part.page}: ${name} reference ${changed ? 'updated' : 'already current'}\n`);
}
