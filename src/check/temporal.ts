/**
 * Temporal is ready when the server answers for the namespace, knows Lifeboat's search attributes
 * (a start with an unknown one fails), and a worker polls the task queue for both workflow and
 * activity tasks (runs would otherwise wait forever).
 */
import type { Client } from '@temporalio/client';
import type { TemporalSettings } from '../client.js';
import { lifeboatSearchAttributes } from '../dev/temporal-server.js';
import { Finding } from './result.js';

export async function checkServer(client: Client, settings: TemporalSettings): Promise<string> {
  const { namespaceInfo } = await client.workflowService.describeNamespace({ namespace: settings.namespace });
  return `Temporal at ${settings.address} answers for namespace "${namespaceInfo?.name ?? settings.namespace}"`;
}

export async function checkSearchAttributes(client: Client, settings: TemporalSettings): Promise<string> {
  const { customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace: settings.namespace });
  const missing = Object.keys(lifeboatSearchAttributes).filter((name) => !(name in (customAttributes ?? {})));
  if (missing.length) {
    throw new Finding(
      `search attributes not registered in namespace "${settings.namespace}": ${missing.join(', ')} (starting a run fails without them)`,
      missing.map((name) => `temporal operator search-attribute create --address ${settings.address} --namespace ${settings.namespace} --name ${name} --type Keyword`).join('; '),
    );
  }
  return `${Object.keys(lifeboatSearchAttributes).join(', ')} registered`;
}

/** temporal.api.enums.v1.TaskQueueType and TaskQueueKind values (the proto package is not a direct dependency). */
const taskQueueTypes = { workflow: 1, activity: 2 } as const;
const normalKind = 1;
/** A polling worker renews its long poll at least every ~70 s; an older last access is a worker gone. */
const pollerFreshMs = 2 * 60_000;

export async function checkPollers(client: Client, settings: TemporalSettings): Promise<string> {
  const seen: string[] = [];
  const missing: string[] = [];
  for (const [type, value] of Object.entries(taskQueueTypes)) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace: settings.namespace,
      taskQueue: { name: settings.taskQueue, kind: normalKind },
      taskQueueType: value,
    });
    const fresh = (pollers ?? []).filter((poller) => {
      const seconds = Number(poller.lastAccessTime?.seconds ?? 0);
      return Date.now() - seconds * 1000 < pollerFreshMs;
    });
    if (fresh.length) seen.push(`${type}: ${[...new Set(fresh.map((poller) => poller.identity ?? '?'))].join(', ')}`);
    else missing.push(type);
  }
  if (missing.length) {
    throw new Finding(
      `no worker polls task queue "${settings.taskQueue}" for ${missing.join(' and ')} tasks in namespace "${settings.namespace}"; runs would wait for one`,
      `Start \`lifeboat worker\` with the same TEMPORAL_ADDRESS (${settings.address}), TEMPORAL_NAMESPACE and LIFEBOAT_TASK_QUEUE (or temporal: in its config)`,
    );
  }
  return `workers poll task queue "${settings.taskQueue}" (${seen.join('; ')})`;
}
