/**
 * The steps of PostgreSQL runbooks (the worker-side half is src/kinds/postgres/). A run's method
 * chooses between pg_dump backups (dump.ts) and base backups (base.ts); the drill follows the
 * target's method (drill.ts). The pitr runbook (workflows/pitr.ts) is PostgreSQL's alone and uses
 * recovery.ts directly.
 */
import type { ResolvedPostgresTarget } from '../../../src/kinds/postgres/index.js';
import type { BackupOutcome } from '../contract.js';
import { defineTargetRunbooks } from '../contract.js';
import { backupBase, restoreBase, type BaseBackupDetails } from './base.js';
import { drillPostgres } from './drill.js';
import { backupDump, restoreDump, type DumpBackupDetails } from './dump.js';

export const postgresRunbooks = defineTargetRunbooks<ResolvedPostgresTarget>()({
  type: 'postgres',
  methods: ['dump', 'base'],

  describe: (target) =>
    `${target.type} ${target.connection.user}@${target.connection.host}:${target.connection.port}/${target.connection.database} (method ${target.method})`,

  backup: (run): Promise<BackupOutcome<Partial<DumpBackupDetails & BaseBackupDetails>>> => ((run.method ?? run.target.method) === 'base' ? backupBase(run) : backupDump(run)),

  restore: (run) => ((run.request.method ?? run.target.method) === 'base' ? restoreBase(run) : restoreDump(run)),

  drill: drillPostgres,
});
