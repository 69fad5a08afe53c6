/**
 * The pure parts of the redis and command kinds: reading an RDB header, trimming redis-cli's EOF
 * mark, reading redis-cli's and redis-check-rdb's reports, RESP replies and INFO keyspace; and a
 * command's environment, argv quoting and drill placeholders.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buffer } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import { LifeboatError } from '../../src/errors.js';
import { commandEnvironment, describeArgv } from '../../src/pipeline/command-stream.js';
import { keyspaceTotals, parseReply, RedisErrorReply } from '../../src/redis/client.js';
import { CompressedRdbHeaderReader, EofMarkTrimmer, parseCheckOutput, parseRdbHeader, payloadBytesReported, RdbHeaderReader } from '../../src/redis/rdb.js';
import { createCompressor, createProducerCompressor } from '../../src/pipeline/compress.js';
import { startExport } from '../../src/pipeline/command-stream.js';
import { withPlaceholders } from '../../src/kinds/command/steps.js';

/** The first 180 bytes of an RDB written by Redis 7.0.15 (header, AUX fields, SELECTDB, RESIZEDB, a key). */
const rdbStart = Buffer.from(
  'UkVESVMwMDEw+glyZWRpcy12ZXIGNy4wLjE1+gpyZWRpcy1iaXRzwED6BWN0aW1lwg+bFWv6CHVzZWQtbWVtwjjRDwv6DnJlcGwtc3RyZWFtLWRiwAD6B3JlcGwtaWQoYWFiNWFlMjI2M2M5ZGE2OTI0ZWRjNjdhMmI0M2ZhNTY3MjYwZTM0YvoLcmVwbC1vZmZzZXTADvoIYW9mLWJhc2XAAP4A+4AAD0JAAAAKa2V5Ojk2',
  'base64',
);

describe('RDB streams', () => {
  test('the header gives the format, the server version and the snapshot time (int-encoded AUX values included)', () => {
    const header = parseRdbHeader(rdbStart);
    assert.equal(header.version, 10);
    assert.equal(header.aux['redis-ver'], '7.0.15');
    assert.equal(header.aux['redis-bits'], '64');
    assert.equal(new Date(Number(header.aux.ctime) * 1000).toISOString(), '2026-12-06T17:27:43.000Z');
    assert.equal(header.aux['aof-base'], '0');
  });

  test('the header reader waits for more bytes, and names a stream that is not an RDB', () => {
    const reader = new RdbHeaderReader();
    for (let at = 0; at < rdbStart.length; at += 7) reader.write(rdbStart.subarray(at, at + 7));
    assert.equal(reader.header?.aux['redis-ver'], '7.0.15');
    const junk = new RdbHeaderReader();
    junk.write(Buffer.from('<html>not an rdb</html>'));
    assert.match(junk.problem ?? '', /not an RDB stream/);
  });

  test('the EOF mark is trimmed whatever the chunks, and only the bytes redis-cli counted pass', async () => {
    for (const sizes of [[1, 2, 100, 39, 40, 41, 3], [10, 30], [50], [40, 40], [4096, 1, 65_536]]) {
      for (const withMark of [true, false]) {
        const chunks = sizes.map((size) => randomBytes(size));
        const all = Buffer.concat(chunks);
        const payload = withMark ? all.length - 40 : all.length;
        const trimmer = new EofMarkTrimmer(async () => payload);
        const out = await buffer(Readable.from(chunks).pipe(trimmer));
        assert.ok(out.equals(all.subarray(0, payload)), `${sizes.join(',')} ${withMark ? 'with' : 'without'} the mark`);
        assert.equal(trimmer.bytes, payload);
      }
    }
    await assert.rejects(buffer(Readable.from([randomBytes(100)]).pipe(new EofMarkTrimmer(async () => 10))), /reports 10 bytes of RDB, but wrote 100/);
    await assert.rejects(buffer(Readable.from([randomBytes(100)]).pipe(new EofMarkTrimmer(async () => undefined))), /did not say how many bytes/);
  });

  test('the header is read from the zstd stream as it passes, which goes on untouched', async () => {
    // Several MiB after the header, in many chunks: the decoder stops once it has the header.
    const rdb = Buffer.concat([rdbStart, randomBytes(6 << 20)]);
    const compressed = await buffer(Readable.from([rdb]).pipe(createCompressor({ level: 1, threads: 2 })));
    const chunks = Array.from({ length: Math.ceil(compressed.length / 65_536) }, (_, i) => compressed.subarray(i * 65_536, (i + 1) * 65_536));
    const reader = new CompressedRdbHeaderReader();
    const passed = await buffer(Readable.from(chunks).pipe(reader));
    assert.ok(passed.equals(compressed), 'the compressed bytes pass unchanged');
    assert.equal(reader.header?.aux['redis-ver'], '7.0.15');
    // A stream shorter than a block: the header comes at the end.
    const short = new CompressedRdbHeaderReader();
    await buffer(Readable.from([await buffer(Readable.from([rdbStart]).pipe(createCompressor({ level: 3, threads: 0 })))]).pipe(short));
    assert.equal(short.header?.version, 10);
    const junk = new CompressedRdbHeaderReader();
    await buffer(Readable.from([await buffer(Readable.from([Buffer.from('<html>not an rdb</html>')]).pipe(createCompressor({ level: 3, threads: 0 })))]).pipe(junk));
    assert.match(junk.problem ?? '', /not an RDB stream/);
  });

  test('a producer writes straight into zstd, which says how many bytes it read', async () => {
    const compressor = createProducerCompressor({ level: 1, threads: 2 });
    const producer = await startExport({ argv: ['sh', '-c', 'head -c 3000123 /dev/urandom'], timeoutSeconds: 60 }, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, 'the producer', { stdoutTo: compressor.producerInput! });
    compressor.releaseInput();
    assert.equal(producer.stdout, null, 'nothing of the producer\'s output reaches this process');
    let stored = 0;
    await pipeline(compressor, new Writable({ write: (chunk: Buffer, _encoding, callback) => ((stored += chunk.length), callback()) }));
    assert.equal((await producer.done).exitCode, 0);
    assert.equal(compressor.inputBytes, 3_000_123);
    assert.ok(stored > 3_000_000, 'random bytes do not shrink');
  });

  test('redis-cli reports the RDB size on stderr, diskless or from disk', () => {
    assert.equal(payloadBytesReported("SYNC sent to master, writing bytes of bulk transfer until EOF marker to '-'\nTransfer finished with success after 678050 bytes"), 678_050);
    assert.equal(payloadBytesReported("SYNC sent to master, writing 35799587 bytes to '-'\nTransfer finished with success."), 35_799_587);
    assert.equal(payloadBytesReported("SYNC sent to master, writing 35799587 bytes to '-'\nI/O error"), undefined);
  });

  test('redis-check-rdb: keys, expires, and the error lines of a damaged file', () => {
    const ok = parseCheckOutput('[offset 0] Checking RDB file x\n[offset 172] \\o/ RDB looks OK! \\o/\n[info] 20003 keys read\n[info] 1 expires\n[info] 0 already expired\n');
    assert.deepEqual(ok, { ok: true, keys: 20_003, expires: 1, alreadyExpired: 0, problems: [] });
    const damaged = parseCheckOutput('--- RDB ERROR DETECTED ---\n[offset 999991] Unexpected EOF reading RDB file\n[additional info] While doing: read-key\n[info] 27944 keys read\n');
    assert.equal(damaged.ok, false);
    assert.equal(damaged.keys, 27_944);
    assert.ok(damaged.problems.some((line) => line.includes('Unexpected EOF')));
  });
});

