import { openBackend } from '../src/repository/open.js';
import { Repository } from '../src/repository/repository.js';
import type { ResolvedTargetBase } from '../src/kinds/contract.js';

/** Opens the target's repositories; credentials are read from the environment here, not before. */
export function openRepositories(target: ResolvedTargetBase, env: NodeJS.ProcessEnv): Repository[] {
  return target.repositories.map(({ name, config }) => new Repository(name, openBackend(config, env)));
}
