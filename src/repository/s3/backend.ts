import type { S3Client, S3ClientConfig, StorageClass } from '@aws-sdk/client-s3';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3RepositoryConfig } from '../../config/schema.js';
import { LifeboatError } from '../../errors.js';
import { abortError, assertValidFolder, assertValidKey, assertValidPrefix, isAbortError, sortByKey, type Backend, type FolderListing, type ObjectInfo, type PutOptions } from '../backend.js';

/** Error codes meaning the key pair itself is wrong (unknown key id, wrong secret, expired token). */
const badCredentialCodes = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'XAdminUserNotFound', // versitygw's answer to an unknown access key id
]);
/** The key pair is valid but not allowed to do this. */
const deniedCodes = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem']);
/** The bucket, region or endpoint in the config is wrong. */
const wrongLocationCodes = new Set([
  'NoSuchBucket',
  'InvalidBucketName',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'IllegalLocationConstraintException',
]);
/** Servers that map keys to files refuse "a" next to "a/b" (versitygw, MinIO). */
const prefixConflictCodes = new Set(['ExistingObjectIsDirectory', 'ObjectParentIsFile', 'XMinioParentIsObject']);

/**
 * A repository in an S3 bucket (AWS or any S3-compatible server), under an optional key prefix.
 *
 * Credentials come from the environment variables NAMED in the config and are read once, here;
 * their values never appear in location, messages or logs. Permanent configuration problems
 * (bad key pair, missing bucket, wrong region) become typed LifeboatErrors so that Temporal does
 * not retry them; everything else (network, 5xx, throttling) stays a plain Error and is retried.
 */
/** S3 allows 10,000 parts; keep a margin for a size hint that is a little off. */
const maxParts = 9_000;
const MiB = 1024 * 1024;

/**
 * The configured part size (small parts keep the worker's memory low: about three parts are
 * buffered at a time), grown in whole MiB when the body could otherwise need too many parts.
 */
export function partSizeFor(configuredBytes: number, maxSizeBytes: number | undefined): number {
  if (maxSizeBytes === undefined) return configuredBytes;
  return Math.max(configuredBytes, Math.ceil(maxSizeBytes / maxParts / MiB) * MiB);
}

/**
 * The AWS SDK, loaded on first use rather than with this module: `lifeboat wal-push` runs once per
 * WAL segment, and into an fs repository it would otherwise pay for loading the SDK (~150 ms of a
 * ~1 s process) without ever using it.
 */
type AwsSdk = typeof import('@aws-sdk/client-s3') & Pick<typeof import('@aws-sdk/lib-storage'), 'Upload'>;
let awsSdk: Promise<AwsSdk> | undefined;
/** Set once loaded: an error can only be one of the SDK's exceptions if the SDK was loaded. */
let loadedAwsSdk: AwsSdk | undefined;

function loadAwsSdk(): Promise<AwsSdk> {
  awsSdk ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(([s3, storage]) => (loadedAwsSdk = { ...s3, Upload: storage.Upload }));
  return awsSdk;
}

export class S3Backend implements Backend {
  readonly location: string;
  private readonly clientConfig: S3ClientConfig;
  /** Created on first use (see loadAwsSdk). */
  private clientWithSdk: Promise<{ client: S3Client; aws: AwsSdk }> | undefined;
  private readonly bucket: string;
  /** config.prefix normalised to "" or "something/". */
  private readonly keyPrefix: string;
  private readonly partSizeBytes: number;
  /** The storage class of payload objects (PutOptions.payload); undefined: the bucket's default (STANDARD). */
  private readonly payloadStorageClass: string | undefined;
  private readonly credentialEnvNames: string;
  private readonly endpointLabel: string;
  /** Scrubs the secret from text; a closure so that inspecting the backend cannot reveal it. */
  private readonly redact: (text: string) => string;
  /** Set once a LIST succeeded: bucket exists and the key pair works (see confirmAccess). */
  private accessConfirmed = false;

