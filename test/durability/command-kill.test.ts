/**
 * A command target's backup survives a killed worker: the worker (a child process) is SIGKILLed
 * while the command's output streams into the repositories; a new worker runs the command again
 * from the start and finishes. The repositories hold exactly the manifest's objects, the backup
 * restores to the second run's output, and the first run's command does not outlive its pipe.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { filesUnder, sha256 } from '../helpers/assertions.js';
import { activityRuns, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { testStack, type TestStack } from '../helpers/stack.js';
import { waitForStep } from '../helpers/steps.js';

describe('a command backup survives a killed worker', () => {
  let stack: TestStack;
  let lifeboat: Lifeboat;
  const marker = `lifeboat-kill-test-${randomBytes(4).toString('hex')}`;

  before(async () => {
    stack = await testStack();
    lifeboat = await createLifeboat('command-kill', { stack });
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        export: {
          type: 'command',
          repositories: ['local', 's3'],
          backup: {
            // 4 MiB, then wait for the go file (the test kills the worker meanwhile), then 4 MiB more.
            argv: ['sh', '-c', `head -c 4194304 /dev/urandom; while [ ! -e go ]; do sleep 0.05; done; head -c 4194304 /dev/urandom # ${marker}`],
            cwd: lifeboat.dir,
            timeoutSeconds: 300,
          },
        },
      }),
    );
  });

  after(async () => {
    await lifeboat?.close();
    await stack?.close();
  });

  test('SIGKILL mid-export: a new worker runs the command again; exactly the manifest\'s objects; no orphaned command', async () => {
    const first = lifeboat.spawnWorker();
    const handle = await lifeboat.start('backup', { target: 'export' });
    await waitForStep(lifeboat.client, handle.workflowId, (s) => s.activityType === 'exportCommandAndUpload' && (s.bytesDone ?? 0) > 0);
    first.kill('SIGKILL');
    await first.exited;
    await writeFile(join(lifeboat.dir, 'go'), '');
    lifeboat.spawnWorker();

    const result = (await handle.result()) as { backupId: string; sourceBytes: number };
    assert.equal(result.sourceBytes, 8 << 20);
    const runs = await activityRuns(lifeboat.client, handle.workflowId);
    assert.deepEqual(runs.scheduled, { resolveTarget: 1, exportCommandAndUpload: 1, writeManifest: 1, verifyStoredBackup: 1, recordAudit: 1 });
    assert.equal(runs.attempts.exportCommandAndUpload, 2, 'the interrupted export ran again on the new worker');
    const backupDir = join(lifeboat.dir, 'repository', 'export', 'backups', result.backupId);
    assert.deepEqual(await filesUnder(backupDir), ['attempt-2/payload.zst', 'manifest.json'], 'no half-written or duplicated object');

    const restored = join(lifeboat.dir, 'restored.bin');
    await lifeboat.run('restore', { target: 'export', backupId: result.backupId, into: restored });
    const manifest = JSON.parse(await readFile(join(backupDir, 'manifest.json'), 'utf8'));
    assert.equal(sha256(await readFile(restored)), manifest.source.sha256, 'the backup restores to what the second run exported');

    // The first run's command lost its reader with the worker: its next write ends it (SIGPIPE).
    for (const deadline = Date.now() + 10_000; ; await new Promise((resolve) => setTimeout(resolve, 100))) {
      const left = await execa('pgrep', ['-f', marker], { reject: false });
      if (left.exitCode !== 0) break;
      assert.ok(Date.now() < deadline, `the killed worker's command is still running: ${left.stdout}`);
    }
  });
});
