/**
 * One behavioural specification for every storage backend, run against a directory and against a
 * real S3 server (versitygw on loopback, started here; or the endpoint in LIFEBOAT_TEST_S3_*).
 * Anything the repository layer relies on belongs in describeBackendContract, so a new backend
 * only has to pass it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import type { S3RepositoryConfig } from '../../src/config/schema.js';
import { startS3Server, type S3Server } from '../../src/dev/s3-server.js';
import { LifeboatError, type ErrorType } from '../../src/errors.js';
import type { Backend } from '../../src/repository/backend.js';
import { openBackend } from '../../src/repository/open.js';

const MiB = 1024 * 1024;
const partSizeMiB = 5;

/** What the shared specification needs from each backend under test. */
interface Subject {
  backend: Backend;
  /**
   * Physical traces under keyPrefix that list/head/get must hide: temp files (fs), pending
   * multipart uploads (S3). Lets the spec prove a partial upload existed and was cleaned up.
   */
  hiddenLeftovers(keyPrefix: string): Promise<string[]>;
  /** Leaves what a put killed mid-way (SIGKILL, no cleanup) would leave for key. */
  leaveInterruptedPut(key: string): Promise<void>;
  /** Backend-specific proof of how a large object was stored (S3: as a multipart upload). */
  assertStoredLarge?(key: string, sizeBytes: number): Promise<void>;
}

