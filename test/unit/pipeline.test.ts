import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { LifeboatError, type ErrorType } from '../../src/errors.js';
import { compressionInfo, createCompressor, createDecompressor, createDecompressorToFile, createFileCompressor } from '../../src/pipeline/compress.js';
import {
  createDecryptor,
  createEncryptor,
  decryptionKeyFor,
  encryptedLength,
  encryptionFormat,
  keyId,
  loadKeyFile,
} from '../../src/pipeline/encrypt.js';
import { growingFileChunks, pause, watchWriter } from '../../src/pipeline/growing-file.js';
import { HashingPassThrough, sha256OfFile, sha256OfGrowingFile, sha256OfOpenFile, sha256OfStream } from '../../src/pipeline/hash.js';
import { wholeFileDescriptor } from '../../src/pipeline/local-file.js';
import { FsBackend } from '../../src/repository/fs/backend.js';

const MiB = 1024 * 1024;
const { headerLength, chunkSize, tagLength } = encryptionFormat;
const sealedChunk = chunkSize + tagLength;

/** Feeds `input` in pieces of `pieceSize` bytes through `stages` and returns everything that came out. */
async function run(input: Buffer, stages: Duplex[], pieceSize = 64 * 1024): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(pieces(input, pieceSize)),
    ...(stages as [Duplex, ...Duplex[]]),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

/** Like run(), but for inputs expected to fail: returns the error and whatever was emitted before it. */
async function runExpectingFailure(input: Buffer, stages: Duplex[]): Promise<{ error: unknown; emitted: Buffer }> {
  const out: Buffer[] = [];
  try {
    await pipeline(
      Readable.from(pieces(input, 64 * 1024)),
      ...(stages as [Duplex, ...Duplex[]]),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          out.push(chunk);
          callback();
        },
      }),
    );
  } catch (error) {
    return { error, emitted: Buffer.concat(out) };
  }
  assert.fail('the pipeline succeeded but was expected to fail');
}

function* pieces(input: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < input.length; offset += size) yield input.subarray(offset, offset + size);
}

function isLifeboatError(type: ErrorType): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof LifeboatError, `expected a LifeboatError(${type}), got ${String(error)}`);
    assert.equal(error.type, type, `expected ${type}, got ${error.type}: ${error.message}`);
    return true;
  };
}

/** Half text, half random: compresses like a real database page mix, not like zeros. */
function mixedData(bytes: number): Buffer {
  const text = Buffer.from('INSERT INTO events VALUES (42, "order", "user-1234 did refund on item 9876");\n'.repeat(bytes / 160 + 1));
  const parts: Buffer[] = [];
  for (let filled = 0; filled < bytes; filled += 128 * 1024) {
    parts.push(text.subarray(filled % 4096, (filled % 4096) + 64 * 1024), randomBytes(64 * 1024));
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** zstd processes whose parent is this test process, including zombies (state Z). */
async function zstdChildren(): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const match = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
      if (match?.[1] === 'zstd' && Number(match[3]) === process.pid) found.push(`${entry}:${match[2]}`);
    } catch {
      // the process exited while we looked
    }
  }
  return found;
}

