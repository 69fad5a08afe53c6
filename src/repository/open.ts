import type { RepositoryConfig } from '../config/schema.js';
import type { Backend } from './backend.js';
import { FsBackend } from './fs/backend.js';
import { S3Backend } from './s3/backend.js';

/**
 * The one place that knows which Backend implements which repository type. Opening does no I/O;
 * an S3 repository reads its credentials from env now, so a missing variable fails here with
 * LifeboatError('CredentialsUnavailable') rather than halfway through a runbook.
 */
export function openBackend(config: RepositoryConfig, env: NodeJS.ProcessEnv = process.env): Backend {
  switch (config.type) {
    case 'fs':
      return new FsBackend(config);
    case 's3':
      return new S3Backend(config, env);
    default: {
      const unknown: never = config;
      throw new Error(`unsupported repository type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}
