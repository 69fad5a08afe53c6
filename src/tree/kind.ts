/**
 * What every tree kind (`files`, `secrets`) does alike when its config is loaded and resolved, and
 * how the CLI tells a finished restore. A kind module is this, its config schema
 * (treeTargetSchema), its manifest, and its policy: what `restore --path` and `ls` may show.
 */
import { basename } from 'node:path';
import type { ResolvedTargetCommon, RestoredSummary } from '../kinds/contract.js';
import type { HooksConfig } from '../config/common.js';
import type { ResolvedTreeTarget } from './target.js';

/** What of a tree kind's config (treeTargetSchema) its resolve reads. */
interface TreeTargetConfig<Type extends ResolvedTreeTarget['type']> {
  type: Type;
  roots: string[];
  include: string[];
  exclude: string[];
  partSizeMiB: number;
  symlinksOutsideRoot: ResolvedTreeTarget['symlinksOutsideRoot'];
  hooks?: HooksConfig | undefined;
  drill: Omit<ResolvedTreeTarget['drill'], 'mustExist'> & { mustExist?: string[] };
}

/** The roots and the drill's scratch directory, absolute against the config file's directory. */
export function treeAbsolutePaths(config: { roots: string[]; drill: { scratchDir?: string | undefined } }, absolute: (path: string) => string): void {
  config.roots = config.roots.map((root) => absolute(root));
  if (config.drill.scratchDir) config.drill.scratchDir = absolute(config.drill.scratchDir);
}

/** The target a run works on: each root named by its last segment; no names that must exist when the kind has none. */
export function resolveTreeTarget<Type extends ResolvedTreeTarget['type']>(config: TreeTargetConfig<Type>, common: ResolvedTargetCommon): ResolvedTreeTarget & { type: Type } {
  return {
    ...common,
    type: config.type,
    roots: config.roots.map((path) => ({ name: basename(path), path })),
    include: config.include,
    exclude: config.exclude,
    partSizeMiB: config.partSizeMiB,
    symlinksOutsideRoot: config.symlinksOutsideRoot,
    ...(config.hooks ? { hooks: config.hooks } : {}),
    drill: { mustExist: [], ...config.drill },
  };
}

/** The first line a finished restore of a tree prints. */
export function restoredTree(r: RestoredSummary): string {
  return `restored backup ${r.backupId} (snapshot ${r.snapshotAt}) to ${r.restoredTo}${r.safetyCopy ? `; the previous trees are kept at ${r.safetyCopy}` : ''}`;
}
