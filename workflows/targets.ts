import type { ResolvedTarget } from '../activities/index.js';
import type { Manifest } from '../src/repository/manifest.js';

/** The resolve-target step's detail: what the run works on (and, with repositories, where it stores). */
export function describeTarget(target: ResolvedTarget, options: { repositories?: boolean } = {}): string {
  const what =
    target.type === 'sqlite'
      ? `${target.type} ${target.path}`
      : `${target.type} ${target.connection.user}@${target.connection.host}:${target.connection.port}/${target.connection.database} (method ${target.method})`;
  if (!options.repositories) return what;
  return `${what} -> ${target.repositories.map((r) => r.name).join(', ')}${target.encryption ? ` (encrypted, key ${target.encryption.keyId})` : ''}`;
}

/** Bytes of the source as backed up: the file, the dump, or the base backup's tar stream. */
export function sourceBytesOf(manifest: Manifest): number {
  return manifest.kind === 'postgres-base' ? manifest.base.tar.sizeBytes : manifest.source.sizeBytes;
}
