/**
 * The steps of Redis runbooks (the worker-side half is src/kinds/redis/):
 *
 * - backup: a point-in-time RDB streamed from the live server into every repository, checked by
 *   redis-check-rdb on the way (stream-rdb-and-upload).
 * - restore: where the server keeps its data asked first (inspect-server); the RDB fetched beside
 *   the live one and checked; stop hook; the live RDB (and AOF directory) kept as the safety copy,
 *   the restored one put in place; start hook; health check; the server must hold the restored
 *   keys (key-count); any failure puts the safety copy back (replace-live.ts). With `into`: a file.
 * - drill: the newest backup fetched into scratch, loaded by a scratch redis-server, smoke-checked;
 *   the server and the directory always removed.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { compactTimestamp } from '../../src/backup-id.js';
import type { ResolvedRedisTarget } from '../../src/kinds/redis/index.js';
import type { RedisManifest } from '../../src/kinds/redis/manifest.js';
import { replaceLive } from '../replace-live.js';
import { failureMessage, formatBytes, manifestEnvelope, quickSteps, stepsWithin, transferSteps, type Timeline } from '../runbook.js';
import { defineTargetRunbooks } from './contract.js';

async function locateRedisBackup(timeline: Timeline, target: ResolvedRedisTarget, backupId?: string): Promise<RedisManifest> {
  const manifest = await timeline.run('locate-backup', () => quickSteps.locateBackup({ target, ...(backupId ? { backupId } : {}) }), (m) =>
    `backup ${m.id}, snapshot ${m.snapshotAt}${m.kind === 'redis' ? `, ${m.source.keys} keys, ${formatBytes(m.source.sizeBytes)} RDB` : ''}`,
  );
  if (manifest.kind !== 'redis') throw ApplicationFailure.nonRetryable(`backup ${manifest.id} is a ${manifest.kind} backup, not a Redis one`, 'BackupCorrupt');
  return manifest;
}

const fetched = (f: { sizeBytes: number; repository: string; keys: number }) => `${formatBytes(f.sizeBytes)} from ${f.repository}, sha256 ok; redis-check-rdb: ${f.keys} keys`;

export const redisRunbooks = defineTargetRunbooks<ResolvedRedisTarget>()({
  type: 'redis',
  methods: [],

  describe: (target) => `redis ${target.connection.tls ? 'rediss' : 'redis'}://${target.connection.user ? `${target.connection.user}@` : ''}${target.connection.host}:${target.connection.port}`,

  async backup({ timeline, target, backupId }) {
    const uploaded = await timeline.run('stream-rdb-and-upload', () => transferSteps.streamRdbAndUpload({ target, backupId }), (u) =>
      `${formatBytes(u.source.sizeBytes)} RDB (format ${u.source.rdbVersion}, ${u.source.keys} keys${u.source.checkedOnBackup ? ', redis-check-rdb ok' : ''}) at ${u.snapshotAt} -> ${formatBytes(u.object.sizeBytes)} stored`,
    );
    const manifest: RedisManifest = {
      ...manifestEnvelope('redis', target.name, backupId, uploaded),
      source: uploaded.source,
      objects: [uploaded.object],
      timeline: [],
    };
    return { manifest, sourceBytes: manifest.source.sizeBytes, details: { redis: { keys: uploaded.source.keys, rdbVersion: uploaded.source.rdbVersion } } };
  },

  async restore({ timeline, target, request }) {
    const manifest = await locateRedisBackup(timeline, target, request.backupId);

    if (request.into) {
      const into = request.into;
      await timeline.run('fetch-and-check', () => transferSteps.fetchRdb({ target, manifest, destination: into, refuseExisting: true }), fetched);
      return { backup: manifest, restoredTo: into, safetyCopy: null };
    }

    if (!target.hooks?.stop || !target.hooks.start) {
      throw ApplicationFailure.nonRetryable(
        `target "${target.name}" has no hooks.stop and hooks.start: a Redis restore in place replaces the server's files while it is stopped, and starts it to load them. Set both, or restore with --into`,
        'InvalidConfig',
      );
    }
    const files = await timeline.run('inspect-server', () => quickSteps.inspectRedisServer({ target }), (f) =>
      `RDB ${f.rdbPath}${f.aof ? `, AOF ${f.aof.dir} (the restored RDB becomes its base)` : ''} (from the ${f.from})`,
    );
    const info = workflowInfo();
    const run = `${compactTimestamp(new Date(info.startTime))}-${info.runId.replace(/-/g, '').slice(-8)}`;
    const staging = `${files.rdbPath}.lifeboat-restore-${run}`;
    let expected = { keys: manifest.source.keys, expires: manifest.source.expires, alreadyExpired: 0 };
    let swapped = { safetyCopy: null as string | null, aofSafetyCopy: null as string | null };
    const loadTimeout = target.restore.loadTimeoutSeconds;
    await replaceLive(timeline, target.hooks, {
      async stage() {
        const staged = await timeline.run('fetch-and-check', () => transferSteps.fetchRdb({ target, manifest, destination: staging, owner: files.owner }), fetched);
        expected = { keys: staged.keys, expires: staged.expires, alreadyExpired: staged.alreadyExpired };
      },
      async swap() {
        swapped = await timeline.run('swap', () => quickSteps.swapRdb({ target, files, run }), (s) =>
          [s.safetyCopy ? `previous RDB kept at ${s.safetyCopy}` : 'no previous RDB', s.aofSafetyCopy ? `previous AOF kept at ${s.aofSafetyCopy}` : ''].filter(Boolean).join('; '),
        );
        // What replaceLive rolls back from: anything that was replaced.
        return swapped.safetyCopy ?? swapped.aofSafetyCopy;
      },
      async verifyLive() {
        await timeline.run('key-count', () => stepsWithin(loadTimeout).checkRedisKeys({ target, expected, timeoutSeconds: loadTimeout }), (c) =>
          `${c.keys} keys loaded (the backup holds ${expected.keys})`,
        );
      },
      async rollback(_safetyCopy, error) {
        await timeline.run('rollback', () => quickSteps.rollbackRdb({ files, ...swapped }), (r) =>
          r.restored ? `previous data back in place (${failureMessage(error)})` : 'nothing to roll back',
        );
      },
      async cleanup() {
        await timeline.run('cleanup', () => quickSteps.removeRedisFiles({ paths: [staging] }));
      },
    });
    return { backup: manifest, restoredTo: files.rdbPath, safetyCopy: swapped.safetyCopy ?? swapped.aofSafetyCopy };
  },

  async drill({ timeline, target, restoring, cleanup, report }) {
    const manifest = await locateRedisBackup(timeline, target);
    restoring(manifest);
    const runName = workflowInfo().workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
    cleanup(() => timeline.run('remove-scratch', () => quickSteps.removeRedisScratch({ target, runName })));
    const scratch = await timeline.run('prepare-scratch', () => quickSteps.prepareRedisScratch({ target, runName }), (s) => s.dir);
    const staged = await timeline.run('fetch-and-check', () => transferSteps.fetchRdb({ target, manifest, destination: scratch.rdbPath, owner: scratch.owner }), fetched);
    const loaded = await timeline.run(
      'scratch-server',
      () => transferSteps.runRedisDrill({ target, dir: scratch.dir, expected: { keys: staged.keys, expires: staged.expires, alreadyExpired: staged.alreadyExpired } }),
      (d) => `redis-server on 127.0.0.1:${d.port} loaded it in ${d.loadMs} ms; ${d.checks.filter((c) => c.passed).length}/${d.checks.length} checks passed`,
    );
    report({ redis: { keys: staged.keys, loadMs: loaded.loadMs } });
    return { checks: loaded.checks };
  },
});