describe('zstd compression', () => {
  for (const [name, input] of [
    ['empty input', Buffer.alloc(0)],
    ['a small input', Buffer.from('lifeboat keeps your data afloat')],
    ['several MiB of mixed text and random bytes', mixedData(6 * MiB + 123)],
  ] as const) {
    test(`compress then decompress returns ${name} byte for byte`, async () => {
      const compressed = await run(input, [createCompressor({ level: 3, threads: 2 })]);
      assert.deepEqual(compressed.subarray(0, 4), Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'output is a zstd frame');
      const restored = await run(compressed, [createDecompressor()]);
      assert.equal(restored.length, input.length);
      assert.ok(restored.equals(input));
    });
  }

  test('compressible input actually gets smaller', async () => {
    const input = Buffer.from('the same line again and again\n'.repeat(100_000));
    const compressed = await run(input, [createCompressor({ level: 3, threads: 1 })]);
    assert.ok(compressed.length < input.length / 20, `${compressed.length} bytes from ${input.length}`);
  });

  test('decompressing bytes that are not zstd fails with BackupCorrupt', async () => {
    const { error } = await runExpectingFailure(randomBytes(100_000), [createDecompressor()]);
    isLifeboatError('BackupCorrupt')(error);
    assert.match((error as Error).message, /zstd/);
  });

  test('decompressing empty input fails with BackupCorrupt (a backup is never zero bytes)', async () => {
    const { error } = await runExpectingFailure(Buffer.alloc(0), [createDecompressor()]);
    isLifeboatError('BackupCorrupt')(error);
  });

  test('decompressing a truncated frame fails with BackupCorrupt instead of returning short data', async () => {
    const compressed = await run(mixedData(2 * MiB), [createCompressor({ level: 3, threads: 1 })]);
    const { error } = await runExpectingFailure(compressed.subarray(0, compressed.length - 10), [createDecompressor()]);
    isLifeboatError('BackupCorrupt')(error);
  });

  test('a damaged frame fails its checksum with BackupCorrupt', async () => {
    const compressed = Buffer.from(await run(mixedData(2 * MiB), [createCompressor({ level: 3, threads: 1 })]));
    const middle = Math.floor(compressed.length / 2);
    compressed[middle] = (compressed[middle] as number) ^ 0x40;
    const { error } = await runExpectingFailure(compressed, [createDecompressor()]);
    isLifeboatError('BackupCorrupt')(error);
  });

  test('destroying a compressor mid-stream kills zstd and leaves no process or zombie behind', async () => {
    const compressor = createCompressor({ level: 3, threads: 2 });
    compressor.on('error', () => {});
    compressor.write(randomBytes(MiB));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok((await zstdChildren()).length > 0, 'zstd was running');
    compressor.destroy(new Error('upload failed'));
    await new Promise((resolve) => compressor.once('close', resolve)); // events.once would reject on 'error'
    assert.deepEqual(await zstdChildren(), []);
  });

  test('destroying a decompressor whose output nobody reads still ends zstd (no hang on backpressure)', async () => {
    const frame = await run(Buffer.alloc(64 * MiB), [createCompressor({ level: 3, threads: 1 })]);
    const decompressor = createDecompressor();
    decompressor.on('error', () => {});
    decompressor.write(frame);
    await new Promise((resolve) => setTimeout(resolve, 100));
    decompressor.destroy();
    await new Promise((resolve) => decompressor.once('close', resolve));
    assert.deepEqual(await zstdChildren(), []);
  });

  test('a missing zstd executable fails the stream saying how to install it', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const { error } = await runExpectingFailure(Buffer.from('data'), [createCompressor({ level: 3, threads: 1 })]);
      assert.match((error as Error).message, /Could not start zstd.*apt-get install zstd/);
    } finally {
      process.env.PATH = path;
    }
  });

  test('finished streams leave no zstd process behind', async () => {
    await run(mixedData(MiB), [createCompressor({ level: 3, threads: 2 })]);
    assert.deepEqual(await zstdChildren(), []);
  });

  test('invalid levels and thread counts are rejected before zstd starts', () => {
    assert.throws(() => createCompressor({ level: 0, threads: 2 }), RangeError);
    assert.throws(() => createCompressor({ level: 23, threads: 2 }), RangeError);
    assert.throws(() => createCompressor({ level: 3.5, threads: 2 }), RangeError);
    assert.throws(() => createCompressor({ level: 3, threads: -1 }), RangeError);
  });

  describe('zstd reading and writing files itself', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-zstd-files-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    test('a file compressor reads the open file from its start and the frame decodes to its bytes', async () => {
      const input = mixedData(3 * MiB + 17);
      const path = join(dir, 'source.db');
      await writeFile(path, input);
      const file = await open(path, 'r');
      try {
        const chunks: Buffer[] = [];
        const collect = new Writable({
          write(chunk: Buffer, _encoding, done) {
            chunks.push(chunk);
            done();
          },
        });
        await pipeline(createFileCompressor({ fd: file.fd, sizeBytes: input.length }, { level: 3, threads: 2 }), collect);
        const compressed = Buffer.concat(chunks);
        assert.ok((await run(compressed, [createDecompressor()])).equals(input));
      } finally {
        await file.close();
      }
    });

    test('a file compressor fails when the file does not hold exactly the announced bytes', async () => {
      const path = join(dir, 'grown.db');
      await writeFile(path, mixedData(MiB));
      const file = await open(path, 'r');
      try {
        const compressor = createFileCompressor({ fd: file.fd, sizeBytes: MiB - 1 }, { level: 3, threads: 1 });
        await assert.rejects(pipeline(compressor, new Writable({ write: (_c, _e, done) => done() })), /zstd compression failed/);
      } finally {
        await file.close();
      }
    });

    test('a decompressor to a file writes exactly the original bytes and finishes only after zstd has', async () => {
      const input = mixedData(2 * MiB + 5);
      const compressed = await run(input, [createCompressor({ level: 3, threads: 1 })]);
      const out = join(dir, 'restored.db');
      await pipeline(Readable.from(pieces(compressed, 64 * 1024)), createDecompressorToFile(out));
      assert.ok((await readFile(out)).equals(input));
      assert.equal((await stat(out)).mode & 0o777, 0o600, 'created readable by its owner only, whatever the umask');
      assert.deepEqual(await zstdChildren(), []);
    });

    test('a decompressor to a file fails with BackupCorrupt on a damaged frame, and leaves no partial file', async () => {
      const compressed = Buffer.from(await run(mixedData(2 * MiB), [createCompressor({ level: 3, threads: 1 })]));
      const middle = Math.floor(compressed.length / 2);
      compressed[middle] = (compressed[middle] as number) ^ 0x40;
      await assert.rejects(
        pipeline(Readable.from(pieces(compressed, 64 * 1024)), createDecompressorToFile(join(dir, 'damaged.db'))),
        isLifeboatError('BackupCorrupt'),
      );
      assert.equal(existsSync(join(dir, 'damaged.db')), false);
    });

    test('a decompressor to a file never replaces an existing file', async () => {
      const out = join(dir, 'existing.db');
      await writeFile(out, 'precious');
      const compressed = await run(Buffer.from('new'), [createCompressor({ level: 3, threads: 1 })]);
      await assert.rejects(async () => pipeline(Readable.from([compressed]), createDecompressorToFile(out)), { code: 'EEXIST' });
      assert.equal(await readFile(out, 'utf8'), 'precious');
      assert.equal((await stat(out)).size, 8);
    });
  });

  test('compressionInfo names zstd and the CLI version for the manifest', async () => {
    const info = await compressionInfo();
    assert.equal(info.algorithm, 'zstd');
    assert.equal(info.implementation, 'zstd-cli');
    assert.match(info.version, /^\d+\.\d+\.\d+$/);
  });
});