  constructor(config: S3RepositoryConfig, env: NodeJS.ProcessEnv = process.env) {
    const accessKeyId = readCredential(env, config.accessKeyIdEnv, 'access key id', config.bucket);
    const secretAccessKey = readCredential(env, config.secretAccessKeyEnv, 'secret access key', config.bucket);
    this.redact = (text) => text.split(secretAccessKey).join('<redacted>');

    this.bucket = config.bucket;
    const trimmed = config.prefix.replace(/^\/+|\/+$/g, '');
    this.keyPrefix = trimmed === '' ? '' : `${trimmed}/`;
    this.partSizeBytes = config.partSizeMiB * 1024 * 1024;
    this.payloadStorageClass = config.storageClass === 'STANDARD' ? undefined : config.storageClass;
    this.credentialEnvNames = `$${config.accessKeyIdEnv}/$${config.secretAccessKeyEnv}`;
    this.endpointLabel = config.endpoint ? displayEndpoint(config.endpoint) : `AWS S3 (${config.region})`;
    this.location =
      `s3://${this.bucket}${trimmed === '' ? '' : `/${trimmed}`}` + (config.endpoint ? ` at ${this.endpointLabel}` : '');

    this.clientConfig = {
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials: { accessKeyId, secretAccessKey },
      // Only compute/validate the new flexible checksums when an API requires them: many
      // S3-compatible servers reject or mishandle them, and Lifeboat verifies sha256 itself.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
  }

  /** The client (one per backend), with the SDK it came from. */
  private s3(): Promise<{ client: S3Client; aws: AwsSdk }> {
    this.clientWithSdk ??= loadAwsSdk().then((aws) => ({ client: new aws.S3Client(this.clientConfig), aws }));
    return this.clientWithSdk;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const { signal, onProgress } = options;
    const objectKey = this.objectKey(key);
    const partSize = partSizeFor(this.partSizeBytes, options.maxSizeBytes);
    const { client, aws } = await this.s3().catch((error: unknown) => {
      body.destroy();
      throw error;
    });
    if (signal?.aborted) {
      body.destroy();
      throw abortError(`put of "${key}" into ${this.location}`, signal);
    }

    // Count what we hand to the uploader; the pipeline also destroys the body on abort, which
    // makes the uploader stop reading and abort its multipart upload before done() settles.
    // (Upload's own abort() would settle done() at once while parts are still in flight.)
    let sizeBytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        sizeBytes += chunk.length;
        done(null, chunk);
      },
    });
    const piping = signal ? pipeline(body, counted, { signal }) : pipeline(body, counted);
    piping.catch(() => undefined); // its failures reach us through the uploader reading `counted`

    const upload = new aws.Upload({
      client,
      params: {
        Bucket: this.bucket,
        Key: objectKey,
        Body: counted,
        ContentType: 'application/octet-stream',
        ...(options.payload && this.payloadStorageClass ? { StorageClass: this.payloadStorageClass as StorageClass } : {}),
      },
      partSize,
      // Two parts in flight keep a loopback or LAN link busy (4 measured no faster) and bound the
      // buffered parts to about 3 x partSize of worker memory.
      queueSize: 2,
      leavePartsOnError: false, // abort the multipart upload on failure: no orphaned parts to pay for
    });
    let reported = 0;
    upload.on('httpUploadProgress', ({ loaded }) => {
      if (loaded !== undefined && loaded > reported) {
        reported = loaded;
        onProgress?.(loaded);
      }
    });

    try {
      await upload.done();
    } catch (error) {
      counted.destroy(); // stop the producer (and release whatever feeds the body)
      if (signal?.aborted) throw abortError(`put of "${key}" into ${this.location}`, signal);
      throw this.translate(error, `put "${key}"`);
    }
    this.accessConfirmed = true;
    return { key, sizeBytes };
  }

  async get(key: string): Promise<Readable> {
    const objectKey = this.objectKey(key);
    try {
      const { client, aws } = await this.s3();
      const response = await client.send(new aws.GetObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      if (response.Body === undefined) return Readable.from([]);
      if (!(response.Body instanceof Readable)) {
        throw new Error(`S3 returned a body of an unexpected type for "${key}" in ${this.location}`);
      }
      return response.Body;
    } catch (error) {
      if (errorCode(error) === 'NoSuchKey') throw this.notFound(key, error);
      throw this.translate(error, `get "${key}"`);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const { client, aws } = await this.s3();
      const response = await client.send(new aws.HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return { key, sizeBytes: response.ContentLength ?? 0 };
    } catch (error) {
      // HEAD responses have no body, so the server cannot say WHY: a 404 may also mean "no such
      // bucket" or (versitygw) "unknown access key", and a 403 may be a wrong secret. A LIST does
      // carry the reason, so ask once before trusting a 404 or reporting a failure.
      await this.confirmAccess();
      if (statusOf(error) === 404 && isBodylessCode(errorCode(error))) return undefined;
      throw this.translate(error, `head "${key}"`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    const { client, aws } = await this.s3();
    const found: ObjectInfo[] = [];
    let continuationToken: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new aws.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            ...(continuationToken ? { ContinuationToken: continuationToken } : {}),
          }),
        );
      } catch (error) {
        throw this.translate(error, `list "${prefix}"`);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.keyPrefix)) continue;
        const key = object.Key.slice(this.keyPrefix.length);
        // "folder/" markers made by consoles and other tools are not objects Lifeboat wrote.
        if (key === '' || key.endsWith('/')) continue;
        found.push({ key, sizeBytes: object.Size ?? 0 });
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    this.accessConfirmed = true;
    // S3 already returns UTF-8 byte order; sorting again costs little and protects the contract
    // against servers that do not.
    return sortByKey(found);
  }

  async listFolder(folder: string): Promise<FolderListing> {
    assertValidFolder(folder);
    const { client, aws } = await this.s3();
    const prefix = this.keyPrefix + folder;
    const objects: ObjectInfo[] = [];
    const folders: string[] = [];
    let continuationToken: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new aws.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            Delimiter: '/',
            ...(continuationToken ? { ContinuationToken: continuationToken } : {}),
          }),
        );
      } catch (error) {
        throw this.translate(error, `list "${folder}"`);
      }
      for (const common of page.CommonPrefixes ?? []) {
        const name = common.Prefix?.startsWith(prefix) ? common.Prefix.slice(prefix.length, -1) : '';
        if (name !== '') folders.push(name);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(prefix)) continue;
        const key = object.Key.slice(this.keyPrefix.length);
        if (key === folder || key.endsWith('/')) continue; // folder markers made by other tools
        objects.push({ key, sizeBytes: object.Size ?? 0 });
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    this.accessConfirmed = true;
    return { objects: sortByKey(objects), folders: sortByKey(folders.map((name) => ({ key: name }))).map(({ key }) => key) };
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      const { client, aws } = await this.s3();
      await client.send(new aws.DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    } catch (error) {
      // S3 answers 204 for a missing key; some compatible servers answer NoSuchKey instead.
      if (errorCode(error) === 'NoSuchKey') return;
      throw this.translate(error, `delete "${key}"`);
    }
  }

  async discardIncomplete(prefix: string): Promise<number> {
    assertValidPrefix(prefix);
    const { client, aws } = await this.s3();
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new aws.ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        );
      } catch (error) {
        throw this.translate(error, `list unfinished uploads under "${prefix}"`);
      }
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        await client.send(new aws.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId })).catch(() => undefined);
        aborted++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  private objectKey(key: string): string {
    assertValidKey(key);
    return this.keyPrefix + key;
  }

  /**
   * One LIST per backend instance, only after a HEAD failed: it either proves that the bucket
   * exists and the key pair works, or throws the typed reason (or a retryable error if the
   * server could not be asked, so that a 404 is never trusted unconfirmed).
   */
  private async confirmAccess(): Promise<void> {
    if (this.accessConfirmed) return;
    try {
      const { client, aws } = await this.s3();
      await client.send(new aws.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keyPrefix, MaxKeys: 1 }));
    } catch (error) {
      throw this.translate(error, 'list');
    }
    this.accessConfirmed = true;
  }

  private notFound(key: string, cause: unknown): LifeboatError {
    return new LifeboatError(
      'ObjectNotFound',
      `no object "${key}" in ${this.location}`,
      'Check the bucket and prefix in the repository config and that the backup was not pruned or moved',
      { cause },
    );
  }

  /** Maps an SDK failure to a typed error when it is permanent, else adds context and keeps it retryable. */
  private translate(error: unknown, action: string): Error {
    if (error instanceof LifeboatError) return error;
    const code = errorCode(error);
    const status = statusOf(error);
    const detail = this.redact(describeSdkError(error));

    if (code !== undefined && badCredentialCodes.has(code)) {
      return new LifeboatError(
        'CredentialsUnavailable',
        `S3 rejected the credentials for bucket "${this.bucket}" at ${this.endpointLabel} (${detail})`,
        `Check that ${this.credentialEnvNames} hold a valid access key id and its matching secret for this endpoint`,
        { cause: error },
      );
    }
    if ((code !== undefined && deniedCodes.has(code)) || (status === 403 && isBodylessCode(code))) {
      return new LifeboatError(
        'CredentialsUnavailable',
        `S3 refused to ${action} in ${this.location} (${detail})`,
        `Check that ${this.credentialEnvNames} hold the right key pair and that it may ListBucket, GetObject, PutObject and DeleteObject on bucket "${this.bucket}"`,
        { cause: error },
      );
    }
    if (code !== undefined && wrongLocationCodes.has(code)) {
      return new LifeboatError(
        'InvalidConfig',
        `cannot ${action} in ${this.location}: ${code === 'NoSuchBucket' ? `bucket "${this.bucket}" does not exist` : 'the bucket is not reachable as configured'} (${detail})`,
        code === 'NoSuchBucket'
          ? 'Create the bucket, or fix bucket/endpoint in the repository config'
          : 'Check bucket, region, endpoint and forcePathStyle in the repository config',
        { cause: error },
      );
    }
    if (code !== undefined && prefixConflictCodes.has(code)) {
      return new LifeboatError(
        'ObjectConflict',
        `cannot ${action} in ${this.location}: this server stores keys as files, so a key cannot be both an object and the folder of other objects (${detail})`,
        'Use keys where no object name is a "/"-prefix of another',
        { cause: error },
      );
    }
    if (isAbortError(error)) return error;
    return new Error(`S3 ${action} in ${this.location} failed: ${detail}`, { cause: error });
  }
}

