import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../errors.js';

/*
 * Lifeboat's encrypted stream format, version 1 (a STREAM-style construction, as in age):
 *
 *   header  = "LBENC1\n" | version (1 byte) | key id (16 bytes) | nonce prefix (12 random bytes)
 *   chunk i = AES-256-GCM(payload key, nonce_i, plaintext_i, aad = header | final flag) | tag (16 bytes)
 *
 * - Every chunk but the last carries exactly `chunkSize` plaintext bytes; the last carries 1..chunkSize
 *   bytes, or 0 bytes only when the whole plaintext is empty (so even an empty backup authenticates).
 * - nonce_i is the prefix with a 32-bit big-endian chunk counter XORed into its last four bytes, so
 *   reordering or dropping chunks changes the nonce and fails authentication.
 * - The final flag (0x01 on the last chunk, 0x00 otherwise) is in the AAD, so cutting the stream at a
 *   chunk boundary, or appending anything after the last chunk, also fails authentication.
 * - The payload key is HKDF-SHA256(key, salt = nonce prefix), i.e. fresh for every stream: the
 *   per-key GCM limits (random-nonce collisions, 2^32 invocations) then apply per backup, not across
 *   every backup ever made with one long-lived key.
 * - The header is bound into every chunk's AAD, so it cannot be altered without detection either.
 */

const MAGIC = Buffer.from('LBENC1\n', 'latin1');
const FORMAT_VERSION = 1;
const KEY_LENGTH = 32;
const KEY_ID_LENGTH = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const HEADER_LENGTH = MAGIC.length + 1 + KEY_ID_LENGTH + NONCE_LENGTH;
const CHUNK_SIZE = 1024 * 1024;
const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_LENGTH;
const MAX_CHUNKS = 2 ** 32;
const KEY_ID_LABEL = 'lifeboat key id v1';
const PAYLOAD_KEY_INFO = 'lifeboat encrypted stream v1 payload key';
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const KEY_FILE_HINT =
  'Create a key with `head -c 32 /dev/urandom > key && chmod 600 key` and keep a copy outside the backup repository: backups cannot be restored without it';

/** Sizes of the version-1 format, for tests and for predicting object sizes. */
export const encryptionFormat = {
  version: FORMAT_VERSION,
  headerLength: HEADER_LENGTH,
  chunkSize: CHUNK_SIZE,
  tagLength: TAG_LENGTH,
} as const;

/** Size of the encrypted stream for a plaintext of `plainBytes` bytes. */
export function encryptedLength(plainBytes: number): number {
  const chunks = Math.max(1, Math.ceil(plainBytes / CHUNK_SIZE));
  return HEADER_LENGTH + plainBytes + chunks * TAG_LENGTH;
}

/**
 * Public fingerprint of a key (32 hex chars). It is an HMAC of a fixed label under the key, so it
 * identifies which key a backup needs without revealing anything about the key itself.
 */
export function keyId(key: Buffer): string {
  return keyIdBytes(key).toString('hex');
}

/** Encrypts a byte stream into the chunked format above; the key must be 32 bytes. */
export function createEncryptor(key: Buffer): Transform {
  return new StreamEncryptor(key);
}

/**
 * Decrypts the chunked format, releasing each chunk only after its tag verified.
 * Fails with WrongEncryptionKey (from the header, before any chunk) or BackupCorrupt.
 */
export function createDecryptor(key: Buffer): Transform {
  return new StreamDecryptor(key);
}

/**
 * Reads a key file: exactly 32 raw bytes, or 64 hex characters optionally followed by a newline.
 * Anything else is rejected rather than hashed into a key, so a wrong file cannot silently produce
 * backups nobody can decrypt with the key they think they have. Messages never contain key bytes.
 */
