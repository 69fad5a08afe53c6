import { z } from 'zod';
import { envVarName, name } from './common.js';
import { chatopsSchema } from './chatops.js';
import { checkRetention } from './retention.js';
import { targetConfigSchema, targetKindOf } from '../kinds/index.js';

/**
 * The one definition of lifeboat.config.yaml. Validation, defaults and the README's configuration
 * reference (npm run docs:config) all come from here: add an option here and nowhere else.
 *
 * Secrets never appear in this file's values: it holds references (environment variable names,
 * file paths) that activities resolve when they need the value.
 */

/** An HTTP listen address: "host:port" (an IPv6 host in brackets). */
const listenAddress = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'host:port, e.g. 127.0.0.1:9464 or [::1]:9464')
  .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'a port from 0 to 65535');

export const fsRepositorySchema = z
  .object({
    type: z.literal('fs').describe('A directory on a local or mounted disk.'),
    path: z.string().min(1).describe('Directory that holds the repository; created when missing.'),
  })
  .strict();

/** S3 storage classes a payload may be stored in: those read at once (no restore request first). */
export const s3StorageClasses = ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'REDUCED_REDUNDANCY'] as const;

export const s3RepositorySchema = z
  .object({
    type: z.literal('s3').describe('An S3 or S3-compatible bucket.'),
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional().describe('S3 endpoint URL; omit for AWS.'),
    bucket: z.string().min(3).describe('Bucket name; must exist.'),
    prefix: z.string().default('').describe('Key prefix inside the bucket, e.g. "lifeboat/".'),
    region: z.string().default('us-east-1').describe('Region to sign requests for.'),
    forcePathStyle: z.boolean().default(true).describe('Path-style addressing (needed by most S3-compatible servers).'),
    accessKeyIdEnv: envVarName.describe('Name of the environment variable holding the access key id.'),
    secretAccessKeyEnv: envVarName.describe('Name of the environment variable holding the secret access key.'),
    storageClass: z
      .enum(s3StorageClasses)
      .optional()
      .describe(
        'S3 storage class of payload objects (the data of backups); default: the bucket\'s default (STANDARD). E.g. STANDARD_IA or GLACIER_IR for a repository read rarely. Manifests, WAL, reports, ' +
          'leases and other small objects always stay STANDARD: they are read often, and colder classes charge a minimum size and per request. ' +
          'Classes that need a restore before reading (GLACIER, DEEP_ARCHIVE) are refused: a restore or verify must be able to read every object.',
      ),
    partSizeMiB: z.number().int().min(5).max(512).default(8).describe('Multipart part size; larger payloads upload in parts. About three parts are buffered per upload; grown automatically when a payload of known size would need more than 9,000 parts.'),
  })
  .strict();

export const repositorySchema = z.discriminatedUnion('type', [fsRepositorySchema, s3RepositorySchema]);

/** A target is one of the kinds of src/kinds (their config schemas, told apart by `type`). */
export const targetSchema = targetConfigSchema;

/** What a runbook tells the notification channels about (see src/notify/events.ts for each payload). */
export const notificationEventTypes = ['runbook.failed', 'drill.finished', 'approval.waiting', 'verify.damaged'] as const;

const channelFilters = {
  events: z
    .array(z.enum(notificationEventTypes))
    .min(1)
    .default([...notificationEventTypes])
    .describe(
      'Which events this channel gets: "runbook.failed" (any runbook ended in failure), "drill.finished" (passed or not, with RTO and RPO), ' +
        '"approval.waiting" (a runbook waits for an approval, and how to give it), "verify.damaged" (verification found a damaged backup). Default: all.',
    ),
  targets: z.array(name).min(1).optional().describe('Only runs of these targets; default: every target.'),
};

const slackChannelSchema = z
  .object({
    type: z.literal('slack').describe('A Slack (or Slack-compatible: Mattermost, Rocket.Chat) incoming webhook: a message with the facts and, for approvals, Approve / Reject buttons.'),
    urlEnv: envVarName.describe('Name of the environment variable holding the incoming webhook URL (the URL is a credential: anyone who has it can post).'),
    ...channelFilters,
  })
  .strict();

const webhookChannelSchema = z
  .object({
    type: z.literal('webhook').describe('A generic HTTP receiver: a JSON POST signed per the Standard Webhooks specification (webhook-id, webhook-timestamp, webhook-signature).'),
    url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).describe('Where events are POSTed.'),
    secretEnv: envVarName.describe('Name of the environment variable holding the signing secret, `whsec_` followed by 24 to 64 random bytes in base64 (`echo "whsec_$(head -c 32 /dev/urandom | base64)"`).'),
    ...channelFilters,
  })
  .strict();

export const notificationChannelSchema = z.discriminatedUnion('type', [slackChannelSchema, webhookChannelSchema]);

