// The lifeboat CLI prebuilt as plain JavaScript (dist/cli/), so a command starts without compiling
// TypeScript through tsx. It matters where PostgreSQL starts one process per WAL segment:
// archive_command (`wal-push`) and restore_command (`wal-fetch`, which paces recovery and so the
// RTO of every point-in-time recovery). `npm run bench`, 16 MiB segments into an fs repository:
// 0.96 s per wal-push through tsx, 0.42 s prebuilt (wal-fetch 0.31 s).
//
// The bundle is only a cache of the sources: bin/lifeboat.js uses it when every source file it was
// built from is unchanged (size and mtime, recorded as each file was read), and otherwise runs the
// sources through tsx as before. So an edited source is never shadowed by an old build, and a
// missing or broken dist/ costs speed, not correctness.
//
// Plain JavaScript, no dependencies on the hot path: bin/lifeboat.js imports this before it knows
// whether it needs tsx. esbuild (what tsx compiles with) is loaded only to build.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The same root as src/dev/tools.ts computes; this file cannot import TypeScript.
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Bumped when the way the bundle is built changes: older builds then count as stale. */
const buildFormat = 4;
const stampName = 'build.json';
const currentName = 'current.json';
/** Pure JavaScript packages on the path of every command, bundled into dist/cli/ with their dependencies. */
const inlinedPackages = ['commander', 'execa', 'yaml', 'zod'];

function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** dist/cli/: current.json names the build in use; each build is a directory of its own beside it. */
export function cliBundleDir(root = projectRoot) {
  return join(root, 'dist', 'cli');
}

/**
 * A build is removed by the first build that runs at least this long after it was replaced, never
 * sooner: a command that started from it may still be loading modules from it.
 */
const keepReplacedMs = 24 * 3600 * 1000;

/**
 * The entry of the current build if it was built from the current sources, else undefined (none,
 * another format, built in another checkout, or a source changed since).
 * @returns {string | undefined}
 */
export function freshCliBundle(root = projectRoot) {
  const dir = cliBundleDir(root);
  const build = currentBuild(dir);
  let stamp;
  try {
    stamp = typeof build === 'string' ? JSON.parse(readFileSync(join(dir, build, stampName), 'utf8')) : undefined;
  } catch {
    return undefined;
  }
  if (stamp?.format !== buildFormat || stamp.root !== root || typeof stamp.inputs !== 'object' || stamp.inputs === null) return undefined;
  for (const [file, recorded] of Object.entries(stamp.inputs)) {
    const now = statOrUndefined(join(root, file));
    if (!now || now.size !== recorded.size || now.mtimeMs !== recorded.mtimeMs) return undefined;
  }
  return join(dir, build, 'cli.js');
}

/**
 * Builds dist/cli/<build>/ from src/cli.ts: one ES module per dynamic import (esbuild code
 * splitting), so a command still loads only what it uses. A build is never changed or removed
 * while it may be in use: a new one gets a directory of its own and becomes current by an atomic
 * rename of current.json, and a replaced one stays for keepReplacedMs (a command that started
 * from it loads its later modules from it; PostgreSQL's restore_command must not fail halfway
 * because a deployment rebuilt the CLI).
 * @returns {Promise<{ dir: string; inputs: number }>}
 */
export async function buildCliBundle(root = projectRoot) {
  const { build } = await import('esbuild');
  const dir = cliBundleDir(root);
  const name = `build-${new Date().toISOString().replace(/[-:.]/g, '')}-${process.pid}`;
  const out = join(dir, name);
  mkdirSync(dir, { recursive: true });
  /** @type {Record<string, { size: number; mtimeMs: number }>} */
  const inputs = {};
  // Stat before reading: a file edited in between then looks changed later, never the reverse.
  const record = (path) => {
    const stat = statSync(path);
    inputs[relative(root, path)] = { size: stat.size, mtimeMs: stat.mtimeMs };
  };
  // What shapes the output besides the files esbuild reads: how it is built, and with what.
  for (const file of [fileURLToPath(import.meta.url), join(root, 'package.json'), join(root, 'tsconfig.json')]) record(file);
  await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'src', 'cli.ts')],
    outdir: out,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
    // The CommonJS dependencies of the inlined packages call require(), which an ES module lacks.
    banner: { js: "import { createRequire as lifeboatCreateRequire } from 'node:module'; const require = lifeboatCreateRequire(import.meta.url);" },
    plugins: [
      {
        // Node resolves, reads and compiles each file of a package on its own: the four every
        // command loads (with their dependencies, some 250 files) cost about 185 ms that way and
        // about 60 ms bundled. Every other package stays an import of node_modules.
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
        name: 'inputs-as-they-are',
        setup(bundler) {
          bundler.onLoad({ filter: /.*/ }, (args) => {
            record(args.path);
            if (args.path.includes('/node_modules/')) return undefined; // esbuild reads it
            // Each module of the project keeps its own location: files found next to a source
            // (threads' .mjs entries, the project root, the workflows) are found from dist/ too.
            const source = readFileSync(args.path, 'utf8');
            const other = /import\.meta\.(?!url\b)\w+/.exec(source);
            if (other) throw new Error(`${relative(root, args.path)} uses ${other[0]}, which the prebuilt CLI does not keep per module; use import.meta.url`);
            const contents = source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
            return { contents, loader: loaderFor(args.path) };
          });
        },
      },
    ],
  });
  writeFileSync(join(out, stampName), `${JSON.stringify({ format: buildFormat, root, inputs }, null, 1)}\n`);
  // The build about to be replaced gets its mtime set first: from then on it says when the build
  // stopped being current, and a concurrent builder's clean-up can never see it as long replaced.
  const replaced = currentBuild(dir);
  if (replaced && replaced !== name) {
    const now = new Date();
    try {
      utimesSync(join(dir, replaced), now, now);
    } catch {
      // already gone
    }
  }
  const pointer = join(dir, `${currentName}.${process.pid}.tmp`);
  writeFileSync(pointer, `${JSON.stringify({ build: name })}\n`);
  renameSync(pointer, join(dir, currentName));
  removeReplacedBuilds(dir, name);
  return { dir: out, inputs: Object.keys(inputs).length };
}

function loaderFor(path) {
  if (/\.[cm]?ts$/.test(path)) return 'ts';
  if (/\.[cm]?js$/.test(path)) return 'js';
  if (path.endsWith('.json')) return 'json';
  throw new Error(`${path}: the prebuilt CLI knows no loader for this file`);
}

function currentBuild(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, currentName), 'utf8')).build;
  } catch {
    return undefined;
  }
}

/**
 * Removes builds replaced more than keepReplacedMs ago (and what builds that never finished
 * left, as old). Another builder may be removing the same entries: whatever is gone is skipped.
 */
function removeReplacedBuilds(dir, current) {
  const now = Date.now();
  for (const entry of readdirSync(dir)) {
    if (entry === current || entry === currentName) continue;
    const path = join(dir, entry);
    const stat = statOrUndefined(path);
    if (stat && now - stat.mtimeMs > keepReplacedMs) rmSync(path, { recursive: true, force: true });
  }
}

function statOrUndefined(path) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