describe('authenticated streaming encryption', () => {
  const key = randomBytes(32);
  const otherKey = randomBytes(32);

  for (const [name, size] of [
    ['empty input', 0],
    ['1 byte', 1],
    ['exactly 1 MiB (one full final chunk)', MiB],
    ['1 MiB + 1 byte (a second, 1-byte chunk)', MiB + 1],
    ['5 MiB of random bytes', 5 * MiB],
  ] as const) {
    test(`encrypt then decrypt returns ${name} byte for byte`, async () => {
      const plaintext = randomBytes(size);
      const ciphertext = await run(plaintext, [createEncryptor(key)]);
      assert.equal(ciphertext.length, encryptedLength(size));
      const restored = await run(ciphertext, [createDecryptor(key)]);
      assert.ok(restored.equals(plaintext));
    });
  }

  test('round trips whatever the sizes of the incoming writes', async () => {
    const plaintext = randomBytes(2 * MiB + 777);
    for (const pieceSize of [1, 13, 7919, MiB - 1, MiB + 1, 3 * MiB]) {
      const input = pieceSize === 1 ? plaintext.subarray(0, 300_000) : plaintext;
      const ciphertext = await run(input, [createEncryptor(key)], pieceSize);
      const restored = await run(ciphertext, [createDecryptor(key)], pieceSize);
      assert.ok(restored.equals(input), `piece size ${pieceSize}`);
    }
  });

  test('even empty input produces a header and one authenticated chunk', async () => {
    const ciphertext = await run(Buffer.alloc(0), [createEncryptor(key)]);
    assert.equal(ciphertext.length, headerLength + tagLength);
    assert.equal(ciphertext.subarray(0, 7).toString('latin1'), 'LBENC1\n');
  });

  test('encrypting the same plaintext twice gives different ciphertexts (fresh nonce per stream)', async () => {
    const plaintext = Buffer.from('same data');
    const first = await run(plaintext, [createEncryptor(key)]);
    const second = await run(plaintext, [createEncryptor(key)]);
    assert.ok(!first.equals(second));
  });

  test('the ciphertext does not contain the plaintext', async () => {
    const plaintext = Buffer.from('a very recognisable secret sentence '.repeat(1000));
    const ciphertext = await run(plaintext, [createEncryptor(key)]);
    assert.equal(ciphertext.indexOf('recognisable'), -1);
  });

  test('decrypting with the wrong key fails with WrongEncryptionKey naming both key ids, before any output', async () => {
    const ciphertext = await run(randomBytes(3 * MiB), [createEncryptor(key)]);
    const { error, emitted } = await runExpectingFailure(ciphertext, [createDecryptor(otherKey)]);
    isLifeboatError('WrongEncryptionKey')(error);
    assert.ok((error as Error).message.includes(keyId(key)), 'names the key id the backup needs');
    assert.ok((error as Error).message.includes(keyId(otherKey)), 'names the key id that was supplied');
    assert.equal(emitted.length, 0);
  });

  test('the wrong key is detected from the header alone', async () => {
    const ciphertext = await run(randomBytes(10), [createEncryptor(key)]);
    const { error } = await runExpectingFailure(ciphertext.subarray(0, headerLength), [createDecryptor(otherKey)]);
    isLifeboatError('WrongEncryptionKey')(error);
  });

  describe('tampering', () => {
    const plaintext = randomBytes(2 * MiB + 1000); // three chunks: full, full, 1000 bytes
    let ciphertext: Buffer;
    before(async () => {
      ciphertext = await run(plaintext, [createEncryptor(key)]);
    });

    test('flipping one bit anywhere outside the key id fails with BackupCorrupt', async () => {
      const keyIdStart = 8;
      const positions = new Set<number>([
        0, 6, // magic
        7, // version
        keyIdStart + 16, headerLength - 1, // nonce prefix
        ciphertext.length - 1, // last tag byte
      ]);
      for (let chunk = 0; chunk < 3; chunk += 1) {
        const start = headerLength + chunk * sealedChunk;
        const end = Math.min(start + sealedChunk, ciphertext.length);
        for (const offset of [start, start + 1, Math.floor((start + end) / 2), end - tagLength - 1, end - tagLength, end - 1]) {
          positions.add(offset);
        }
      }
      for (let i = 0; i < 20; i += 1) positions.add(headerLength + Math.floor(Math.random() * (ciphertext.length - headerLength)));

      for (const position of positions) {
        const tampered = Buffer.from(ciphertext);
        tampered[position] = (tampered[position] as number) ^ 0x01;
        const { error } = await runExpectingFailure(tampered, [createDecryptor(key)]);
        assert.ok(error instanceof LifeboatError && error.type === 'BackupCorrupt', `flip at byte ${position}: ${String(error)}`);
      }
    });

    test('a damaged key id reads as a wrong key, since the header is all there is before decrypting', async () => {
      const tampered = Buffer.from(ciphertext);
      tampered[10] = (tampered[10] as number) ^ 0x01;
      const { error } = await runExpectingFailure(tampered, [createDecryptor(key)]);
      isLifeboatError('WrongEncryptionKey')(error);
      assert.match((error as Error).message, /header is damaged/);
    });

    test('a chunk that fails authentication releases none of its plaintext', async () => {
      const tampered = Buffer.from(ciphertext);
      const inSecondChunk = headerLength + sealedChunk + 5;
      tampered[inSecondChunk] = (tampered[inSecondChunk] as number) ^ 0x01;
      const { error, emitted } = await runExpectingFailure(tampered, [createDecryptor(key)]);
      isLifeboatError('BackupCorrupt')(error);
      assert.equal(emitted.length, chunkSize, 'only the first, verified chunk came out');
      assert.ok(emitted.equals(plaintext.subarray(0, chunkSize)));
    });

    for (const [name, cut] of [
      ['after the header', () => headerLength],
      ['after the first chunk', () => headerLength + sealedChunk],
      ['after the second chunk', () => headerLength + 2 * sealedChunk],
      ['inside a chunk', () => headerLength + sealedChunk + 100],
      ['inside the last tag', () => ciphertext.length - 1],
      ['inside the header', () => 20],
    ] as const) {
      test(`truncating the stream ${name} fails with BackupCorrupt`, async () => {
        const { error } = await runExpectingFailure(ciphertext.subarray(0, cut()), [createDecryptor(key)]);
        isLifeboatError('BackupCorrupt')(error);
      });
    }

    for (const [name, extra] of [
      ['one byte', () => Buffer.from([0])],
      ['a tag-sized block', () => randomBytes(tagLength)],
      ['a copy of the last chunk', () => ciphertext.subarray(headerLength + 2 * sealedChunk)],
    ] as const) {
      test(`appending ${name} after the final chunk fails with BackupCorrupt`, async () => {
        const { error } = await runExpectingFailure(Buffer.concat([ciphertext, extra()]), [createDecryptor(key)]);
        isLifeboatError('BackupCorrupt')(error);
      });
    }

    test('swapping two chunks fails with BackupCorrupt', async () => {
      const first = ciphertext.subarray(headerLength, headerLength + sealedChunk);
      const second = ciphertext.subarray(headerLength + sealedChunk, headerLength + 2 * sealedChunk);
      const swapped = Buffer.concat([ciphertext.subarray(0, headerLength), second, first, ciphertext.subarray(headerLength + 2 * sealedChunk)]);
      const { error } = await runExpectingFailure(swapped, [createDecryptor(key)]);
      isLifeboatError('BackupCorrupt')(error);
    });

    test('an unencrypted zstd stream is reported as not encrypted', async () => {
      const zstdFrame = await run(Buffer.from('plain'), [createCompressor({ level: 3, threads: 1 })]);
      const { error } = await runExpectingFailure(Buffer.concat([zstdFrame, Buffer.alloc(64)]), [createDecryptor(key)]);
      isLifeboatError('BackupCorrupt')(error);
      assert.match((error as Error).message, /not encrypted/);
    });
  });

  test('keys that are not 32 bytes are refused with EncryptionKeyUnavailable', () => {
    assert.throws(() => createEncryptor(randomBytes(16)), isLifeboatError('EncryptionKeyUnavailable'));
    assert.throws(() => createDecryptor(randomBytes(33)), isLifeboatError('EncryptionKeyUnavailable'));
  });
});

