import { openBackend } from '../src/repository/open.js';
import { Repository } from '../src/repository/repository.js';
import { Landing } from '../src/repository/store.js';
import type { ResolvedTargetBase } from '../src/kinds/contract.js';

/** Opens the target's repositories; credentials are read from the environment here, not before. */
export function openRepositories(target: ResolvedTargetBase, env: NodeJS.ProcessEnv): Repository[] {
  return target.repositories.map(({ name, config }) => new Repository(name, openBackend(config, env)));
}

/**
 * Where a new backup of the target goes: its repositories, of which minCopies must take it (the
 * others may drop out on the way: unreachable, failing mid-stream).
 */
export function landingFor(target: ResolvedTargetBase, env: NodeJS.ProcessEnv): Landing {
  return new Landing(openRepositories(target, env), target.minCopies);
}