export async function loadKeyFile(path: string): Promise<Buffer> {
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    throw new LifeboatError('EncryptionKeyUnavailable', `Encryption key file ${path} ${describeReadFailure(error)}`, KEY_FILE_HINT, {
      cause: error,
    });
  }
  if (content.length === KEY_LENGTH) {
    return content;
  }
  const text = content.toString('latin1').replace(/\r?\n$/, '');
  if (/^[0-9a-fA-F]{64}$/.test(text)) {
    return Buffer.from(text, 'hex');
  }
  throw new LifeboatError(
    'EncryptionKeyUnavailable',
    `Encryption key file ${path} ${describeKeyFileContent(content.length, text)}; a key must be exactly 32 raw bytes or 64 hex characters (optionally followed by a newline)`,
    KEY_FILE_HINT,
  );
}

/** What a backup's manifest says of its encryption: its id, and the id of the key it was encrypted with (null: stored in the clear). */
export interface EncryptedBackup {
  id: string;
  encryption: { keyId: string } | null;
}

/**
 * The key a backup was encrypted with, read from the config's key file and checked against the id
 * its manifest records; undefined for a backup stored in the clear. Every restore takes its key
 * from here, so a missing or different key fails the same way (typed, naming both key ids) before
 * anything is downloaded.
 */
export async function decryptionKeyFor(target: { encryption: { keyFile: string } | null }, backup: EncryptedBackup): Promise<Buffer | undefined> {
  if (!backup.encryption) return undefined;
  const keyFile = target.encryption?.keyFile;
  return checkDecryptionKey(backup, keyFile === undefined ? undefined : await loadKeyFile(keyFile), keyFile);
}

/**
 * `key` when it is the one `backup` was encrypted with (undefined for a backup stored in the
 * clear): EncryptionKeyUnavailable without a key, WrongEncryptionKey with another. `keyFile` names
 * where the key was read from, for the message.
 */
export function checkDecryptionKey(backup: EncryptedBackup, key: Buffer | undefined, keyFile?: string): Buffer | undefined {
  if (!backup.encryption) return undefined;
  if (!key) {
    throw new LifeboatError(
      'EncryptionKeyUnavailable',
      `backup ${backup.id} is encrypted with key ${backup.encryption.keyId} but the config has no encryption.keyFile`,
      'Set encryption.keyFile to the key the backup was made with',
    );
  }
  if (keyId(key) !== backup.encryption.keyId) {
    throw new LifeboatError(
      'WrongEncryptionKey',
      `backup ${backup.id} was encrypted with key ${backup.encryption.keyId}, but ${keyFile ?? 'the key given'} holds key ${keyId(key)}`,
      'Point encryption.keyFile at the key the backup was made with',
    );
  }
  return key;
}

function describeReadFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read (permission denied); make it readable by the user running Lifeboat and by nobody else';
    case 'EISDIR':
      return 'is a directory, not a key file';
    default:
      return `could not be read (${code ?? (error instanceof Error ? error.message : String(error))})`;
  }
}

function describeKeyFileContent(length: number, text: string): string {
  if (length === 0) return 'is empty';
  if (text.length === 64) return 'holds 64 characters but they are not all hex digits';
  return `holds ${length} bytes`;
}

function keyIdBytes(key: Buffer): Buffer {
  return createHmac('sha256', key).update(KEY_ID_LABEL).digest().subarray(0, KEY_ID_LENGTH);
}

function assertKeyLength(key: Buffer): void {
  if (key.length !== KEY_LENGTH) {
    throw new LifeboatError(
      'EncryptionKeyUnavailable',
      `Encryption key must be ${KEY_LENGTH} bytes but the one supplied has ${key.length}`,
      'Load keys with loadKeyFile(), which accepts 32 raw bytes or 64 hex characters',
    );
  }
}

function payloadKey(key: Buffer, noncePrefix: Buffer): KeyObject {
  return createSecretKey(Buffer.from(hkdfSync('sha256', key, noncePrefix, PAYLOAD_KEY_INFO, KEY_LENGTH)));
}