export const configSchema = z
  .object({
    repositories: z.record(name, repositorySchema).describe('Named storage locations.'),
    targets: z.record(name, targetSchema).describe('Named things to protect.'),
    encryption: z
      .object({
        keyFile: z.string().min(1).describe('File holding a 32-byte key (raw or 64 hex characters); payloads are AES-256-GCM.'),
      })
      .strict()
      .optional()
      .describe('Encrypt every backup payload; manifests record the key id, never the key.'),
    compression: z
      .object({
        level: z.number().int().min(1).max(19).default(3).describe('zstd level.'),
        threads: z.number().int().min(1).max(64).default(2).describe('zstd worker threads.'),
      })
      .strict()
      .default({ level: 3, threads: 2 })
      .describe('zstd settings of the backup stream.'),
    temporal: z
      .object({
        address: z.string().default('localhost:7233').describe('Overridden by TEMPORAL_ADDRESS.'),
        namespace: z.string().default('default').describe('Overridden by TEMPORAL_NAMESPACE.'),
        taskQueue: z.string().default('lifeboat').describe('Overridden by LIFEBOAT_TASK_QUEUE.'),
      })
      .strict()
      .default({ address: 'localhost:7233', namespace: 'default', taskQueue: 'lifeboat' })
      .describe('Where the CLI starts runbooks and the worker polls.'),
    notifications: z
      .object({
        channels: z.record(name, notificationChannelSchema).describe('Named receivers of events.'),
        deliveryTimeoutSeconds: z
          .number()
          .int()
          .min(10)
          .max(3600)
          .default(300)
          .describe(
            'How long a run keeps retrying (with backoff) a receiver that is down or answers 5xx before it gives that notification up. ' +
              'Sending is a step after the run\'s outcome is decided: it never changes the result.',
          ),
        temporalUiUrl: z
          .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
          .optional()
          .describe('Base URL of the Temporal UI (e.g. http://temporal.example.com:8233): messages link to the run.'),
      })
      .strict()
      .optional()
      .describe('Tell people: Slack messages and signed webhooks when a runbook fails, a drill finishes, an approval waits or verification finds damage.'),
    serve: z
      .object({
        listen: listenAddress.default('127.0.0.1:9464').describe('host:port `lifeboat serve` listens on (HTTP: /metrics, /status, /healthz).'),
        refreshSeconds: z
          .number()
          .int()
          .min(5)
          .default(60)
          .describe('How often `lifeboat serve` reads the repositories, the Temporal server and PostgreSQL again; a scrape is answered from the last read and never waits for one.'),
      })
      .strict()
      .default({ listen: '127.0.0.1:9464', refreshSeconds: 60 })
      .describe('`lifeboat serve`: the long-running HTTP process of monitoring (a Temporal client; it runs no activities).'),
    worker: z
      .object({
        metricsListen: listenAddress
          .optional()
          .describe('host:port where the worker exposes the Temporal SDK\'s own metrics for Prometheus (durations in seconds); unset: not exposed.'),
        maxConcurrentActivityTaskExecutions: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(4)
          .describe('Steps one worker runs at once; more wait in the task queue. Transfers are heavy: each holds a zstd process, a check thread and upload buffers.'),
        maxConcurrentWorkflowTaskExecutions: z
          .number()
          .int()
          .min(2)
          .max(200)
          .default(10)
          .describe('Workflow tasks (runbook decisions, short) one worker processes at once.'),
        maxCachedWorkflows: z
          .number()
          .int()
          .min(0)
          .max(10_000)
          .default(200)
          .describe('Runs whose state a worker keeps in memory between their steps (about 1 MB each); a run not cached is replayed from its history at its next step.'),
      })
      .strict()
      .default({ maxConcurrentActivityTaskExecutions: 4, maxConcurrentWorkflowTaskExecutions: 10, maxCachedWorkflows: 200 })
      .describe('Settings of `lifeboat worker`: its metrics and its limits (run more workers for more at once).'),
    chatops: chatopsSchema.optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const [channelName, channel] of Object.entries(config.notifications?.channels ?? {})) {
      channel.targets?.forEach((target, index) => {
        if (!(target in config.targets)) {
          ctx.addIssue({
            code: 'custom',
            path: ['notifications', 'channels', channelName, 'targets', index],
            message: `unknown target "${target}"; use one of: ${Object.keys(config.targets).join(', ') || '(none defined)'}`,
          });
        }
      });
    }
    config.chatops?.allow.forEach((rule, index) => {
      rule.targets.forEach((target, at) => {
        if (target !== '*' && !(target in config.targets)) {
          ctx.addIssue({ code: 'custom', path: ['chatops', 'allow', index, 'targets', at], message: `unknown target "${target}"; use one of: ${Object.keys(config.targets).join(', ') || '(none defined)'}, or "*"` });
        }
      });
    });
    const late = config.chatops?.slack.lateOutcomes;
    if (late !== undefined && config.notifications?.channels[late]?.type !== 'slack') {
      const slackChannels = Object.entries(config.notifications?.channels ?? {}).filter(([, channel]) => channel.type === 'slack').map(([channelName]) => channelName);
      ctx.addIssue({
        code: 'custom',
        path: ['chatops', 'slack', 'lateOutcomes'],
        message: `"${late}" is not a notifications channel of type slack; ${slackChannels.length ? `use one of: ${slackChannels.join(', ')}` : 'define one under notifications.channels'}`,
      });
    }
    for (const [targetName, target] of Object.entries(config.targets)) {
      for (const [key, schedule] of Object.entries(target.schedules)) {
        const at = (field: string) => ['targets', targetName, 'schedules', key, field];
        const methods = targetKindOf(target.type)?.methods ?? [];
        if (schedule.method !== undefined && !methods.includes(schedule.method)) {
          ctx.addIssue({
            code: 'custom',
            path: at('method'),
            message: methods.length
              ? `"${schedule.method}" is not a backup method of ${target.type} targets; use one of: ${methods.join(', ')}`
              : `method is for targets with several backup methods; "${targetName}" is a ${target.type} target, which has one`,
          });
        }
        for (const field of ['to', 'from'] as const) {
          const repository = schedule[field];
          if (repository !== undefined && !(repository in config.repositories)) {
            ctx.addIssue({ code: 'custom', path: at(field), message: `unknown repository "${repository}"; define it under repositories or use one of: ${Object.keys(config.repositories).join(', ')}` });
          } else if (repository !== undefined && !target.repositories.includes(repository)) {
            ctx.addIssue({ code: 'custom', path: at(field), message: `"${repository}" is not a repository of target "${targetName}"; a copy runs between the target's repositories: ${target.repositories.join(', ')}` });
          }
        }
        if (schedule.to !== undefined && schedule.to === schedule.from) {
          ctx.addIssue({ code: 'custom', path: at('from'), message: `from and to both name "${schedule.to}": a repository is copied from another one` });
        }
      }
      if (target.minCopies !== undefined && target.minCopies > target.repositories.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['targets', targetName, 'minCopies'],
          message: `${target.minCopies} copies cannot be made in ${target.repositories.length} ${target.repositories.length === 1 ? 'repository' : 'repositories'}; use at most ${target.repositories.length}, or add repositories`,
        });
      }
      if (target.minCopies !== undefined && target.minCopies < target.repositories.length && !targetKindOf(target.type)?.landsWithFewerCopies) {
        ctx.addIssue({
          code: 'custom',
          path: ['targets', targetName, 'minCopies'],
          message: `a ${target.type} target's backup cannot yet go on without one of its repositories: every repository takes every backup; remove minCopies (or set it to ${target.repositories.length}), and use \`lifeboat copy\` to bring a repository that missed backups up to date`,
        });
      }
      if (target.retention) checkRetention(target.retention, target.repositories, ['targets', targetName, 'retention'], ctx);
      target.repositories.forEach((repo, index) => {
        if (!(repo in config.repositories)) {
          ctx.addIssue({
            code: 'custom',
            path: ['targets', targetName, 'repositories', index],
            message: `unknown repository "${repo}"; define it under repositories or use one of: ${Object.keys(config.repositories).join(', ') || '(none defined)'}`,
          });
        }
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type RepositoryConfig = z.output<typeof repositorySchema>;
export type FsRepositoryConfig = z.output<typeof fsRepositorySchema>;
export type S3RepositoryConfig = z.output<typeof s3RepositorySchema>;
export type TargetConfig = z.output<typeof targetSchema>;
export type { SqliteTargetConfig } from '../kinds/sqlite/config.js';
export type { PostgresConnectionConfig, PostgresTargetConfig } from '../kinds/postgres/config.js';
export type { HooksConfig, Objectives, SmokeCheck } from './common.js';
export { overlapPolicies, scheduledRunbooks, scheduleSchema } from './schedules.js';
export type { OverlapPolicy, ScheduleConfig, ScheduledRunbook } from './schedules.js';
export { retentionSchema } from './retention.js';
export type { RetentionConfig } from './retention.js';
/** The task limits of one worker process (the `worker` section holds its metrics address too). */
export type WorkerLimits = Pick<z.output<typeof configSchema>['worker'], 'maxConcurrentActivityTaskExecutions' | 'maxConcurrentWorkflowTaskExecutions' | 'maxCachedWorkflows'>;
export type NotificationChannelConfig = z.output<typeof notificationChannelSchema>;
export type NotificationsConfig = NonNullable<Config['notifications']>;
export type { ChatopsCommand, ChatopsConfig, ChatopsRule } from './chatops.js';
export type NotificationEventType = (typeof notificationEventTypes)[number];
