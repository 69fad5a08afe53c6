// Rewrites the configuration reference in README.md from the schema (src/config/schema.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withReference } from '../src/config/reference.js';
import { projectRoot } from '../src/dev/tools.js';

const readmePath = join(projectRoot, 'README.md');
writeFileSync(readmePath, withReference(readFileSync(readmePath, 'utf8')));
process.stderr.write('README.md configuration reference updated\n');
