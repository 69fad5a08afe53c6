import { z } from 'zod';
import { envVarName, name } from './common.js';
import { targetConfigSchema } from '../kinds/index.js';

/**
 * The one definition of lifeboat.config.yaml. Validation, defaults and the README's configuration
 * reference (npm run docs:config) all come from here: add an option here and nowhere else.
 *
 * Secrets never appear in this file's values: it holds references (environment variable names,
 * file paths) that activities resolve when they need the value.
 */

export const fsRepositorySchema = z
  .object({
    type: z.literal('fs').describe('A directory on a local or mounted disk.'),
    path: z.string().min(1).describe('Directory that holds the repository; created when missing.'),
  })
  .strict();

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
    partSizeMiB: z.number().int().min(5).max(512).default(8).describe('Multipart part size; larger payloads upload in parts. About three parts are buffered per upload; grown automatically when a payload of known size would need more than 9,000 parts.'),
  })
  .strict();

export const repositorySchema = z.discriminatedUnion('type', [fsRepositorySchema, s3RepositorySchema]);

/** A target is one of the kinds of src/kinds (their config schemas, told apart by `type`). */
export const targetSchema = targetConfigSchema;

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
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const [targetName, target] of Object.entries(config.targets)) {
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
export type { HooksConfig, SmokeCheck } from './common.js';
