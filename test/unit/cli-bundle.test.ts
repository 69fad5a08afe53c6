/**
 * The prebuilt CLI (bin/cli-bundle.js) is a cache of the sources: used only while every source it
 * was built from is unchanged, and it behaves like the sources, down to where each module is.
 * Built with the real esbuild from a small project of the same shape (src/cli.ts exporting main).
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { buildCliBundle, cliBundleDir, freshCliBundle } from '../../bin/cli-bundle.js';

interface BuiltCli {
  main(argv: string[]): Promise<number>;
}

describe('prebuilt CLI bundle', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'lifeboat-cli-bundle-'));
    await writeSources(root, 'one');
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function writeSources(dir: string, answer: string): Promise<void> {
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
    await writeFile(join(dir, 'tsconfig.json'), '{}\n');
    await writeFile(
      join(dir, 'src', 'cli.ts'),
      "export async function main(argv: string[]): Promise<number> {\n  const { answer, whereAmI } = await import('./lazy.ts');\n  process.stdout.write(`${answer()} ${whereAmI()} ${argv.length}\\n`);\n  return 7;\n}\n",
    );
    await writeFile(join(dir, 'src', 'lazy.ts'), `export const answer = (): string => '${answer}';\nexport const whereAmI = (): string => import.meta.url;\n`);
  }

  async function load(entry: string): Promise<BuiltCli> {
    // A fresh URL each time: Node caches modules by URL.
    return (await import(`${pathToFileURL(entry).href}?${Date.now()}`)) as BuiltCli;
  }

  test('there is none before the first build', () => {
    assert.equal(freshCliBundle(root), undefined);
  });

  test('a build is current, runs like the sources, and each module keeps the location of its source', async () => {
    const { dir, inputs } = await buildCliBundle(root);
    assert.equal(dirname(dir), cliBundleDir(root), 'a build of its own in dist/cli/');
    assert.equal(inputs, 5, 'src/cli.ts, src/lazy.ts, package.json, tsconfig.json and bin/cli-bundle.js');
    const entry = freshCliBundle(root);
    assert.equal(entry, join(dir, 'cli.js'));

    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
    let code: number;
    try {
      code = await (await load(entry!)).main(['node', 'lifeboat', 'x']);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(code, 7);
    assert.deepEqual(written, [`one ${pathToFileURL(join(root, 'src', 'lazy.ts')).href} 3\n`]);
  });

  test('an edited source makes it stale until it is built again', async () => {
    await writeSources(root, 'two');
    assert.equal(freshCliBundle(root), undefined, 'content changed');
    await buildCliBundle(root);
    assert.ok(freshCliBundle(root));

    // Same size, only the mtime moves (an edit that kept the length, a checkout, a touch).
    await utimes(join(root, 'src', 'lazy.ts'), new Date(), new Date(Date.now() + 5000));
    assert.equal(freshCliBundle(root), undefined, 'mtime changed');
  });

  test('a rebuild becomes current without touching the build it replaces: a command that started from it still loads its modules', async () => {
    const first = freshCliBundle(root) ?? join((await buildCliBundle(root)).dir, 'cli.js');
    const before = await readdir(dirname(first));
    await utimes(join(root, 'src', 'lazy.ts'), new Date(), new Date(Date.now() + 10_000));
    assert.equal(freshCliBundle(root), undefined);
    const { dir } = await buildCliBundle(root);
    assert.equal(freshCliBundle(root), join(dir, 'cli.js'));
    assert.notEqual(dirname(first), dir);
    assert.deepEqual(await readdir(dirname(first)), before, 'the replaced build is whole');
    const builds = await readdir(cliBundleDir(root));
    assert.ok(builds.includes(basename(dirname(first))) && builds.includes(basename(dir)), builds.join(' '));
  });

  test('builds replaced more than a day ago are removed by the next build', async () => {
    const replaced = dirname(freshCliBundle(root) ?? join((await buildCliBundle(root)).dir, 'cli.js'));
    await utimes(join(root, 'src', 'lazy.ts'), new Date(), new Date(Date.now() + 20_000));
    const { dir } = await buildCliBundle(root);
    const dayAndMinuteAgo = new Date(Date.now() - 24 * 3600_000 - 60_000);
    await utimes(replaced, dayAndMinuteAgo, dayAndMinuteAgo);
    await utimes(join(root, 'src', 'lazy.ts'), new Date(), new Date(Date.now() + 30_000));
    const { dir: next } = await buildCliBundle(root);
    const builds = await readdir(cliBundleDir(root));
    assert.equal(builds.includes(basename(replaced)), false, 'replaced over a day ago: removed');
    assert.ok(builds.includes(basename(dir)), 'replaced just now: kept');
    assert.ok(builds.includes(basename(next)), 'current');
  });

  test('an edited JavaScript source of the project makes it stale too', async () => {
    await writeFile(join(root, 'src', 'helper.js'), "export const helper = 'h1';\n");
    await writeFile(join(root, 'src', 'cli.ts'), "import { helper } from './helper.js';\nexport async function main(): Promise<number> {\n  return helper.length;\n}\n");
    await buildCliBundle(root);
    assert.ok(freshCliBundle(root));
    await writeFile(join(root, 'src', 'helper.js'), "export const helper = 'h22';\n");
    assert.equal(freshCliBundle(root), undefined);
    await rm(join(root, 'src', 'helper.js'));
    await writeSources(root, 'four');
  });

  test('a source that is gone makes it stale', async () => {
    await buildCliBundle(root);
    await rm(join(root, 'src', 'lazy.ts'));
    assert.equal(freshCliBundle(root), undefined);
    await writeSources(root, 'three');
  });

  test('a bundle built in another checkout is not used', async () => {
    await buildCliBundle(root);
    const moved = await mkdtemp(join(tmpdir(), 'lifeboat-cli-bundle-moved-'));
    try {
      await cp(root, moved, { recursive: true, preserveTimestamps: true });
      assert.ok(freshCliBundle(root));
      assert.equal(freshCliBundle(moved), undefined);
    } finally {
      await rm(moved, { recursive: true, force: true });
    }
  });
});
