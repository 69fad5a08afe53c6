import { loadConfig, targetNamed } from '../src/config/load.js';
import { LifeboatError } from '../src/errors.js';
import {
  applyRetention,
  defaultDeadUploadAfterHours,
  planRepository,
  readRetentionState,
  type RepositoryRetentionOutcome,
  type RepositoryRetentionPlan,
} from '../src/retention/apply.js';
import { assertUsablePolicy, effectivePolicy, type RetentionPolicy } from '../src/retention/plan.js';
import { temporalRunOracle } from './leases.js';
import { startProgress } from './progress.js';
import { openRepositories } from './repositories.js';
import type { ResolvedTarget } from './target.js';

export type { RepositoryRetentionOutcome, RepositoryRetentionPlan };

export interface RetentionPlan {
  target: string;
  plannedAt: string;
  /** How long a run that asks waits for the answer (retention.approvalTimeoutSeconds). */
  approvalTimeoutSeconds: number;
  deadUploadAfterHours: number;
  repositories: RepositoryRetentionPlan[];
}

interface RetentionSettings {
  policies: Map<string, RetentionPolicy>;
  approvalTimeoutSeconds: number;
  deadUploadAfterHours: number;
}

/** The target's retention section from the worker's config, per repository; InvalidConfig when it has none or it keeps nothing. */
function retentionSettings(configPath: string, target: ResolvedTarget): RetentionSettings {
  const config = loadConfig(configPath);
  const retention = targetNamed(config.targets, target.name, configPath).retention;
  if (!retention) {
    throw new LifeboatError(
      'InvalidConfig',
      `target "${target.name}" has no retention policy in ${configPath}`,
      `Add retention: (e.g. keepDaily: 7, keepWeekly: 4) under targets.${target.name}; without a policy nothing is removed`,
    );
  }
  const policies = new Map<string, RetentionPolicy>();
  for (const { name } of target.repositories) {
    const policy = effectivePolicy(retention, name);
    assertUsablePolicy(policy, `target "${target.name}" in repository "${name}"`);
    policies.set(name, policy);
  }
  return { policies, approvalTimeoutSeconds: retention.approvalTimeoutSeconds ?? 3600, deadUploadAfterHours: retention.deadUploadAfterHours ?? defaultDeadUploadAfterHours };
}

/** Plans retention in every repository of the target (reads only). */
export async function planTargetRetention(input: { target: ResolvedTarget }, deps: { configPath: string; env: NodeJS.ProcessEnv }): Promise<RetentionPlan> {
  const settings = retentionSettings(deps.configPath, input.target);
  const now = new Date();
  const progress = startProgress('plan', input.target.repositories.length);
  try {
    const repositories: RepositoryRetentionPlan[] = [];
    for (const repository of openRepositories(input.target, deps.env)) {
      const state = await readRetentionState(repository, input.target.name, temporalRunOracle(), now);
      repositories.push(planRepository(repository.name, state, settings.policies.get(repository.name)!, { now, deadUploadAfterHours: settings.deadUploadAfterHours }));
      progress.update(repositories.length);
    }
    return { target: input.target.name, plannedAt: now.toISOString(), approvalTimeoutSeconds: settings.approvalTimeoutSeconds, deadUploadAfterHours: settings.deadUploadAfterHours, repositories };
  } finally {
    progress.stop();
  }
}

/**
 * Carries out the approved part of a plan in one repository (src/retention/apply.ts), checked
 * against the state now. Idempotent; heartbeats how far it got.
 */
export async function applyTargetRetention(
  input: { target: ResolvedTarget; repository: string; remove: string[]; deadUploads: string[] },
  deps: { configPath: string; env: NodeJS.ProcessEnv },
): Promise<RepositoryRetentionOutcome> {
  const settings = retentionSettings(deps.configPath, input.target);
  const repository = openRepositories(input.target, deps.env).find((r) => r.name === input.repository);
  if (!repository) throw new LifeboatError('InvalidInput', `target "${input.target.name}" has no repository "${input.repository}"`);
  const progress = startProgress('plan', 0);
  try {
    return await applyRetention(repository, input.target.name, settings.policies.get(repository.name)!, { remove: input.remove, deadUploads: input.deadUploads }, {
      now: new Date(),
      deadUploadAfterHours: settings.deadUploadAfterHours,
      isOpen: temporalRunOracle(),
      onProgress: ({ phase, done, total }) => progress.set({ phase, bytesDone: done, bytesTotal: total }),
    });
  } finally {
    progress.stop();
  }
}
