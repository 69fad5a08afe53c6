/**
 * The steps of directory-tree runbooks, shared by the `files` and `secrets` kinds (each passes its
 * own activities, and says what of a backup leaves the worker: secrets, numbers only).
 *
 * - backup: pack-and-upload (one pass: tar parts and an index into every repository).
 * - restore --into: fetch-and-verify into a directory of this run beside the destination (every
 *   file's sha256 checked), then publish (one rename to the destination, which must not exist).
 * - restore in place: fetch-and-verify beside each live root, then replaceLive (replace-live.ts):
 *   stop hook, swap (what the restore does not cover carried over from the live root; the live root
 *   kept as safety copy), start hook, health check, verify-live (every restored entry hashed in
 *   place); on failure, the safety copies back.
 * - drill: the newest backup into a private scratch directory, every hash checked, smoke checks.
 */
import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { Reported, SmokeCheckResult } from '../../activities/index.js';
import { compactTimestamp } from '../../src/backup-id.js';
import type { StoredObject } from '../../src/repository/manifest-envelope.js';
import type { FetchTreeInput, PackedBackup, RestoredTree } from '../../src/tree/steps.js';
import type { RestoreScope, RootSwap } from '../../src/tree/swap.js';
import type { ResolvedTreeTarget } from '../../src/tree/target.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { replaceLive } from '../replace-live.js';
import { formatBytes, manifestEnvelope, quickSteps, type Timeline } from '../runbook.js';
import type { BackupOutcome, DrillOutcome, DrillRun, RestoreOutcome, RestoreRun } from './contract.js';

type TreeManifest = Extract<Manifest, { kind: 'files' | 'secrets' }>;

/** What the pack step returns to the workflow: a kind with secret names turns the names into counts. */
export type PackedSummary = Omit<PackedBackup, 'changedWhileRead' | 'skipped'> & { changedWhileRead: unknown; skipped: unknown };

/** A kind's activities for these steps (its own names, the same shapes). */
export interface TreeSteps<Target extends ResolvedTreeTarget, M extends TreeManifest, Packed extends PackedSummary> {
  pack(input: { target: Target; backupId: string }): Promise<Reported<Packed>>;
  fetch(input: FetchTreeInput & { target: Target; manifest: M }): Promise<Reported<RestoredTree>>;
  publish(input: { from: string; to: string }): Promise<Reported<{ adopted: boolean }>>;
  swap(input: { roots: RootSwap[]; scope: RestoreScope }): Promise<Reported<{ safetyCopies: string[]; carried: number }>>;
  rollback(input: { roots: RootSwap[] }): Promise<Reported<{ restored: number }>>;
  verify(input: { target: Target; manifest: M; places: Record<string, string>; paths?: string[] }): Promise<Reported<{ entries: number; files: number; bytes: number }>>;
  remove(input: { paths: string[] }): Promise<Reported<{ removed: number }>>;
  prepareScratch(input: { target: Target; runName: string }): Promise<Reported<{ dir: string }>>;
  smokeChecks(input: { target: Target; dir: string; restored: { entries: number; files: number; bytes: number } }): Promise<Reported<SmokeCheckResult[]>>;
}

export interface TreeKindSpec<Target extends ResolvedTreeTarget, M extends TreeManifest, Packed extends PackedSummary, Details extends object> {
  kind: M['kind'];
  /** Secrets: no --path (a glob would put a name in history), and step details say numbers only. */
  secret: boolean;
  steps: TreeSteps<Target, M, Packed>;
  /** The kind's `source` of the manifest, from what the pack step returned. */
  source(packed: Packed): M['source'];
  /** The kind's fields of the backup's result. */
  details(packed: Packed): Details;
}

/** Names of this run alone: two restores in the same second never share a staging or safety copy. */
function runName(): string {
  const info = workflowInfo();
  return `${compactTimestamp(new Date(info.startTime))}-${info.runId.replace(/-/g, '').slice(-8)}`;
}

function describeRestored(restored: RestoredTree): string {
  return `${restored.entries} entries (${restored.files} files, ${formatBytes(restored.bytes)}) from ${restored.partsFetched} of ${restored.partsInBackup} parts, via ${restored.repositories.join(', ')}; every sha256 ok`;
}

export function treeBackup<Target extends ResolvedTreeTarget, M extends TreeManifest, Packed extends PackedSummary, Details extends object>(spec: TreeKindSpec<Target, M, Packed, Details>) {
  return async ({ timeline, target, backupId }: { timeline: Timeline; target: Target; backupId: string }): Promise<BackupOutcome<Details>> => {
    const packed = await timeline.run('pack-and-upload', () => spec.steps.pack({ target, backupId }), (p) => {
      const changed = typeof p.changedWhileRead === 'number' ? p.changedWhileRead : (p.changedWhileRead as string[]).length;
      const stored = p.parts.reduce((sum, part) => sum + part.sizeBytes, p.index.sizeBytes);
      return `${p.counts.entries} entries (${p.counts.files} files, ${formatBytes(p.counts.bytes)}) in ${p.parts.length} ${p.parts.length === 1 ? 'part' : 'parts'} -> ${formatBytes(stored)} stored` +
        (changed > 0 ? `; ${changed} changed while read` : '');
    });
    const objects: StoredObject[] = [...packed.parts, packed.index].map(({ name, sizeBytes, sha256 }) => ({ name, sizeBytes, sha256 }));
    const manifest = {
      ...manifestEnvelope(spec.kind, target.name, backupId, packed),
      source: spec.source(packed),
      parts: packed.parts,
      index: packed.index,
      objects,
      timeline: [],
    } as unknown as M;
    return { manifest, sourceBytes: packed.counts.bytes, details: spec.details(packed) };
  };
}

