/**
 * Determinism: histories of real runs replay against the current workflow code. A workflow change
 * that would break runs already in flight (a step added, removed or reordered without a patch)
 * fails here instead of in production.
 *
 * The fixtures in test/fixtures/histories were recorded by scripts/record-histories.ts; this file
 * also records fresh histories of the same scenarios and replays those, and checks the fixtures
 * still take the same steps as the code does now, so a stale fixture is noticed.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { Worker, type ReplayWorkerOptions } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import {
  fixturePath,
  fixturesDir,
  historyFromJson,
  historyToJson,
  readHistoryFile,
  recordHistories,
  scenarios,
  type RecordedHistory,
  type Scenario,
} from '../../scripts/record-histories.js';
import { createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';
import { workflowsEntry } from '../helpers/stack.js';

const rerecord = 'node --import tsx scripts/record-histories.ts';

/** What a run did, in the terms that determinism is about: the activities it scheduled, in order, and how it ended. */
function steps(history: History): string[] {
  const shape: string[] = [];
  for (const event of history.events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes?.activityType?.name;
    if (scheduled) shape.push(scheduled);
    if (event.workflowExecutionCompletedEventAttributes) shape.push('(completed)');
    if (event.workflowExecutionFailedEventAttributes) shape.push('(failed)');
  }
  return shape;
}

describe('recorded workflow histories replay against the current workflow code', () => {
  let lifeboat: Lifeboat;
  let recording: Promise<RecordedHistory[]> | undefined;
  /** Fresh histories of every scenario, recorded once for the tests that need them. */
  const freshHistories = () => (recording ??= recordHistories(lifeboat));

  /** The same workflow code the workers run: the stack's bundle when there is one. */
  const replayOptions = (): ReplayWorkerOptions =>
    lifeboat.stack.workflowBundlePath ? { workflowBundle: { codePath: lifeboat.stack.workflowBundlePath } } : { workflowsPath: workflowsEntry };

  /**
   * Replays one history and returns its error, if any. One replay worker per history: runs of the
   * same runbook started within one second share a workflow id, and results are keyed by it.
   */
  async function replay(workflowId: string, history: History): Promise<Error | undefined> {
    const results: Array<Error | undefined> = [];
    for await (const result of Worker.runReplayHistories(replayOptions(), [{ workflowId, history }])) results.push(result.error);
    assert.equal(results.length, 1, `${workflowId} was replayed`);
    return results[0];
  }

  async function fixtures(): Promise<Map<Scenario, { workflowId: string; history: History }>> {
    const loaded = new Map<Scenario, { workflowId: string; history: History }>();
    for (const scenario of scenarios) loaded.set(scenario, await readHistoryFile(fixturePath(scenario)));
    return loaded;
  }

  before(async () => {
    lifeboat = await createLifeboat('replay');
    await lifeboat.startWorker();
  });

  after(async () => {
    await lifeboat?.close();
  });

  test('every fixture in test/fixtures/histories replays without a determinism error', async () => {
    const files = (await readdir(fixturesDir)).filter((name) => name.endsWith('.json')).sort();
    assert.deepEqual(files, scenarios.map((s) => `${s}.json`).sort(), `one fixture per scenario; record them with \`${rerecord}\``);
    for (const [scenario, { workflowId, history }] of await fixtures()) {
      const error = await replay(workflowId, history);
      assert.equal(error, undefined, `${scenario} (${workflowId}) no longer replays: ${error?.message}`);
    }
  });

  test('histories of older workflow code (test/fixtures/histories/older: runs of it may still be open after a deploy) replay too', async () => {
    const olderDir = join(fixturesDir, 'older');
    const files = (await readdir(olderDir)).filter((name) => name.endsWith('.json')).sort();
    assert.ok(files.length > 0, `${olderDir} holds the histories kept when a runbook changed behind patched()`);
    for (const file of files) {
      const { workflowId, history } = await readHistoryFile(join(olderDir, file));
      const error = await replay(workflowId, history);
      assert.equal(error, undefined, `older/${file} (${workflowId}) no longer replays: ${error?.message}`);
    }
  });

  test('fresh histories of every scenario, recorded now and round-tripped through the fixture format, replay too', async () => {
    const fresh = await freshHistories();
    assert.deepEqual(fresh.map((h) => h.scenario), [...scenarios]);
    const roundTripped = fresh.map(({ workflowId, history }) => ({ workflowId, history: historyFromJson(JSON.parse(historyToJson(history))) }));
    for (const [index, { history }] of roundTripped.entries()) {
      assert.deepEqual(steps(history), steps(fresh[index]!.history), 'the JSON round trip keeps every event');
      assert.equal(history.events?.length, fresh[index]!.history.events?.length);
    }
    for (const [index, { workflowId, history }] of roundTripped.entries()) {
      const { scenario } = fresh[index]!;
      const error = await replay(workflowId, history);
      assert.equal(error, undefined, `fresh ${scenario} (${workflowId}) does not replay: ${error?.message}`);
    }
  });

  test('the fixtures take the same steps as the runbooks do now (otherwise they are stale: re-record them)', async () => {
    const loaded = await fixtures();
    for (const { scenario, history } of await freshHistories()) {
      assert.deepEqual(
        steps(loaded.get(scenario)!.history),
        steps(history),
        `test/fixtures/histories/${scenario}.json is stale: the ${scenario} runbook now takes other steps. ` +
          `If runs of the old code can still be open, keep the old file under a new name and patch() the change; then \`${rerecord}\``,
      );
    }
  });

  test('replay is not vacuous: a history whose steps differ from the code fails with a determinism error', async () => {
    const { workflowId, history } = (await fixtures()).get('drill-passed')!;
    // As if the drill used to call another activity where it now calls locateBackup.
    const altered = historyFromJson(JSON.parse(historyToJson(history).replaceAll('"name": "locateBackup"', '"name": "findNewestBackup"')));
    assert.ok(steps(altered).includes('findNewestBackup'), 'the history was altered');
    const error = await replay(workflowId, altered);
    assert.ok(error instanceof DeterminismViolationError, `expected a DeterminismViolationError, got ${error ? `${error.name}: ${error.message}` : 'none'}`);
  });
});