function chunkNonce(prefix: Buffer, counter: number): Buffer {
  const nonce = Buffer.from(prefix);
  nonce.writeUInt32BE((nonce.readUInt32BE(NONCE_LENGTH - 4) ^ counter) >>> 0, NONCE_LENGTH - 4);
  return nonce;
}

/** AADs for middle and final chunks: the header plus the final flag. */
function chunkAads(header: Buffer): { middle: Buffer; final: Buffer } {
  return { middle: Buffer.concat([header, Buffer.from([0])]), final: Buffer.concat([header, Buffer.from([1])]) };
}

/**
 * FIFO of received buffers. Taking n bytes copies only when they span several buffers, and
 * consumed buffers are dropped in one splice per take, so cost stays linear whatever the sizes of
 * the incoming writes (a million 1-byte writes as well as one 1 GiB write).
 */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.parts.push(chunk);
    this.length += chunk.length;
  }

  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue.take(${n}) with only ${this.length} bytes queued`);
    this.length -= n;
    const head = this.parts[0];
    if (head !== undefined && head.length >= n) {
      if (head.length === n) this.parts.shift();
      else this.parts[0] = head.subarray(n);
      return head.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let used = 0;
    while (filled < n) {
      const part = this.parts[used] as Buffer;
      const wanted = n - filled;
      if (part.length <= wanted) {
        part.copy(out, filled);
        filled += part.length;
        used += 1;
      } else {
        part.copy(out, filled, 0, wanted);
        this.parts[used] = part.subarray(wanted);
        filled = n;
      }
    }
    this.parts.splice(0, used);
    return out;
  }
}

class StreamEncryptor extends Transform {
  private readonly header: Buffer;
  private readonly noncePrefix: Buffer;
  private readonly key: KeyObject;
  private readonly aad: { middle: Buffer; final: Buffer };
  private readonly pending = new ByteQueue();
  private headerSent = false;
  private counter = 0;

  constructor(key: Buffer) {
    super();
    assertKeyLength(key);
    this.noncePrefix = randomBytes(NONCE_LENGTH);
    this.header = Buffer.concat([MAGIC, Buffer.from([FORMAT_VERSION]), keyIdBytes(key), this.noncePrefix]);
    this.key = payloadKey(key, this.noncePrefix);
    this.aad = chunkAads(this.header);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.pending.push(chunk);
      // Strictly more than a chunk: only then is it certain this chunk is not the final one.
      while (this.pending.length > CHUNK_SIZE) this.seal(this.pending.take(CHUNK_SIZE), false);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.seal(this.pending.take(this.pending.length), true);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.header);
  }

  private seal(plaintext: Buffer, final: boolean): void {
    if (this.counter >= MAX_CHUNKS) {
      throw new Error(`Encrypted stream exceeds ${MAX_CHUNKS} chunks of ${CHUNK_SIZE} bytes; split the backup`);
    }
    const cipher = createCipheriv('aes-256-gcm', this.key, chunkNonce(this.noncePrefix, this.counter), {
      authTagLength: TAG_LENGTH,
    });
    cipher.setAAD(final ? this.aad.final : this.aad.middle);
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    if (ciphertext.length > 0) this.push(ciphertext);
    this.push(cipher.getAuthTag());
    this.counter += 1;
  }
}

class StreamDecryptor extends Transform {
  private readonly masterKey: Buffer;
  private readonly pending = new ByteQueue();
  private stream: { noncePrefix: Buffer; key: KeyObject; aad: { middle: Buffer; final: Buffer } } | undefined;
  private counter = 0;
  private received = 0;

  constructor(key: Buffer) {
    super();
    assertKeyLength(key);
    this.masterKey = key;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.received += chunk.length;
      this.pending.push(chunk);
      if (this.stream === undefined) {
        if (this.pending.length < HEADER_LENGTH) return callback();
        this.stream = this.readHeader(this.pending.take(HEADER_LENGTH));
      }
      // A full-size chunk is known to be a middle chunk only once at least one more byte follows it.
      while (this.pending.length > SEALED_CHUNK_SIZE) this.open(this.pending.take(SEALED_CHUNK_SIZE), false);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.stream === undefined) {
        throw corrupt(
          `Encrypted backup ends after ${this.received} bytes, before its ${HEADER_LENGTH}-byte encryption header is complete`,
        );
      }
      if (this.pending.length < TAG_LENGTH) {
        throw corrupt(
          `Encrypted backup is truncated: it ends after chunk ${this.counter} with ${this.pending.length} stray bytes and no final chunk`,
        );
      }
      this.open(this.pending.take(this.pending.length), true);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private readHeader(header: Buffer): NonNullable<StreamDecryptor['stream']> {
    if (!header.subarray(0, MAGIC.length).equals(MAGIC)) {
      const unencrypted = header.subarray(0, ZSTD_MAGIC.length).equals(ZSTD_MAGIC);
      throw corrupt(
        unencrypted
          ? 'Backup is not encrypted (it starts with a zstd frame, not a Lifeboat encryption header)'
          : 'Backup does not start with a Lifeboat encryption header: it is not an encrypted Lifeboat backup or its first bytes are damaged',
      );
    }
    const version = header[MAGIC.length];
    if (version !== FORMAT_VERSION) {
      throw corrupt(
        `Backup uses encryption format version ${String(version)}, but this Lifeboat reads only version ${FORMAT_VERSION}`,
        'If the backup was written by a newer Lifeboat, restore it with that version',
      );
    }
    const idStart = MAGIC.length + 1;
    const foundId = header.subarray(idStart, idStart + KEY_ID_LENGTH);
    const expectedId = keyIdBytes(this.masterKey);
    if (!timingSafeEqual(foundId, expectedId)) {
      throw new LifeboatError(
        'WrongEncryptionKey',
        `Backup was encrypted with key id ${foundId.toString('hex')}, but the supplied key has id ${expectedId.toString('hex')}`,
        `Configure the key file whose key id is ${foundId.toString('hex')}. If you are sure the key is right, the backup header is damaged`,
      );
    }
    const noncePrefix = Buffer.from(header.subarray(idStart + KEY_ID_LENGTH));
    return { noncePrefix, key: payloadKey(this.masterKey, noncePrefix), aad: chunkAads(Buffer.from(header)) };
  }

  private open(sealed: Buffer, final: boolean): void {
    const stream = this.stream as NonNullable<StreamDecryptor['stream']>;
    const boundary = sealed.length - TAG_LENGTH;
    const decipher = createDecipheriv('aes-256-gcm', stream.key, chunkNonce(stream.noncePrefix, this.counter), {
      authTagLength: TAG_LENGTH,
    });
    decipher.setAAD(final ? stream.aad.final : stream.aad.middle);
    decipher.setAuthTag(sealed.subarray(boundary));
    const plaintext = decipher.update(sealed.subarray(0, boundary));
    try {
      decipher.final();
    } catch (error) {
      throw corrupt(
        final
          ? `Encrypted backup failed authentication at its last chunk (chunk ${this.counter}): it was truncated, extended or modified`
          : `Encrypted backup failed authentication at chunk ${this.counter}: it was modified or its chunks reordered`,
        undefined,
        error,
      );
    }
    // Only now, with the tag verified, may these bytes leave the decryptor.
    if (plaintext.length > 0) this.push(plaintext);
    this.counter += 1;
  }
}

function corrupt(message: string, hint?: string, cause?: unknown): LifeboatError {
  return new LifeboatError(
    'BackupCorrupt',
    message,
    hint ?? 'Do not use this backup: restore from another one, and check the repository storage for damage',
    cause === undefined ? undefined : { cause },
  );
}
