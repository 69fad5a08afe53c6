import type { ListedEntry } from '../contract.js';
import type { Repository } from '../../repository/repository.js';
import { decryptionKeyFor } from '../../pipeline/encrypt.js';
import { readIndex } from '../../tree/restore.js';
import { entryNamers } from '../../tree/entry.js';
import type { FilesManifest } from './manifest.js';

/** `lifeboat ls` of a files backup: its index (one small object), decrypted with the config's key. */
export async function listFiles(backup: { manifest: FilesManifest; repositories: Repository[]; keyFile: string | undefined }): Promise<ListedEntry[]> {
  const key = await decryptionKeyFor({ encryption: backup.keyFile ? { keyFile: backup.keyFile } : null }, backup.manifest);
  const { index } = await readIndex(backup.repositories, backup.manifest, key, entryNamers.byName);
  return index.entries.map((entry) => ({
    path: entry.path,
    type: entry.type,
    size: entry.size,
    mode: entry.mode ?? null,
    uid: entry.uid,
    gid: entry.gid,
    mtime: new Date(entry.mtimeMs).toISOString(),
    ...(entry.linkTarget !== undefined ? { linkTarget: entry.linkTarget } : {}),
  }));
}
