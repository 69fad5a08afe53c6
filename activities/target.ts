import { loadConfig, targetNamed } from '../src/config/load.js';
import type { Config, RepositoryConfig } from '../src/config/schema.js';
import { LifeboatError } from '../src/errors.js';
import type { ResolvedTargetBase, ResolvedTargetCommon } from '../src/kinds/contract.js';
import { targetKindOf, type ResolvedTarget } from '../src/kinds/index.js';
import { keyId, loadKeyFile } from '../src/pipeline/encrypt.js';

export type { ResolvedTarget };
export type { ResolvedTargetBase } from '../src/kinds/contract.js';

function describeLocation(config: RepositoryConfig): string {
  return config.type === 'fs'
    ? `fs:${config.path}`
    : `s3://${config.bucket}/${config.prefix}${config.endpoint ? ` at ${config.endpoint}` : ''}`;
}

/**
 * Everything a runbook needs to know about a target, resolved once from the worker's config in the
 * first step so that history records the exact settings a run used: what every target has (where
 * its backups go and how they are transformed), then what its kind makes of its config. Holds
 * references only (env var names, file paths), never secret values.
 */
export async function resolveTarget(configPath: string, input: { target: string }): Promise<ResolvedTarget> {
  if (!input || typeof input.target !== 'string' || input.target.length === 0) {
    throw new LifeboatError('InvalidInput', 'the runbook input needs a "target" field, e.g. {"target": "orders"}');
  }
  const config = loadConfig(configPath);
  const target = targetNamed(config.targets, input.target, configPath);
  // The config schema is the union of the registered kinds' schemas: every valid target has a kind.
  const kind = targetKindOf(target.type);
  if (!kind) throw new LifeboatError('InvalidConfig', `target "${input.target}" is of type "${target.type}", which this worker does not know`);
  const resolved = kind.resolve(target, await resolveCommon(config, input.target, target.repositories), { configPath }) as ResolvedTarget;
  return { ...resolved, minCopies: target.minCopies ?? target.repositories.length, notifications: notificationsOf(config, input.target) };
}

/** The channels of the config that take events of this target (names and event types only). */
function notificationsOf(config: Config, target: string): NonNullable<ResolvedTargetBase['notifications']> {
  return {
    channels: Object.entries(config.notifications?.channels ?? {})
      .filter(([, channel]) => channel.targets === undefined || channel.targets.includes(target))
      .map(([name, channel]) => ({ name, events: channel.events })),
    deliveryTimeoutSeconds: config.notifications?.deliveryTimeoutSeconds ?? 300,
  };
}

async function resolveCommon(config: Config, name: string, repositories: string[]): Promise<ResolvedTargetCommon> {
  const encryption = config.encryption
    ? { keyFile: config.encryption.keyFile, keyId: keyId(await loadKeyFile(config.encryption.keyFile)) }
    : null;
  return {
    name,
    repositories: repositories.map((repositoryName) => {
      const repository = config.repositories[repositoryName]!;
      return { name: repositoryName, location: describeLocation(repository), config: repository };
    }),
    compression: config.compression,
    encryption,
  };
}
