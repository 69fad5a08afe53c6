/**
 * The PostgreSQL logical-backup paths of the backup and restore runbooks (pg_dump / pg_restore).
 * backup.ts and restore.ts dispatch here after resolve-target when the target is a postgres one.
 */
import { ApplicationFailure, CancellationScope, uuid4, workflowInfo } from '@temporalio/workflow';
import type { ResolvedPostgresTarget, RestoredDump } from '../activities/index.js';
import { compactTimestamp, makeBackupId } from '../src/backup-id.js';
import type { PostgresDumpManifest } from '../src/repository/manifest.js';
import { acceptApproval } from './approval.js';
import type { BackupResult } from './backup.js';
import type { RestoreInput, RestoreResult } from './restore.js';
import { discardUnfinishedBackup, formatBytes, manifestEnvelope, quickSteps, transferSteps, writeManifestAndVerify, type Timeline } from './runbook.js';
import { locatePostgresBackup } from './targets.js';

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
 * hold exactly what was dumped, then the manifest. A dump that fails or does not verify is
 * removed from the repositories and never gets a manifest; the scratch database is always dropped.
 */
export async function backupPostgresDump(timeline: Timeline, target: ResolvedPostgresTarget): Promise<BackupResult> {
  const backupId = makeBackupId(new Date(), uuid4().replace(/-/g, ''));
  let manifestWritten = false;
  try {
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

    manifest.timeline = timeline.steps.map((step) => ({ ...step }));
    const { durableAt } = await writeManifestAndVerify(timeline, target, manifest, { one: 'object', many: 'objects' }, () => (manifestWritten = true));
    return {
      backupId,
      target: target.name,
      kind: 'postgres-dump',
      snapshotAt: uploaded.snapshotAt,
      sourceBytes: uploaded.source.sizeBytes,
      storedBytes: uploaded.objects.reduce((sum, o) => sum + o.sizeBytes, 0),
      repositories: uploaded.repositories,
      secondsToDurable: Math.max(0, (durableAt - Date.parse(uploaded.snapshotAt)) / 1000),
      dump: {
        format: manifest.dump.format,
        tables: manifest.dump.tables.length,
        rows: manifest.dump.tables.reduce((sum, t) => sum + t.rows, 0),
        verified: manifest.dump.verification !== null,
      },
      timeline: timeline.steps,
    };
  } catch (error) {
    if (!manifestWritten) await discardUnfinishedBackup(timeline, target, backupId, error);
    throw error;
  }
}

/**
 * Restore of a postgres target into a database: a new one by default (`<db>_restored_<stamp>`), or
 * `into`. The dump is fetched and verified, then restored into a staging database named per run;
 * only then is it renamed to `into`. When `into` exists, replacing it needs replaceExisting (the
 * CLI's --yes) or an approval Update; the old database is kept under a safety name. Whatever
 * fails or is not approved, the staging database is dropped and `into` is untouched.
 */
export async function restorePostgresDump(timeline: Timeline, target: ResolvedPostgresTarget, input: RestoreInput): Promise<RestoreResult> {
  const info = workflowInfo();
  const located = await locatePostgresBackup(timeline, target, 'postgres-dump', input.backupId);
  const manifest = located;
  const stamp = nameStamp(new Date(info.startTime));
  const into = input.into ?? fitName(manifest.source.database, `_restored_${stamp}`);
  if (into.length === 0 || byteLength(into) > maxNameBytes || into.includes('\0')) {
    throw ApplicationFailure.nonRetryable(`"${into}" is not a valid database name (1 to ${maxNameBytes} bytes)`, 'InvalidInput');
  }
  const staging = fitName('lifeboat_restore_', `${stamp}_${info.runId.replace(/-/g, '').slice(-8)}`);
  const base = { target: target.name, backupId: manifest.id, backupKind: manifest.kind, snapshotAt: manifest.snapshotAt };

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
    return { ...base, restoredTo: into, safetyCopy: swap.safetyDatabase, timeline: timeline.steps };
  } catch (error) {
    if (!swapped) {
      await CancellationScope.nonCancellable(() =>
        timeline.run('cleanup', () => quickSteps.dropRunDatabase({ target, database: staging }), (d) => (d.dropped ? `dropped ${staging}` : 'nothing to drop')),
      ).catch(() => undefined);
    }
    throw error;
  }
}