describe('key ids', () => {
  test('a key id is a stable 32-hex-char fingerprint that differs between keys', () => {
    const key = randomBytes(32);
    assert.match(keyId(key), /^[0-9a-f]{32}$/);
    assert.equal(keyId(key), keyId(Buffer.from(key)));
    assert.notEqual(keyId(key), keyId(randomBytes(32)));
  });

  test('a key id does not reveal the key', () => {
    const key = randomBytes(32);
    const id = keyId(key);
    assert.ok(!key.toString('hex').includes(id.slice(0, 8)));
    assert.notEqual(id, createHash('sha256').update(key).digest('hex').slice(0, 32), 'not a plain hash of the key');
  });
});

describe('key files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-keys-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function keyFile(name: string, content: Buffer | string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  }

  test('32 raw bytes are used as the key', async () => {
    const key = randomBytes(32);
    assert.ok((await loadKeyFile(await keyFile('raw', key))).equals(key));
  });

  test('64 hex characters, with or without a trailing newline, are decoded', async () => {
    const key = randomBytes(32);
    for (const [name, text] of [
      ['hex', key.toString('hex')],
      ['hex-lf', `${key.toString('hex')}\n`],
      ['hex-crlf', `${key.toString('hex')}\r\n`],
      ['hex-upper', key.toString('hex').toUpperCase()],
    ]) {
      assert.ok((await loadKeyFile(await keyFile(name as string, text as string))).equals(key), name);
    }
  });

  test('anything else is refused with EncryptionKeyUnavailable, saying how to make a key and never echoing the content', async () => {
    const almostHex = randomBytes(32).toString('hex').slice(0, 63);
    for (const [name, content] of [
      ['short', randomBytes(31)],
      ['raw-with-newline', Buffer.concat([randomBytes(32), Buffer.from('\n')])],
      ['63-hex', almostHex],
      ['64-not-hex', `${almostHex}z`],
      ['empty', ''],
      ['passphrase', 'correct horse battery staple\n'],
    ] as const) {
      const path = await keyFile(name, content);
      await assert.rejects(loadKeyFile(path), (error: unknown) => {
        isLifeboatError('EncryptionKeyUnavailable')(error);
        const message = (error as Error).message;
        assert.ok(message.includes(path), 'names the file');
        assert.ok(message.includes('head -c 32 /dev/urandom'), 'says how to make a key');
        assert.ok(!message.includes(almostHex.slice(0, 16)) && !message.includes('horse'), 'does not echo the content');
        return true;
      }, name);
    }
  });

  test('a missing key file is refused with EncryptionKeyUnavailable', async () => {
    await assert.rejects(loadKeyFile(join(dir, 'nope')), (error: unknown) => {
      isLifeboatError('EncryptionKeyUnavailable')(error);
      assert.match((error as Error).message, /does not exist.*head -c 32 \/dev\/urandom/);
      return true;
    });
  });

  test('decryptionKeyFor: the key of the config when it is the one the backup was made with; typed failures when it is missing or another', async () => {
    const key = randomBytes(32);
    const path = await keyFile('backup-key', key);
    const backup = { id: '20261206T223000Z-aaaaaa', encryption: { keyId: keyId(key) } };
    assert.equal(await decryptionKeyFor({ encryption: null }, { id: backup.id, encryption: null }), undefined, 'a backup in the clear needs no key');
    assert.ok((await decryptionKeyFor({ encryption: { keyFile: path } }, backup))!.equals(key));
    await assert.rejects(decryptionKeyFor({ encryption: null }, backup), (error: unknown) => {
      isLifeboatError('EncryptionKeyUnavailable')(error);
      assert.match((error as Error).message, new RegExp(`backup ${backup.id} is encrypted with key ${keyId(key)} but the config has no encryption.keyFile`));
      return true;
    });
    const other = await keyFile('other-key', randomBytes(32));
    await assert.rejects(decryptionKeyFor({ encryption: { keyFile: other } }, backup), (error: unknown) => {
      isLifeboatError('WrongEncryptionKey')(error);
      assert.ok((error as Error).message.includes(`backup ${backup.id} was encrypted with key ${keyId(key)}, but ${other} holds key `));
      return true;
    });
  });
});

