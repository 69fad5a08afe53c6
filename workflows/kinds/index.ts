/**
 * The kinds of target the runbooks know (the workflow-side halves; the worker-side halves are
 * listed in src/kinds/index.ts, and a unit test checks that both lists agree). Adding a kind: its
 * module under workflows/kinds/, and one line here.
 */
import { blobsRunbooks } from './blobs.js';
import { commandRunbooks } from './command.js';
import { filesRunbooks } from './files.js';
import { postgresRunbooks } from './postgres/index.js';
import { redisRunbooks } from './redis.js';
import { secretsRunbooks } from './secrets.js';
import { sqliteRunbooks } from './sqlite.js';

export const targetRunbooks = [sqliteRunbooks, postgresRunbooks, filesRunbooks, secretsRunbooks, blobsRunbooks, redisRunbooks, commandRunbooks] as const;
