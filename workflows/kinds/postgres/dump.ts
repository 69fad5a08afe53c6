/**
 * Method "dump" of the postgres kind's backup and restore (pg_dump / pg_restore).
 */
import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { RestoredDump } from '../../../src/kinds/postgres/activities.js';
import type { ResolvedPostgresTarget } from '../../../src/kinds/postgres/index.js';
import type { PostgresDumpManifest } from '../../../src/kinds/postgres/manifest.js';
import { compactTimestamp } from '../../../src/backup-id.js';
import { acceptApproval } from '../../approval.js';
import { formatBytes, manifestEnvelope, quickSteps, transferSteps } from '../../runbook.js';
import type { BackupOutcome, BackupRun, RestoreOutcome, RestoreRun } from '../contract.js';
import { locatePostgresBackup } from './locate.js';

/** What a pg_dump backup adds to the backup's result. */
export interface DumpBackupDetails {
  /** The format, what it holds, and whether a scratch restore verified it. */
  dump: { format: 'directory' | 'custom'; tables: number; rows: number; verified: boolean };
}

/** PostgreSQL's limit on identifiers (NAMEDATALEN - 1), in bytes. */
const maxNameBytes = 63;

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** `prefix` + `suffix`, the prefix shortened (by whole characters) so the name fits in 63 bytes. */
function fitName(prefix: string, suffix: string): string {
  let head = prefix;
  while (head.length > 0 && byteLength(head + suffix) > maxNameBytes) head = head.slice(0, -1);
  return head + suffix;
}

/** "20261121_020000": a run's start time in database names (lowercase, no quoting needed). */
function nameStamp(date: Date): string {
  return compactTimestamp(date).replace('T', '_').replace('Z', '');
}

function describeRestore(r: RestoredDump): string {
  return `${formatBytes(r.storedBytes)} from ${r.repository}, sha256 ok (fetch ${(r.fetchMs / 1000).toFixed(1)} s); pg_restore into ${r.database} ${(r.restoreMs / 1000).toFixed(1)} s`;
}

/**
 * Backup of a postgres target: pg_dump from an exported snapshot streamed into every repository
 * (fingerprinting every table), then (dump.verify) a restore into a scratch database that must
 * hold exactly what was dumped; the runbook then writes the manifest. A dump that fails or does
 * not verify never gets a manifest (the runbook removes what it stored); the scratch database is
 * always dropped.
 */
export async function backupDump({ timeline, target, backupId }: BackupRun<ResolvedPostgresTarget>): Promise<BackupOutcome<DumpBackupDetails>> {
  const uploaded = await timeline.run('dump-and-upload', () => transferSteps.dumpAndUpload({ target, backupId }), (u) =>
    `${u.dump.format} dump (${u.dump.jobs} ${u.dump.jobs === 1 ? 'job' : 'jobs'}) of ${u.source.database} at snapshot ${u.snapshotAt}: ` +
    `${u.dump.tables.length} tables, ${u.dump.tables.reduce((sum, t) => sum + t.rows, 0)} rows, ${formatBytes(u.source.sizeBytes)} -> ` +
    `${formatBytes(u.objects.reduce((sum, o) => sum + o.sizeBytes, 0))} stored; pg_restore --list ok (${u.dump.tocEntries} entries)`,
  );
  const manifest: PostgresDumpManifest = {
    ...manifestEnvelope('postgres-dump', target.name, backupId, uploaded),
    source: uploaded.source,
    objects: uploaded.objects,
    dump: { ...uploaded.dump, verification: null },
    timeline: [],
  };

  if (target.dump.verify) {
    const scratch = fitName('lifeboat_verify_', backupId.toLowerCase().replace(/-/g, '_'));
    let verifyError: unknown;
    try {
      const verified = await timeline.run('verify-restore', () => transferSteps.restoreDump({ target, manifest, database: scratch, verify: true }), (r) =>
        `${describeRestore(r)}; ${r.tables} tables, ${r.rows} rows: row counts and checksums match the dump`,
      );
      manifest.dump.verification = {
        method: 'scratch-restore',
        verifiedAt: new Date().toISOString(),
        tables: verified.tables,
        rows: verified.rows,
        durationMs: verified.fetchMs + verified.restoreMs + (verified.verifyMs ?? 0),
      };
    } catch (error) {
      verifyError = error;
    }
    // The scratch database goes, whatever happened (also when the run is cancelled).
    await CancellationScope.nonCancellable(() =>
      timeline.run('drop-scratch', () => quickSteps.dropRunDatabase({ target, database: scratch }), (d) => (d.dropped ? `dropped ${scratch}` : `${scratch} did not exist`)),
    ).catch((error: unknown) => {
      verifyError ??= error;
    });
    if (verifyError !== undefined) throw verifyError;
  } else {
    timeline.skip('verify-restore', 'dump.verify is off');
  }

  return {
    manifest,
    sourceBytes: uploaded.source.sizeBytes,
    details: {
      dump: {
        format: manifest.dump.format,
        tables: manifest.dump.tables.length,
        rows: manifest.dump.tables.reduce((sum, t) => sum + t.rows, 0),
        verified: manifest.dump.verification !== null,
      },
    },
  };
}

