// Rewrites the configuration reference in docs/configuration.md from the schema (src/config/schema.ts).
// The same as `npm run docs -- config`; kept because `npm run docs:config` is what people know.
import { writeGeneratedPart } from '../src/docs/generated.js';
import { generatedParts } from '../src/docs/parts.js';

const part = generatedParts.config;
const changed = await writeGeneratedPart(part);
process.stderr.write(`${part.page}: configuration reference ${changed ? 'updated' : 'already current'}\n`);
