/**
 * A repository is usable when a small object makes the whole round trip a backup makes: put, head,
 * get with the same sha256, list, delete. The object lives under ".lifeboat-check/", a name no
 * target can have, and is removed again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { RepositoryConfig } from '../config/schema.js';
import { LifeboatError } from '../errors.js';
import { openBackend } from '../repository/open.js';
import { Finding } from './result.js';

const probeBytes = 64 * 1024;
export const probePrefix = '.lifeboat-check/';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function whoAmI(): string {
  try {
    return `${userInfo().username} (uid ${process.getuid?.() ?? '?'})`;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** What to change when the round trip fails, by repository type. */
export function repositoryFix(name: string, config: RepositoryConfig, error: unknown): string {
  if (error instanceof LifeboatError && error.type === 'CredentialsUnavailable') return error.message;
  if (config.type === 'fs') {
    return `Create ${config.path} (or its parent) and let ${whoAmI()}, the user the worker runs as, write there; check that the disk is mounted and not full (repositories.${name}.path)`;
  }
  return (
    `Check repositories.${name}: that ${config.endpoint ?? 'AWS S3'} answers from this host, that bucket "${config.bucket}" exists, ` +
    `and that the keys in $${config.accessKeyIdEnv} / $${config.secretAccessKeyEnv} may put, get, list and delete under "${config.prefix}"`
  );
}

export async function checkRepositoryRoundTrip(config: RepositoryConfig, env: NodeJS.ProcessEnv): Promise<string> {
  const backend = openBackend(config, env);
  const key = `${probePrefix}${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomBytes(6).toString('hex')}.bin`;
  const body = randomBytes(probeBytes);
  const started = performance.now();
  await backend.put(key, Readable.from([body]));
  try {
    const head = await backend.head(key);
    if (head?.sizeBytes !== probeBytes) throw new Finding(`${backend.location}: wrote ${probeBytes} bytes under ${key} but the repository reports ${head ? `${head.sizeBytes} bytes` : 'no object'}`, 'Check the storage server: it does not keep what it accepts');
    const back = await buffer(await backend.get(key));
    if (sha256(back) !== sha256(body)) throw new Finding(`${backend.location}: the object read back differs from what was written (${back.length} bytes)`, 'Check the storage server or any proxy between: it changes data');
    const listed = await backend.list(probePrefix);
    if (!listed.some((object) => object.key === key)) throw new Finding(`${backend.location}: the object written is missing from a listing of ${probePrefix}`, 'Listing must work: restores find backups by listing manifests');
  } finally {
    await backend.delete(key);
  }
  if (await backend.head(key)) throw new Finding(`${backend.location}: ${key} is still there after delete`, 'Lifeboat must be able to delete objects (discarding failed backups, retention)');
  return `${backend.location}: ${probeBytes / 1024} KiB put, read back (sha256 match), listed and deleted in ${Math.round(performance.now() - started)} ms`;
}