function readCredential(env: NodeJS.ProcessEnv, name: string, what: string, bucket: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new LifeboatError(
      'CredentialsUnavailable',
      `the S3 ${what} for bucket "${bucket}" is read from the environment variable ${name}, which is ${value === undefined ? 'not set' : 'empty'}`,
      `Export ${name} in the environment of the Lifeboat worker and CLI`,
    );
  }
  return value;
}

/** Endpoint without any user:password part and query, for messages and location. */
function displayEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return '<invalid endpoint URL>';
  }
}

/** The S3 error code ("NoSuchKey", ...) or, for network failures, the Node error code. */
function errorCode(error: unknown): string | undefined {
  if (loadedAwsSdk && error instanceof loadedAwsSdk.S3ServiceException) return error.name;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * What the SDK names errors whose response has no body (every HEAD): "NotFound", "Forbidden",
 * "Unknown" or the bare status code. They say nothing about the cause.
 */
function isBodylessCode(code: string | undefined): boolean {
  return code === undefined || code === 'NotFound' || code === 'Forbidden' || code === 'Unknown' || /^\d+$/.test(code);
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function describeSdkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = errorCode(error);
  const status = statusOf(error);
  const parts = [code && code !== error.message ? code : undefined, status ? `HTTP ${status}` : undefined, error.message];
  return parts.filter((part) => part !== undefined && part !== '' && part !== 'UnknownError').join(': ');
}

