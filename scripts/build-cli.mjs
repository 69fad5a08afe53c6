// Builds the prebuilt lifeboat CLI (dist/cli/, see bin/cli-bundle.js) unless it is current.
// Run by scripts/bootstrap.sh (so before every `npm start` / `npm test`) and by the Dockerfile;
// `npm run build` after deploying new sources. --force builds anyway.
import { buildCliBundle, cliBundleDir, freshCliBundle } from '../bin/cli-bundle.js';

if (!process.argv.includes('--force') && freshCliBundle()) {
  console.log(`build-cli: ${cliBundleDir()} is current`);
} else {
  const started = performance.now();
  const { dir, inputs } = await buildCliBundle();
  console.log(`build-cli: built ${dir} from ${inputs} files in ${Math.round(performance.now() - started)} ms`);
}