describe('hashing', () => {
  test('HashingPassThrough passes bytes through unchanged and reports their SHA-256 and length', async () => {
    const input = randomBytes(3 * MiB + 5);
    const hasher = new HashingPassThrough();
    const output = await run(input, [hasher], 10_000);
    assert.ok(output.equals(input));
    assert.equal(hasher.sha256, sha256(input));
    assert.equal(hasher.bytes, input.length);
  });

  test('HashingPassThrough refuses to report a digest before the stream has ended', () => {
    const hasher = new HashingPassThrough();
    hasher.write(Buffer.from('partial'));
    assert.throws(() => hasher.sha256, /before the stream ended/);
    hasher.destroy();
  });

  test('the SHA-256 of empty input is the well-known empty digest', async () => {
    const hasher = new HashingPassThrough();
    await run(Buffer.alloc(0), [hasher]);
    assert.equal(hasher.sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(hasher.bytes, 0);
  });

  test('sha256OfFile hashes the whole file, or exactly its first bytes, and refuses a short file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-hash-file-'));
    try {
      const data = mixedData(5 * MiB + 3);
      const path = join(dir, 'data');
      await writeFile(path, data);
      assert.deepEqual(await sha256OfFile(path, { bufferBytes: 1 << 20 }), { sha256: sha256(data), bytes: data.length });
      assert.deepEqual(await sha256OfFile(path, { length: MiB + 1 }), { sha256: sha256(data.subarray(0, MiB + 1)), bytes: MiB + 1 });
      await assert.rejects(sha256OfFile(path, { length: data.length + 1 }), /ended at byte/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('sha256OfGrowingFile hashes a file while it is being appended to, finishing with the writer; a failed writer fails it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-hash-growing-'));
    try {
      const data = mixedData(3 * MiB + 11);
      const path = join(dir, 'growing');
      const write = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 30)); // the file does not exist yet at first
        const handle = await open(path, 'w');
        for (let at = 0; at < data.length; at += 256 * 1024) {
          await handle.write(data.subarray(at, at + 256 * 1024));
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        await handle.close();
      })();
      assert.deepEqual(await sha256OfGrowingFile(path, write, { bufferBytes: 64 * 1024, pollMs: 1 }), { sha256: sha256(data), bytes: data.length });
      await assert.rejects(sha256OfGrowingFile(join(dir, 'never'), Promise.reject(new Error('writer failed'))), /writer failed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('growingFileChunks streams a growing file in buffers of its own, and frees the disk blocks of what it handed on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-growing-chunks-'));
    try {
      const data = mixedData(6 * MiB + 5);
      const path = join(dir, 'passing-through');
      const handle = await open(path, 'w');
      const written = (async () => {
        for (let at = 0; at < data.length; at += 256 * 1024) {
          await handle.write(data.subarray(at, at + 256 * 1024));
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        await handle.close();
      })();
      const writer = watchWriter(written);
      const chunks: Buffer[] = [];
      for await (const chunk of growingFileChunks(path, {
        writerFinished: () => writer.ended(),
        complete: () => false,
        waitForData: () => pause(1, writer.settled),
        bufferBytes: 256 * 1024,
        releaseEveryBytes: MiB,
      })) {
        chunks.push(chunk);
      }
      assert.ok(Buffer.concat(chunks).equals(data), 'every byte, in order, in buffers that were not reused');
      const { size, blocks } = await stat(path);
      assert.equal(size, data.length, 'the size stays');
      assert.ok(blocks * 512 <= 2 * MiB, `at most the last MiB or so still takes disk (${blocks * 512} bytes)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('sha256OfStream matches crypto.createHash over the same bytes', async () => {
    const input = randomBytes(2 * MiB + 3);
    assert.deepEqual(await sha256OfStream(Readable.from(pieces(input, 65_536))), { sha256: sha256(input), bytes: input.length });
  });
});

describe('the backup chain', () => {
  test('compress -> encrypt -> hash -> decrypt -> decompress returns the original bytes, and the hash covers the stored bytes', async () => {
    const key = randomBytes(32);
    const original = mixedData(5 * MiB + 17);
    const storedHash = new HashingPassThrough();
    const stored = await run(original, [createCompressor({ level: 3, threads: 2 }), createEncryptor(key), storedHash]);
    assert.equal(storedHash.sha256, sha256(stored));
    assert.equal(storedHash.bytes, stored.length);
    assert.ok(stored.length < original.length, 'compression happened before encryption');

    const downloadHash = new HashingPassThrough();
    const restored = await run(stored, [downloadHash, createDecryptor(key), createDecompressor()]);
    assert.equal(downloadHash.sha256, storedHash.sha256);
    assert.ok(restored.equals(original));
  });
});

describe('reading a stored object in place (fs repository restores)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-local-file-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('sha256OfOpenFile hashes the whole file without moving the descriptor that zstd shares', async () => {
    const data = randomBytes(3 * MiB + 5);
    const path = join(dir, 'object');
    await writeFile(path, data);
    const handle = await open(path, 'r');
    try {
      const head = Buffer.alloc(10);
      await handle.read(head, 0, 10, null);
      assert.deepEqual(await sha256OfOpenFile(handle.fd, { bufferBytes: 64 * 1024 }), { sha256: sha256(data), bytes: data.length });
      const next = Buffer.alloc(10);
      await handle.read(next, 0, 10, null);
      assert.ok(next.equals(data.subarray(10, 20)), 'the shared position is where the other reader left it');
    } finally {
      await handle.close();
    }
  });

  test('wholeFileDescriptor recognises what the fs backend returns, and nothing else', async () => {
    const backend = new FsBackend({ path: dir });
    await backend.put('t/object', Readable.from([Buffer.from('stored bytes')]));
    const fresh = await backend.get('t/object');
    assert.equal(typeof wholeFileDescriptor(fresh), 'number', 'an unread whole file');
    fresh.destroy();

    const read = await backend.get('t/object');
    for await (const _chunk of read) break;
    assert.equal(wholeFileDescriptor(read), undefined, 'a stream already read from');
    assert.equal(wholeFileDescriptor(Readable.from([Buffer.from('x')])), undefined, 'not a file');
  });
});