/**
 * Restore of a postgres target into a database: a new one by default (`<db>_restored_<stamp>`), or
 * `into`. The dump is fetched and verified, then restored into a staging database named per run;
 * only then is it renamed to `into`. When `into` exists, replacing it needs replaceExisting (the
 * CLI's --yes) or an approval Update; the old database is kept under a safety name. Whatever
 * fails or is not approved, the staging database is dropped and `into` is untouched.
 */
export async function restoreDump({ timeline, target, request: input }: RestoreRun<ResolvedPostgresTarget>): Promise<RestoreOutcome> {
  const info = workflowInfo();
  const located = await locatePostgresBackup(timeline, target, 'postgres-dump', input.backupId);
  const manifest = located;
  const stamp = nameStamp(new Date(info.startTime));
  const into = input.into ?? fitName(manifest.source.database, `_restored_${stamp}`);
  if (into.length === 0 || byteLength(into) > maxNameBytes || into.includes('\0')) {
    throw ApplicationFailure.nonRetryable(`"${into}" is not a valid database name (1 to ${maxNameBytes} bytes)`, 'InvalidInput');
  }
  const staging = fitName('lifeboat_restore_', `${stamp}_${info.runId.replace(/-/g, '').slice(-8)}`);

  const destination = await timeline.run('inspect-destination', () => quickSteps.inspectDatabase({ target, database: into }), (d) =>
    d.exists ? `${into} exists: replacing it ${input.replaceExisting ? 'was confirmed (--yes)' : 'needs an approval'}` : `${into} is a new database`,
  );
  // Accepted from now on, so an operator can approve while the restore is still running.
  const approval = destination.exists && !input.replaceExisting ? acceptApproval() : undefined;

  let swapped = false;
  try {
    await timeline.run('fetch-and-restore', () => transferSteps.restoreDump({ target, manifest, database: staging, verify: false }), describeRestore);
    let safety: string | null = null;
    if (destination.exists) {
      if (input.replaceExisting) timeline.skip('await-approval', 'replacing was confirmed up front (--yes)');
      else {
        await approval!.awaitAnswer(timeline, target.dump.approvalTimeoutSeconds, (decision) =>
          decision
            ? `replacing database ${into} was rejected${decision.by ? ` by ${decision.by}` : ''}; the restored copy was dropped and ${into} was not touched`
            : `replacing database ${into} needs an approval, and none came within ${target.dump.approvalTimeoutSeconds} s; the restored copy was dropped and ${into} was not touched`,
          `replace database ${into} by the restored backup ${manifest.id} (the current one is kept as a safety copy)`,
        );
      }
      safety = fitName(into, `_lifeboat_safety_${stamp}`);
    }
    const swap = await timeline.run('swap', () => quickSteps.swapDatabase({ target, staging, into, safety }), (s) =>
      s.safetyDatabase ? `${into} replaced; the previous database is kept as ${s.safetyDatabase}` : `restored as ${into}`,
    );
    swapped = true;
    return { backup: manifest, restoredTo: into, safetyCopy: swap.safetyDatabase };
  } catch (error) {
    if (!swapped) {
      await CancellationScope.nonCancellable(() =>
        timeline.run('cleanup', () => quickSteps.dropRunDatabase({ target, database: staging }), (d) => (d.dropped ? `dropped ${staging}` : 'nothing to drop')),
      ).catch(() => undefined);
    }
    throw error;
  }
}
