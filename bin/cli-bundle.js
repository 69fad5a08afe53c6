// The lifeboat CLI prebuilt as plain JavaScript (dist/cli/), so a command starts without compiling
// TypeScript through tsx. It matters where PostgreSQL starts one process per WAL segment:
// archive_command (`wal-push`) and restore_command (`wal-fetch`, which paces recovery and so the
// RTO of every point-in-time recovery). 16 MiB segment into an fs repository: about 1.0 s per
// wal-push and 0.9 s per wal-fetch through tsx, about 0.55 s and 0.5 s prebuilt.
//
// The bundle is only a cache of the sources: bin/lifeboat.js uses it when every source file it was
// built from is unchanged (size and mtime, recorded as each file was read), and otherwise runs the
// sources through tsx as before. So an edited source is never shadowed by an old build, and a
// missing or broken dist/ costs speed, not correctness.
//
// Plain JavaScript, no dependencies on the hot path: bin/lifeboat.js imports this before it knows
// whether it needs tsx. esbuild (what tsx compiles with) is loaded only to build.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Bumped when the way the bundle is built changes: older builds then count as stale. */
const buildFormat = 2;
const stampName = 'build.json';
/** Pure JavaScript packages on the path of every command, bundled into dist/cli/ with their dependencies. */
const inlinedPackages = ['commander', 'execa', 'yaml', 'zod'];

function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

export function cliBundleDir(root = projectRoot) {
  return join(root, 'dist', 'cli');
}

/**
 * The entry of a bundle built from the current sources, or undefined (none, another format, built
 * in another checkout, or a source changed since).
 * @returns {string | undefined}
 */
export function freshCliBundle(root = projectRoot) {
  const dir = cliBundleDir(root);
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(dir, stampName), 'utf8'));
  } catch {
    return undefined;
  }
  if (stamp?.format !== buildFormat || stamp.root !== root || typeof stamp.inputs !== 'object' || stamp.inputs === null) return undefined;
  for (const [file, recorded] of Object.entries(stamp.inputs)) {
    const now = statOrUndefined(join(root, file));
    if (!now || now.size !== recorded.size || now.mtimeMs !== recorded.mtimeMs) return undefined;
  }
  return join(dir, 'cli.js');
}

/**
 * Builds dist/cli/ from src/cli.ts: one ES module per dynamic import (esbuild code splitting), so
 * a command still loads only what it uses; npm packages stay imports of node_modules. Written
 * beside the old build and renamed into place: a command starting meanwhile sees the old build,
 * none (and runs the sources), or the new one, never half of one.
 * @returns {Promise<{ dir: string; inputs: number }>}
 */
export async function buildCliBundle(root = projectRoot) {
  const { build } = await import('esbuild');
  const dir = cliBundleDir(root);
  const staging = `${dir}.building-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  /** @type {Record<string, { size: number; mtimeMs: number }>} */
  const inputs = {};
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'src', 'cli.ts')],
    outdir: staging,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Node resolves, reads and compiles each file of a package on its own: the four the
    // archive commands load (with their dependencies, some 250 files) cost about 185 ms that
    // way and about 60 ms bundled. Every other package stays an import of node_modules.
    banner: { js: "import { createRequire as lifeboatCreateRequire } from 'node:module'; const require = lifeboatCreateRequire(import.meta.url);" },
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    plugins: [
      {
        name: 'inline-only-these-packages',
        setup(bundler) {
          bundler.onResolve({ filter: /^[^./]/ }, (args) => {
            if (args.path.startsWith('node:') || builtinModules.includes(args.path.split('/')[0])) return { path: args.path, external: true };
            // What an inlined package imports is inlined with it.
            if (args.importer.includes('/node_modules/')) return undefined;
            return inlinedPackages.includes(packageName(args.path)) ? undefined : { path: args.path, external: true };
          });
        },
      },
      {
        name: 'sources-as-they-are',
        setup(bundler) {
          bundler.onLoad({ filter: /\.[cm]?ts$/ }, (args) => {
            // Stat before reading: a file edited in between then looks changed later, never the reverse.
            const stat = statSync(args.path);
            inputs[relative(root, args.path)] = { size: stat.size, mtimeMs: stat.mtimeMs };
            // Each module keeps its own location: files found next to a source (threads'
            // .mjs entries, the project root, the workflows) are found from dist/ too.
            const contents = readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
            return { contents, loader: 'ts' };
          });
        },
      },
    ],
  });
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = relative(root, resolve(root, input));
    if (!(file in inputs)) {
      const stat = statSync(join(root, file));
      inputs[file] = { size: stat.size, mtimeMs: stat.mtimeMs };
    }
  }
  writeFileSync(join(staging, stampName), `${JSON.stringify({ format: buildFormat, root, inputs }, null, 1)}\n`);
  mkdirSync(dirname(dir), { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return { dir, inputs: Object.keys(inputs).length };
}

function statOrUndefined(path) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