describe('RESP and INFO', () => {
  test('replies of every type, split anywhere', () => {
    const wire = Buffer.from('+OK\r\n-NOPERM no\r\n:42\r\n$5\r\nab\r\nc\r\n$-1\r\n*2\r\n$3\r\ndir\r\n$4\r\n/tmp\r\n');
    const replies: unknown[] = [];
    let at = 0;
    for (;;) {
      const parsed = parseReply(wire, at);
      if (!parsed) break;
      replies.push(parsed.reply);
      at = parsed.next;
    }
    assert.equal(at, wire.length);
    assert.equal(replies[0], 'OK');
    assert.ok(replies[1] instanceof RedisErrorReply && replies[1].message === 'NOPERM no');
    assert.equal(replies[2], 42);
    assert.equal(String(replies[3]), 'ab\r\nc', 'bulk strings are binary-safe');
    assert.equal(replies[4], null);
    assert.deepEqual((replies[5] as Buffer[]).map(String), ['dir', '/tmp']);
    assert.equal(parseReply(wire.subarray(0, wire.length - 3), wire.indexOf('*2')), undefined, 'an incomplete array waits for more');
  });

  test('INFO keyspace adds every database up', () => {
    const totals = keyspaceTotals(new Map([['db0', 'keys=20002,expires=1,avg_ttl=0'], ['db1', 'keys=1,expires=0,avg_ttl=0'], ['redis_version', '7.0.15']]));
    assert.deepEqual(totals, { keys: 20_003, expires: 1, databases: { db0: 20_002, db1: 1 } });
  });
});

describe('a configured command', () => {
  test('its environment: PATH and the locale of the worker, env, and envFrom resolved; nothing else', () => {
    const worker = { PATH: '/usr/bin', LANG: 'C.UTF-8', AWS_SECRET_ACCESS_KEY: 'worker-secret', APP_TOKEN_SOURCE: 'token-value' };
    const env = commandEnvironment({ env: { MODE: 'export' }, envFrom: { TOKEN: 'APP_TOKEN_SOURCE' } }, worker, 'the backup command');
    assert.deepEqual(env, { PATH: '/usr/bin', LANG: 'C.UTF-8', MODE: 'export', TOKEN: 'token-value' });
    assert.throws(
      () => commandEnvironment({ envFrom: { TOKEN: 'UNSET_SOURCE' } }, worker, 'the backup command'),
      (error: unknown) => error instanceof LifeboatError && error.type === 'CredentialsUnavailable' && /UNSET_SOURCE \(envFrom\.TOKEN of the backup command\)/.test(error.message),
    );
  });

  test('argv is shown quoted where a word needs it, and drill placeholders name the scratch copy', () => {
    assert.equal(describeArgv(['sh', '-c', "echo 'hi' > out", 'x']), `sh -c 'echo '\\''hi'\\'' > out' x`);
    assert.deepEqual(withPlaceholders(['git', 'clone', '{payload}', '{scratch}/check.git'], { dir: '/s', payloadPath: '/s/repo.bundle' }), ['git', 'clone', '/s/repo.bundle', '/s/check.git']);
  });
});
