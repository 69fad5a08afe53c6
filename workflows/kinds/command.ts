/**
 * The steps of command runbooks (the worker-side half is src/kinds/command/):
 *
 * - backup: the backup command's stdout streamed into every repository (export-and-upload).
 * - restore: the verified payload piped into the restore command's stdin (pipe-into-command);
 *   with `into`, written to a new file instead (fetch-and-verify).
 * - drill: the newest backup decoded into a scratch directory, the configured checks run on it,
 *   the directory always removed.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { ResolvedCommandTarget } from '../../src/kinds/command/index.js';
import type { CommandManifest } from '../../src/kinds/command/manifest.js';
import { formatBytes, manifestEnvelope, quickSteps, transferSteps, type Timeline } from '../runbook.js';
import { defineTargetRunbooks } from './contract.js';

/** argv as one line for a step's detail (no quoting: it is for reading). */
const commandLine = (argv: readonly string[]) => argv.join(' ');

async function locateCommandBackup(timeline: Timeline, target: ResolvedCommandTarget, backupId?: string): Promise<CommandManifest> {
  const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : {}) }), (m) =>
    `backup ${m.id}, taken ${m.snapshotAt}${m.kind === 'command' ? `, ${formatBytes(m.source.sizeBytes)}` : ''}`,
  );
  if (manifest.kind !== 'command') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a command's`, 'BackupCorrupt');
  return manifest;
}

export const commandRunbooks = defineTargetRunbooks<ResolvedCommandTarget>()({
  type: 'command',
  methods: [],

  describe: (target) => `command \`${commandLine(target.backup.argv)}\``,

  async backup({ timeline, target, backupId }) {
    const exported = await timeline.run('export-and-upload', () => transferSteps.exportCommandAndUpload({ target, backupId }), (e) =>
      `${formatBytes(e.source.sizeBytes)} from \`${commandLine(e.source.argv)}\` in ${(e.source.durationMs / 1000).toFixed(1)} s -> ${formatBytes(e.object.sizeBytes)} stored`,
    );
    const manifest: CommandManifest = {
      ...manifestEnvelope('command', target.name, backupId, exported),
      source: exported.source,
      objects: [exported.object],
      timeline: [],
    };
    return { manifest, sourceBytes: manifest.source.sizeBytes, details: {} };
  },

  async restore({ timeline, target, request }) {
    if (!request.into && !target.restore) {
      throw ApplicationFailure.nonRetryable(`target "${target.name}" has no restore command: set restore.argv, or restore with --into <file>`, 'InvalidConfig');
    }
    const manifest = await locateCommandBackup(timeline, target, request.backupId);
    if (request.into) {
      const into = request.into;
      await timeline.run('fetch-and-verify', () => transferSteps.fetchCommandPayload({ target, manifest, destination: into, refuseExisting: true }), (f) =>
        `${formatBytes(f.sizeBytes)} from ${f.repository}, both checksums ok`,
      );
      return { backup: manifest, restoredTo: into, safetyCopy: null };
    }
    const restore = target.restore!;
    await timeline.run('pipe-into-command', () => transferSteps.pipePayloadIntoCommand({ target, manifest }), (p) =>
      `${formatBytes(p.sizeBytes)} from ${p.repository} into \`${commandLine(restore.argv)}\` (exited 0 after ${(p.durationMs / 1000).toFixed(1)} s)`,
    );
    return { backup: manifest, restoredTo: `piped into \`${commandLine(restore.argv)}\``, safetyCopy: null };
  },

  async drill({ timeline, target, restoring, cleanup }) {
    const manifest = await locateCommandBackup(timeline, target);
    restoring(manifest);
    const runName = workflowInfo().workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
    cleanup(() => timeline.run('remove-scratch', () => quickSteps.removeCommandScratch({ target, runName })));
    const scratch = await timeline.run('prepare-scratch', () => quickSteps.prepareCommandScratch({ target, runName }), (s) => s.dir);
    await timeline.run('fetch-and-verify', () => transferSteps.fetchCommandPayload({ target, manifest, destination: scratch.payloadPath }), (f) =>
      `${formatBytes(f.sizeBytes)} from ${f.repository}, both checksums ok`,
    );
    const checks = await timeline.run('checks', () => transferSteps.runCommandChecks({ target, dir: scratch.dir, payloadPath: scratch.payloadPath }), (results) =>
      `${results.filter((c) => c.passed).length}/${results.length} passed`,
    );
    return { checks };
  },
});
