import type { HooksConfig } from '../config/common.js';
import type { ResolvedTargetBase } from '../kinds/contract.js';
import type { DrillCommand } from './smoke.js';
import type { TreeRoot } from './walk.js';

/** A target whose backups are directory trees (`files`, `secrets`), as runbooks get it. */
export interface ResolvedTreeTarget extends ResolvedTargetBase {
  type: 'files' | 'secrets';
  roots: TreeRoot[];
  include: string[];
  exclude: string[];
  partSizeMiB: number;
  symlinksOutsideRoot: 'refuse' | 'keep';
  hooks?: HooksConfig;
  drill: {
    rtoTargetSeconds?: number;
    rpoTargetSeconds?: number;
    scratchDir?: string;
    /** Names (as stored: `<root>/<path>`) that must exist in the restored copy; never for secrets. */
    mustExist: string[];
    commands: DrillCommand[];
  };
}
