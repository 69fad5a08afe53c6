import { LifeboatError } from '../errors.js';
import { mapInParallel } from '../in-parallel.js';
import type { Manifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';

/**
 * What one repository holds for a target, read from the repository alone: one folder listing of
 * <target>/backups/ and one read per backup (its manifest). The requests grow with the number of
 * backups, never with the number of objects inside them (a base backup has hundreds of parts).
 * Retention, verification and `lifeboat status` start from this.
 */
export interface RepositoryCatalog {
  repository: string;
  /** Complete backups (their manifest parses), newest first. */
  backups: Manifest[];
  /** Backups whose manifest exists but is not a readable Lifeboat manifest of this backup. */
  unreadable: Array<{ id: string; problem: string }>;
  /** Folders without a manifest: a backup running now, one that died before its manifest, or one being removed. */
  incomplete: string[];
}

/** Manifests read at once; each is one small request. */
const manifestReads = 16;

export async function readCatalog(repository: Repository, target: string): Promise<RepositoryCatalog> {
  const folders = await repository.listBackupFolders(target);
  const catalog: RepositoryCatalog = { repository: repository.name, backups: [], unreadable: [], incomplete: [] };
  const read = await mapInParallel(folders, manifestReads, async (id): Promise<Manifest | string | undefined> => {
    try {
      return await repository.readManifestIfAny(target, id);
    } catch (error) {
      // A manifest that is there but wrong is a finding; a repository that does not answer is not.
      if (error instanceof LifeboatError && error.type === 'BackupCorrupt') return error.message;
      throw error;
    }
  });
  read.forEach((entry, index) => {
    const id = folders[index]!;
    if (entry === undefined) catalog.incomplete.push(id);
    else if (typeof entry === 'string') catalog.unreadable.push({ id, problem: entry });
    else catalog.backups.push(entry);
  });
  return catalog;
}