function describeBackendContract(name: string, subject: () => Subject): void {
  describe(`${name} backend contract`, () => {
    /** Every test works under its own key prefix so tests cannot see each other's objects. */
    const scope = (): string => `spec-${randomUUID().slice(0, 8)}/`;

    it('returns an empty object as exactly zero bytes', async () => {
      const { backend } = subject();
      const key = `${scope()}empty`;
      const stored = await backend.put(key, Readable.from([]));
      assert.deepEqual(stored, { key, sizeBytes: 0 });
      assert.deepEqual(await backend.head(key), { key, sizeBytes: 0 });
      assert.equal((await readAll(await backend.get(key))).length, 0);
    });

    it('returns a small object byte for byte, whatever the chunking of the input', async () => {
      const { backend } = subject();
      const key = `${scope()}small.bin`;
      const bytes = randomBytes(10_000);
      const stored = await backend.put(key, Readable.from([bytes.subarray(0, 1), bytes.subarray(1, 4096), bytes.subarray(4096)]));
      assert.equal(stored.sizeBytes, bytes.length);
      assert.deepEqual(await readAll(await backend.get(key)), bytes);
    });

    it('returns a 40 MiB object with an identical sha256 and reports progress up to its full size', async () => {
      const { backend, assertStoredLarge } = subject();
      const key = `${scope()}large.bin`;
      const size = 40 * MiB;
      const source = randomSource(size);
      const progress: number[] = [];

      const stored = await backend.put(key, source.stream, { onProgress: (bytes) => progress.push(bytes) });

      assert.equal(stored.sizeBytes, size);
      assert.ok(progress.length > 0, 'onProgress was never called');
      assert.equal(progress.at(-1), size, 'the last progress report is the full size');
      assert.ok(
        progress.every((bytes, i) => i === 0 || bytes >= (progress[i - 1] ?? 0)),
        'progress never goes backwards',
      );
      assert.deepEqual(await backend.head(key), { key, sizeBytes: size });
      assert.equal(await sha256(await backend.get(key)), source.sha256());
      await assertStoredLarge?.(key, size);
    });

    it('replaces the content when a key is written again', async () => {
      const { backend } = subject();
      const key = `${scope()}overwritten`;
      await backend.put(key, Readable.from([Buffer.from('first version, longer than the second')]));
      await backend.put(key, Readable.from([Buffer.from('second')]));
      assert.equal((await readAll(await backend.get(key))).toString(), 'second');
      assert.deepEqual(await backend.head(key), { key, sizeBytes: 6 });
    });

    it('answers head of a missing key with undefined', async () => {
      const { backend } = subject();
      assert.equal(await backend.head(`${scope()}missing`), undefined);
    });

    it('rejects get of a missing key with LifeboatError ObjectNotFound', async () => {
      const { backend } = subject();
      const key = `${scope()}missing`;
      await assert.rejects(backend.get(key), lifeboatError('ObjectNotFound', key));
    });

    it('lists one folder level: the objects in it and the names of its sub-folders, not what lies below them', async () => {
      const { backend } = subject();
      const base = scope();
      for (const [key, size] of [
        ['t/backups/b2/manifest.json', 2],
        ['t/backups/b1/part-0001', 3],
        ['t/backups/b1/part-0002', 3],
        ['t/backups/b1/manifest.json', 2],
        ['t/backups/index', 1],
        ['t/wal/000000010000000000000001.zst', 4],
      ] as const) {
        await backend.put(base + key, Readable.from([Buffer.alloc(size, 1)]));
      }
      assert.deepEqual(await backend.listFolder(`${base}t/backups/`), { objects: [{ key: `${base}t/backups/index`, sizeBytes: 1 }], folders: ['b1', 'b2'] });
      assert.deepEqual(await backend.listFolder(`${base}t/`), { objects: [], folders: ['backups', 'wal'] });
      assert.deepEqual((await backend.listFolder(`${base}t/backups/b1/`)).objects.map((o) => o.key), [
        `${base}t/backups/b1/manifest.json`,
        `${base}t/backups/b1/part-0001`,
        `${base}t/backups/b1/part-0002`,
      ]);
      assert.deepEqual(await backend.listFolder(`${base}nothing-here/`), { objects: [], folders: [] });
      await assert.rejects(backend.listFolder(`${base}t/backups`), lifeboatError('InvalidInput', 'must end in'));
    });

    it('lists exactly the keys under a prefix, sorted by key, with their sizes', async () => {
      const { backend } = subject();
      const base = scope();
      // Written out of order; "a-1" sorts before "a/1" because "-" < "/".
      for (const [key, size] of [
        ['p/b', 2],
        ['p/a/2', 3],
        ['p/a-1', 1],
        ['p/a/1', 4],
        ['p2/x', 5],
        ['q/y', 6],
      ] as const) {
        await backend.put(base + key, Readable.from([Buffer.alloc(size, 1)]));
      }

      assert.deepEqual(await backend.list(`${base}p/`), [
        { key: `${base}p/a-1`, sizeBytes: 1 },
        { key: `${base}p/a/1`, sizeBytes: 4 },
        { key: `${base}p/a/2`, sizeBytes: 3 },
        { key: `${base}p/b`, sizeBytes: 2 },
      ]);
      assert.deepEqual(
        (await backend.list(`${base}p`)).map((o) => o.key),
        [`${base}p/a-1`, `${base}p/a/1`, `${base}p/a/2`, `${base}p/b`, `${base}p2/x`],
        'a prefix need not end at a "/"',
      );
      assert.deepEqual(await backend.list(`${base}nothing-here/`), []);
    });

    it('hides an upload in progress from list and head until it completes', async () => {
      const { backend, hiddenLeftovers } = subject();
      const base = scope();
      const key = `${base}in-progress.bin`;
      const body = new PassThrough();
      let done = 0;
      const putting = backend.put(key, body, { onProgress: (bytes) => (done = bytes) });
      body.write(randomBytes(6 * MiB));
      await until(() => done >= 5 * MiB, 'the first 5 MiB to be accepted');

      assert.ok((await hiddenLeftovers(base)).length > 0, 'a partial upload exists while the put runs');
      assert.deepEqual(await backend.list(base), []);
      assert.equal(await backend.head(key), undefined);

      body.end(randomBytes(MiB));
      await putting;
      assert.deepEqual(await backend.list(base), [{ key, sizeBytes: 7 * MiB }]);
      assert.deepEqual(await hiddenLeftovers(base), []);
    });

    it('leaves nothing behind when a put is aborted midway', async () => {
      const { backend, hiddenLeftovers } = subject();
      const base = scope();
      const key = `${base}aborted.bin`;
      const body = new PassThrough();
      const controller = new AbortController();
      let done = 0;
      const putting = backend.put(key, body, { signal: controller.signal, onProgress: (bytes) => (done = bytes) });
      body.write(randomBytes(6 * MiB));
      await until(() => done >= 5 * MiB, 'the first 5 MiB to be accepted');
      assert.ok((await hiddenLeftovers(base)).length > 0, 'a partial upload exists before the abort');

      controller.abort();

      await assert.rejects(putting, (error: Error) => error.name === 'AbortError');
      assert.ok(body.destroyed, 'the body stream is destroyed, like stream.pipeline does');
      assert.equal(await backend.head(key), undefined);
      assert.deepEqual(await backend.list(base), []);
      assert.deepEqual(await hiddenLeftovers(base), [], 'no temp file or pending multipart upload remains');
    });

    it('discards what a put killed mid-way left behind, and only under the given prefix', async () => {
      const { backend, hiddenLeftovers, leaveInterruptedPut } = subject();
      const base = scope();
      const other = scope();
      await leaveInterruptedPut(`${base}backups/1/payload`);
      await leaveInterruptedPut(`${other}payload`);
      await backend.put(`${base}backups/1/kept`, Readable.from([Buffer.from('x')]));

      assert.equal(await backend.discardIncomplete(base), 1);
      assert.deepEqual(await hiddenLeftovers(base), []);
      assert.equal((await hiddenLeftovers(other)).length, 1, 'other prefixes are left alone');
      assert.deepEqual(await backend.list(base), [{ key: `${base}backups/1/kept`, sizeBytes: 1 }]);
      assert.equal(await backend.discardIncomplete(base), 0, 'idempotent');
    });

    it('stores nothing when the signal is already aborted', async () => {
      const { backend } = subject();
      const key = `${scope()}never`;
      await assert.rejects(
        backend.put(key, Readable.from([Buffer.from('x')]), { signal: AbortSignal.abort() }),
        (error: Error) => error.name === 'AbortError',
      );
      assert.equal(await backend.head(key), undefined);
    });

    it('deletes an object, and deleting a missing one is not an error', async () => {
      const { backend } = subject();
      const base = scope();
      await backend.put(`${base}doomed`, Readable.from([Buffer.from('x')]));
      await backend.put(`${base}kept`, Readable.from([Buffer.from('y')]));

      await backend.delete(`${base}doomed`);
      await backend.delete(`${base}doomed`);
      await backend.delete(`${base}never-existed`);

      assert.equal(await backend.head(`${base}doomed`), undefined);
      assert.deepEqual(await backend.list(base), [{ key: `${base}kept`, sizeBytes: 1 }]);
    });

    it('rejects keys that are not relative "/"-separated paths with InvalidInput', async () => {
      const { backend } = subject();
      for (const key of ['../x', 'a/../../x', '/etc/passwd', '', 'a//b', 'a/./b', 'a/']) {
        await assert.rejects(backend.put(key, Readable.from([Buffer.from('x')])), lifeboatError('InvalidInput'), key);
        await assert.rejects(backend.get(key), lifeboatError('InvalidInput'), key);
        await assert.rejects(backend.head(key), lifeboatError('InvalidInput'), key);
        await assert.rejects(backend.delete(key), lifeboatError('InvalidInput'), key);
      }
      await assert.rejects(backend.list('../'), lifeboatError('InvalidInput'));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// fs

/** Undone in reverse order after all tests: stop the server before deleting its directory. */
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const tempRoot = await mkdtemp(join(tmpdir(), 'lifeboat-backends-'));
cleanups.push(() => rm(tempRoot, { recursive: true, force: true }));

const fsRoot = join(tempRoot, 'fs-repo', 'nested'); // does not exist yet: put creates it
const fsBackend = openBackend({ type: 'fs', path: fsRoot });

describeBackendContract('fs', () => ({
  backend: fsBackend,
  hiddenLeftovers: async (keyPrefix) =>
    (await filesUnder(join(fsRoot, keyPrefix))).filter((name) => /\.tmp-[0-9a-f]{16}$/.test(name)),
  leaveInterruptedPut: async (key) => {
    const path = join(fsRoot, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(join(dirname(path), `.${basename(path)}.tmp-0123456789abcdef`), randomBytes(1000));
  },
}));

describe('fs backend', () => {
  it('never touches files outside its root, even for keys with ".."', async () => {
    await assert.rejects(fsBackend.put('../escaped', Readable.from([Buffer.from('x')])), lifeboatError('InvalidInput'));
    assert.equal(existsSync(join(dirname(fsRoot), 'escaped')), false);
  });

  it('ignores temp files left behind by a crashed put', async () => {
    await fsBackend.put('crash/real', Readable.from([Buffer.from('x')]));
    await writeFile(join(fsRoot, 'crash', '.real.tmp-0123456789abcdef'), 'half written');
    assert.deepEqual(await fsBackend.list('crash/'), [{ key: 'crash/real', sizeBytes: 1 }]);
    await assert.rejects(fsBackend.head('crash/.real.tmp-0123456789abcdef'), lifeboatError('InvalidInput'));
  });

  it('reports ObjectConflict when a key would also have to be a folder', async () => {
    await fsBackend.put('conflict/a', Readable.from([Buffer.from('x')]));
    await assert.rejects(fsBackend.put('conflict/a/b', Readable.from([Buffer.from('y')])), lifeboatError('ObjectConflict'));
  });

  it('removes folders emptied by delete, so their name can become a key', async () => {
    await fsBackend.put('prune/a/b/c', Readable.from([Buffer.from('x')]));
    await fsBackend.delete('prune/a/b/c');
    assert.equal(existsSync(join(fsRoot, 'prune')), false);
    await fsBackend.put('prune/a', Readable.from([Buffer.from('y')]));
    assert.deepEqual(await fsBackend.list('prune/'), [{ key: 'prune/a', sizeBytes: 1 }]);
  });

  it('lists nothing (rather than failing) before the first put created the root', async () => {
    const fresh = openBackend({ type: 'fs', path: join(tempRoot, 'not-created-yet') });
    assert.deepEqual(await fresh.list(''), []);
    assert.equal(await fresh.head('x'), undefined);
  });
});

// ---------------------------------------------------------------------------------------------
// S3

interface S3Target {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Every object of this run lives under it; on a shared endpoint it keeps runs apart. */
  prefix: string;
}

const s3Target = await resolveS3Target();
const s3Env = { TEST_S3_KEY_ID: s3Target.accessKeyId, TEST_S3_SECRET: s3Target.secretAccessKey };
const s3Config = (overrides: Partial<S3RepositoryConfig> = {}): S3RepositoryConfig => ({
  type: 's3',
  endpoint: s3Target.endpoint,
  bucket: s3Target.bucket,
  prefix: s3Target.prefix,
  region: 'us-east-1',
  forcePathStyle: true,
  accessKeyIdEnv: 'TEST_S3_KEY_ID',
  secretAccessKeyEnv: 'TEST_S3_SECRET',
  partSizeMiB,
  ...overrides,
});
const s3Backend = openBackend(s3Config(), s3Env);
/** A plain SDK client, to look behind the backend (ETags, pending multipart uploads). */
const rawS3 = new S3Client({
  endpoint: s3Target.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: s3Target.accessKeyId, secretAccessKey: s3Target.secretAccessKey },
});
cleanups.push(async () => {
  // On a shared endpoint, clean up our prefix; a local server's data goes with tempRoot.
  if (process.env.LIFEBOAT_TEST_S3_ENDPOINT) {
    for (const { key } of await s3Backend.list('')) await s3Backend.delete(key);
  }
  rawS3.destroy();
});

describeBackendContract('s3', () => ({
  backend: s3Backend,
  hiddenLeftovers: async (keyPrefix) => {
    const response = await rawS3.send(
      new ListMultipartUploadsCommand({ Bucket: s3Target.bucket, Prefix: s3Target.prefix + keyPrefix }),
    );
    return (response.Uploads ?? []).map((upload) => `${upload.Key} (upload ${upload.UploadId})`);
  },
  leaveInterruptedPut: async (key) => {
    const upload = await rawS3.send(new CreateMultipartUploadCommand({ Bucket: s3Target.bucket, Key: s3Target.prefix + key }));
    await rawS3.send(new UploadPartCommand({ Bucket: s3Target.bucket, Key: s3Target.prefix + key, UploadId: upload.UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }));
  },
  assertStoredLarge: async (key, sizeBytes) => {
    const head = await rawS3.send(new HeadObjectCommand({ Bucket: s3Target.bucket, Key: s3Target.prefix + key }));
    const parts = Math.ceil(sizeBytes / (partSizeMiB * MiB));
    assert.match(head.ETag ?? '', new RegExp(`-${parts}"?$`), `a multipart ETag ends in "-${parts}"`);
  },
}));

describe('s3 backend', () => {
  it('stores objects under the configured prefix', async () => {
    await s3Backend.put('prefixed/object', Readable.from([Buffer.from('x')]));
    const head = await rawS3.send(
      new HeadObjectCommand({ Bucket: s3Target.bucket, Key: `${s3Target.prefix}prefixed/object` }),
    );
    assert.equal(head.ContentLength, 1);
    assert.ok(s3Backend.location.startsWith(`s3://${s3Target.bucket}/`), s3Backend.location);
  });

  it('lists every key when the listing spans more than one page of 1000', async () => {
    const keys = Array.from({ length: 1005 }, (_, i) => `paged/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(keys.slice(i, i + 32).map((key) => s3Backend.put(key, Readable.from([Buffer.from(key)]))));
    }
    const listed = await s3Backend.list('paged/');
    assert.equal(listed.length, keys.length);
    assert.deepEqual(
      listed.map((o) => o.key),
      keys,
    );
  });

  it('rejects a wrong secret with CredentialsUnavailable naming bucket and endpoint, never the secret', async () => {
    const wrongSecret = `wrong-${randomUUID()}`;
    const backend = openBackend(s3Config(), { ...s3Env, TEST_S3_SECRET: wrongSecret });
    const attempts: [string, () => Promise<unknown>][] = [
      ['head', () => backend.head('anything')], // HEAD errors carry no code: must not look like "missing"
      ['list', () => backend.list('')],
      ['get', () => backend.get('anything')],
      ['put', () => backend.put('anything', Readable.from([Buffer.from('x')]))],
      ['delete', () => backend.delete('anything')],
    ];
    for (const [operation, attempt] of attempts) {
      const error = await attempt().then(
        () => assert.fail(`${operation} with a wrong secret succeeded`),
        (caught: unknown) => caught,
      );
      assert.ok(error instanceof LifeboatError, `${operation}: ${String(error)}`);
      assert.equal(error.type, 'CredentialsUnavailable', `${operation}: ${error.message}`);
      assert.match(error.message, new RegExp(s3Target.bucket), operation);
      assert.match(error.message, /TEST_S3_KEY_ID/, `${operation}: the message names the variables to check`);
      assert.ok(!inspect(error, { depth: 10 }).includes(wrongSecret), `${operation}: the secret leaked`);
    }
    assert.ok(!backend.location.includes(wrongSecret));
  });

  it('rejects an unknown access key id with CredentialsUnavailable, also on head', async () => {
    const backend = openBackend(s3Config(), { ...s3Env, TEST_S3_KEY_ID: `NOSUCHKEY${randomUUID().slice(0, 8).toUpperCase()}` });
    await assert.rejects(backend.head('anything'), lifeboatError('CredentialsUnavailable'));
    await assert.rejects(backend.list(''), lifeboatError('CredentialsUnavailable'));
  });

  it('fails to open with CredentialsUnavailable naming the variable when it is unset or empty', () => {
    assert.throws(() => openBackend(s3Config(), { TEST_S3_KEY_ID: 'id' }), (error: unknown) => {
      assert.ok(error instanceof LifeboatError && error.type === 'CredentialsUnavailable');
      assert.match(error.message, /TEST_S3_SECRET.*not set/);
      return true;
    });
    assert.throws(
      () => openBackend(s3Config(), { TEST_S3_KEY_ID: '', TEST_S3_SECRET: 's' }),
      lifeboatError('CredentialsUnavailable', 'TEST_S3_KEY_ID'),
    );
  });

  it('reports a missing bucket as InvalidConfig naming the bucket, also on head', async () => {
    const bucket = `lifeboat-missing-${randomUUID().slice(0, 8)}`;
    const backend = openBackend(s3Config({ bucket }), s3Env);
    await assert.rejects(backend.head('anything'), lifeboatError('InvalidConfig', bucket));
    await assert.rejects(backend.list(''), lifeboatError('InvalidConfig', bucket));
    await assert.rejects(backend.put('x', Readable.from([Buffer.from('x')])), lifeboatError('InvalidConfig', bucket));
  });

  it('storageClass: payload puts (single and multipart) ask for the class, every other object stays in the default class', async () => {
    // A recording proxy on loopback in front of the server: what the requests carry, whatever the server keeps.
    const upstream = new URL(s3Target.endpoint);
    const asked: Array<{ method: string; path: string; storageClass: string | undefined }> = [];
    const proxy = createHttpServer((request, response) => {
      asked.push({ method: request.method ?? '?', path: request.url ?? '', storageClass: request.headers['x-amz-storage-class'] as string | undefined });
      const forwarded = httpRequest({ host: upstream.hostname, port: upstream.port, path: request.url, method: request.method, headers: request.headers }, (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      });
      forwarded.on('error', () => response.destroy());
      request.pipe(forwarded);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = proxy.address() as { port: number };
      const backend = openBackend(s3Config({ endpoint: `http://127.0.0.1:${port}`, storageClass: 'STANDARD_IA' }), s3Env);
      await backend.put('classes/payload-small', Readable.from([randomBytes(1024)]), { payload: true });
      await backend.put('classes/payload-large', Readable.from([randomBytes((partSizeMiB + 1) * MiB)]), { payload: true });
      await backend.put('classes/manifest.json', Readable.from([Buffer.from('{}')]));
      const uploads = asked.filter((a) => (a.method === 'PUT' && !a.path.includes('partNumber')) || (a.method === 'POST' && a.path.includes('uploads')));
      const classOf = (name: string) => uploads.filter((a) => a.path.includes(`classes/${name}`)).map((a) => a.storageClass);
      assert.deepEqual(classOf('payload-small'), ['STANDARD_IA'], 'a single PUT carries x-amz-storage-class');
      assert.deepEqual(classOf('payload-large'), ['STANDARD_IA'], 'CreateMultipartUpload carries it');
      assert.deepEqual(classOf('manifest.json'), [undefined], 'a manifest is stored in the default class');
      // What the server keeps is the server's business (versitygw's posix backend answers STANDARD for every object): printed, not assumed.
      const head = await rawS3.send(new HeadObjectCommand({ Bucket: s3Target.bucket, Key: `${s3Target.prefix}classes/payload-small` }));
      const manifestHead = await rawS3.send(new HeadObjectCommand({ Bucket: s3Target.bucket, Key: `${s3Target.prefix}classes/manifest.json` }));
      assert.ok([undefined, 'STANDARD', 'STANDARD_IA'].includes(head.StorageClass), `HEAD says ${head.StorageClass}`);
      assert.ok(manifestHead.StorageClass === undefined || manifestHead.StorageClass === 'STANDARD', `HEAD says ${manifestHead.StorageClass}`);
      process.stderr.write(`storageClass: the server reports ${head.StorageClass ?? 'no class'} for a payload and ${manifestHead.StorageClass ?? 'no class'} for a manifest\n`);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

describe('dev S3 server', () => {
  it('keeps buckets and objects across a restart on the same dataDir, without secrets in argv', async () => {
    const dataDir = join(tempRoot, 'restart');
    const credentials = { accessKeyId: 'restart-test', secretAccessKey: randomBytes(16).toString('hex') };
    const env = { TEST_S3_KEY_ID: credentials.accessKeyId, TEST_S3_SECRET: credentials.secretAccessKey };
    const open = (endpoint: string): Backend =>
      openBackend({ ...s3Config(), endpoint, bucket: 'kept', prefix: '' }, env);

    const first = await startS3Server({ dataDir, ...credentials, buckets: ['kept'] });
    try {
      const argv = await readFile(`/proc/${first.pid}/cmdline`, 'utf8');
      assert.ok(!argv.includes(credentials.secretAccessKey), 'the secret is not visible in ps');
      await open(first.endpoint).put('survivor', Readable.from([Buffer.from('still here')]));
    } finally {
      await first.stop();
    }

    const second = await startS3Server({ dataDir, ...credentials, buckets: ['kept', 'added'] });
    try {
      assert.equal((await readAll(await open(second.endpoint).get('survivor'))).toString(), 'still here');
      assert.deepEqual((await readdir(join(dataDir, 'buckets'))).sort(), ['added', 'kept'], 'only buckets in the posix root');
    } finally {
      await second.stop();
      await second.stop(); // idempotent
    }
  });

  it('fails with the server log when the requested port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((listening) => blocker.listen(0, '127.0.0.1', listening));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      await assert.rejects(
        startS3Server({ dataDir: join(tempRoot, 'taken'), port, accessKeyId: 'k', secretAccessKey: 's', buckets: [] }),
        /before listening on 127\.0\.0\.1:\d+; see .*versitygw\.log/s,
      );
    } finally {
      blocker.close();
    }
  });
});

/** The endpoint from LIFEBOAT_TEST_S3_*, or a versitygw of our own on a free loopback port. */
async function resolveS3Target(): Promise<S3Target> {
  const env = process.env;
  const runPrefix = `lifeboat-test-${randomUUID().slice(0, 8)}/`;
  if (env.LIFEBOAT_TEST_S3_ENDPOINT) {
    const missing = [
      'LIFEBOAT_TEST_S3_BUCKET',
      'LIFEBOAT_TEST_S3_ACCESS_KEY_ID',
      'LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY',
    ].filter((name) => !env[name]);
    if (missing.length > 0) throw new Error(`LIFEBOAT_TEST_S3_ENDPOINT is set but ${missing.join(', ')} is not`);
    return {
      endpoint: env.LIFEBOAT_TEST_S3_ENDPOINT,
      bucket: env.LIFEBOAT_TEST_S3_BUCKET ?? '',
      accessKeyId: env.LIFEBOAT_TEST_S3_ACCESS_KEY_ID ?? '',
      secretAccessKey: env.LIFEBOAT_TEST_S3_SECRET_ACCESS_KEY ?? '',
      prefix: runPrefix,
    };
  }
  const target = {
    bucket: 'lifeboat-test',
    accessKeyId: 'lifeboat-test',
    secretAccessKey: randomBytes(16).toString('hex'),
    prefix: runPrefix,
  };
  const server: S3Server = await startS3Server({
    dataDir: join(tempRoot, 's3'),
    accessKeyId: target.accessKeyId,
    secretAccessKey: target.secretAccessKey,
    buckets: [target.bucket],
  });
  cleanups.push(() => server.stop());
  return { ...target, endpoint: server.endpoint };
}

// ---------------------------------------------------------------------------------------------
// helpers

function lifeboatError(type: ErrorType, mentions?: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof LifeboatError, `expected LifeboatError ${type}, got ${inspect(error)}`);
    assert.equal(error.type, type, error.message);
    if (mentions !== undefined) assert.ok(error.message.includes(mentions), `"${error.message}" mentions ${mentions}`);
    return true;
  };
}

/** A stream of `size` random bytes in 1 MiB chunks, hashing what it hands out. */
function randomSource(size: number): { stream: Readable; sha256(): string } {
  const hash = createHash('sha256');
  function* chunks(): Generator<Buffer> {
    for (let offset = 0; offset < size; offset += MiB) {
      const chunk = randomBytes(Math.min(MiB, size - offset));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), sha256: () => hash.digest('hex') };
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 10));
  }
}

/** Names of all files (not directories) below dir, at any depth; [] when dir does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
}
