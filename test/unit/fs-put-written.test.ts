import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { finished, pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { createDecompressor, createFileToFileCompressor } from '../../src/pipeline/compress.js';
import { FsBackend } from '../../src/repository/fs/backend.js';

describe('an fs repository object written by a subprocess (putWritten)', () => {
  let dir: string;
  let backend: FsBackend;
  let source: string;
  const content = Buffer.concat([randomBytes(300_000), Buffer.alloc(700_000, 7)]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-put-written-'));
    backend = new FsBackend({ path: join(dir, 'repo') });
    source = join(dir, 'source.bin');
    await writeFile(source, content);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Everything under the repository's root, temp files included. */
  const filesInRepository = async () => (await readdir(join(dir, 'repo'), { recursive: true }).catch(() => [])).sort();

  test('zstd compresses a file straight into the object; it is private and decodes to the source', async () => {
    const input = await open(source, 'r');
    try {
      const info = await backend.putWritten('t/backups/1/db.zst', async (file) => {
        await finished(createFileToFileCompressor({ fd: input.fd, sizeBytes: content.length }, file.fd, { level: 3, threads: 1 }), { readable: false });
      });
      const path = join(dir, 'repo', 't', 'backups', '1', 'db.zst');
      assert.equal(info.sizeBytes, (await stat(path)).size);
      assert.equal((await stat(path)).mode & 0o777, 0o600, 'a repository file is readable by its owner only');
      const decoded = await decode(await readFile(path));
      assert.ok(decoded.equals(content));
      assert.deepEqual(await filesInRepository(), ['t', 't/backups', 't/backups/1', 't/backups/1/db.zst'], 'no temp file is left');
    } finally {
      await input.close();
    }
  });

  test('a writer that fails stores nothing and leaves no temp file', async () => {
    const input = await open(source, 'r');
    try {
      await assert.rejects(
        backend.putWritten('t/backups/2/db.zst', async (file) => {
          // zstd must read exactly sizeBytes: a wrong size is a failed write, after some output.
          await finished(createFileToFileCompressor({ fd: input.fd, sizeBytes: content.length + 1 }, file.fd, { level: 1, threads: 1 }), { readable: false });
        }),
      );
      assert.equal(await backend.head('t/backups/2/db.zst'), undefined);
      assert.deepEqual((await filesInRepository()).filter((name) => name.startsWith('t/backups/2/')), [], 'no temp file is left');
    } finally {
      await input.close();
    }
  });

  test('an abort before the object is committed stores nothing', async () => {
    const controller = new AbortController();
    await assert.rejects(
      backend.putWritten(
        't/backups/3/db.zst',
        async (file) => {
          const handle = await open(file.path, 'r+');
          await handle.write(Buffer.from('partial'));
          await handle.close();
          controller.abort();
        },
        { signal: controller.signal },
      ),
      { name: 'AbortError' },
    );
    assert.equal(await backend.head('t/backups/3/db.zst'), undefined);
    assert.deepEqual((await filesInRepository()).filter((name) => name.startsWith('t/backups/3/')), [], 'no temp file is left');
  });
});

/** The decoded bytes of a zstd frame, through the zstd CLI. */
async function decode(frame: Buffer): Promise<Buffer> {
  const decompressor = createDecompressor();
  const [decoded] = await Promise.all([buffer(decompressor), pipeline(Readable.from([frame]), decompressor)]);
  return decoded;
}