async function locate<M extends TreeManifest>(timeline: Timeline, target: ResolvedTreeTarget, kind: M['kind'], backupId?: string): Promise<M> {
  const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : {}) }), (m) =>
    `backup ${m.id}, snapshot ${m.snapshotAt}${m.kind === kind ? `, ${(m as M).index.entries} entries` : ''}`,
  );
  if (manifest.kind !== kind) throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a ${kind} one`, 'BackupCorrupt');
  return manifest as M;
}

export function treeRestore<Target extends ResolvedTreeTarget, M extends TreeManifest, Packed extends PackedSummary, Details extends object>(spec: TreeKindSpec<Target, M, Packed, Details>) {
  const { steps } = spec;
  return async ({ timeline, target, request }: RestoreRun<Target>): Promise<RestoreOutcome> => {
    const paths = request.paths && request.paths.length > 0 ? request.paths : undefined;
    if (paths && spec.secret) throw ApplicationFailure.nonRetryable(`a ${target.type} target is restored whole: "paths" is refused`, 'InvalidInput');
    const manifest = await locate<M>(timeline, target, spec.kind, request.backupId);
    const run = runName();

    if (request.into) {
      const into = request.into.replace(/\/+$/, '');
      const container = `${into}.lifeboat-partial-${run}`;
      const destinations = Object.fromEntries(target.roots.map((root) => [root.name, `${container}/${root.name}`]));
      try {
        await timeline.run('fetch-and-verify', () => steps.fetch({ target, manifest, destinations, container, into, ...(paths ? { paths } : {}) }), describeRestored);
        await timeline.run('publish', () => steps.publish({ from: container, to: into }), (p) => (p.adopted ? `${into} (published by an earlier attempt)` : into));
      } catch (error) {
        await CancellationScope.nonCancellable(() => steps.remove({ paths: [container] })).catch(() => undefined);
        throw error;
      }
      return { backup: manifest, restoredTo: into, safetyCopy: null };
    }

    const swaps: RootSwap[] = target.roots.map((root) => ({ name: root.name, live: root.path, staging: `${root.path}.lifeboat-restore-${run}`, safety: `${root.path}.lifeboat-safety-${run}` }));
    let staged = swaps;
    const { safetyCopy } = await replaceLive(timeline, target.hooks, {
      async stage() {
        const destinations = Object.fromEntries(swaps.map((swap) => [swap.name, swap.staging]));
        const fetched = await timeline.run('fetch-and-verify', () => steps.fetch({ target, manifest, destinations, ...(paths ? { paths } : {}) }), describeRestored);
        staged = swaps.filter((swap) => fetched.roots.includes(swap.name));
      },
      async swap() {
        const scope: RestoreScope = { include: target.include, exclude: target.exclude, ...(paths ? { paths } : {}) };
        const swapped = await timeline.run('swap', () => steps.swap({ roots: staged, scope }), (s) =>
          `${staged.length} ${staged.length === 1 ? 'root' : 'roots'} swapped, ${s.carried} entries the backup does not cover carried over` +
          (s.safetyCopies.length ? `; previous trees kept at ${s.safetyCopies.join(', ')}` : '; nothing was live'),
        );
        return swapped.safetyCopies.length > 0 ? swapped.safetyCopies.join(', ') : null;
      },
      async verifyLive() {
        const places = Object.fromEntries(staged.map((swap) => [swap.name, swap.live]));
        await timeline.run('verify-live', () => steps.verify({ target, manifest, places, ...(paths ? { paths } : {}) }), (v) => `${v.entries} entries in place, ${v.files} files hash right`);
      },
      async rollback() {
        await timeline.run('rollback', () => steps.rollback({ roots: staged }), (r) => `${r.restored} ${r.restored === 1 ? 'root' : 'roots'} back as before the restore`);
      },
      async cleanup() {
        await timeline.run('cleanup', () => steps.remove({ paths: swaps.map((swap) => swap.staging) }));
      },
    });
    return { backup: manifest, restoredTo: staged.map((swap) => swap.live).join(', '), safetyCopy };
  };
}

export function treeDrill<Target extends ResolvedTreeTarget, M extends TreeManifest, Packed extends PackedSummary, Details extends object, DrillDetails extends object>(
  spec: TreeKindSpec<Target, M, Packed, Details>,
  reportOf: (restored: RestoredTree) => DrillDetails,
) {
  const { steps } = spec;
  return async ({ timeline, target, restoring, cleanup, report }: DrillRun<Target, DrillDetails>): Promise<DrillOutcome> => {
    const manifest = await locate<M>(timeline, target, spec.kind);
    restoring(manifest);
    const runNameOfDrill = workflowInfo().workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
    const scratch = await timeline.run('prepare-scratch', () => steps.prepareScratch({ target, runName: runNameOfDrill }), (s) => s.dir);
    cleanup(() => timeline.run('remove-scratch', () => steps.remove({ paths: [scratch.dir] })));
    const destinations = Object.fromEntries(target.roots.map((root) => [root.name, `${scratch.dir}/${root.name}`]));
    const restored = await timeline.run('fetch-and-verify', () => steps.fetch({ target, manifest, destinations, container: scratch.dir }), describeRestored);
    report(reportOf(restored));
    const checks = await timeline.run('smoke-checks', () => steps.smokeChecks({ target, dir: scratch.dir, restored }), (results) => `${results.filter((c) => c.passed).length}/${results.length} passed`);
    return { checks };
  };
}
