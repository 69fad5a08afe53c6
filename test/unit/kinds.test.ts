/**
 * The registries of kinds of target: every kind has both halves (the worker side in src/kinds/,
 * the workflow side in workflows/kinds/), and the unions built from the registry (targets in the
 * config, manifests, activities) hold exactly the registered kinds' parts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { z } from 'zod';
import { createActivities } from '../../activities/index.js';
import { projectRoot } from '../../src/dev/tools.js';
import { manifestKinds, targetConfigSchema, targetKinds, targetKindOfBackup } from '../../src/kinds/index.js';
import { manifestSchema } from '../../src/repository/manifest.js';
import { targetRunbooks } from '../../workflows/kinds/index.js';

/** The values of a discriminated union's discriminator, one per option. */
function discriminators(union: z.ZodDiscriminatedUnion, key: string): string[] {
  return (union.options as z.ZodObject[]).map((option) => String((option.shape[key] as z.ZodLiteral).value));
}

describe('the kinds of target', () => {
  test('every kind has a worker-side and a workflow-side half, registered under the same type, with the same backup methods', () => {
    assert.deepEqual(targetRunbooks.map((kind) => kind.type).sort(), targetKinds.map((kind) => kind.type).sort());
    for (const kind of targetKinds) {
      const runbooks = targetRunbooks.find((candidate) => candidate.type === kind.type);
      assert.deepEqual(runbooks?.methods, kind.methods, `the two halves of "${kind.type}" accept the same methods`);
    }
    assert.equal(new Set(targetKinds.map((kind) => kind.type)).size, targetKinds.length, 'no type is registered twice');
  });

  test('a target in the config is one of the registered kinds, and every registered kind can be configured', () => {
    assert.deepEqual(discriminators(targetConfigSchema as unknown as z.ZodDiscriminatedUnion, 'type'), targetKinds.map((kind) => kind.type));
  });

  test('a stored manifest is read as one of the registered kinds of backup, each made by exactly one kind of target', () => {
    const kinds = manifestKinds.map((kind) => kind.kind);
    assert.deepEqual(discriminators(manifestSchema as unknown as z.ZodDiscriminatedUnion, 'kind'), kinds);
    assert.equal(new Set(kinds).size, kinds.length, 'no kind of backup is made by two kinds of target');
    for (const kind of kinds) assert.ok(targetKindOfBackup(kind), `a kind of target makes "${kind}" backups`);
  });

  test('the activity names of the kinds are unique, and every activity a recorded history schedules is still registered', async () => {
    const env = {};
    const tables = await Promise.all(targetKinds.map(async (kind) => ({ type: kind.type, names: Object.keys(await kind.activities({ configPath: '/nonexistent', env })) })));
    const all = tables.flatMap((table) => table.names);
    assert.equal(new Set(all).size, all.length, `no two kinds name an activity alike: ${JSON.stringify(tables)}`);

    const registered = new Set(Object.keys(await createActivities({ configPath: '/nonexistent', env })));
    for (const name of all) assert.ok(registered.has(name), `${name} is registered by the worker`);

    const dir = join(projectRoot, 'test', 'fixtures', 'histories');
    const scheduled = new Set<string>();
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.json'))) {
      const history = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { events: Array<{ activityTaskScheduledEventAttributes?: { activityType: { name: string } } }> };
      for (const event of history.events) {
        const name = event.activityTaskScheduledEventAttributes?.activityType.name;
        if (name) scheduled.add(name);
      }
    }
    assert.ok(scheduled.size > 10, 'the fixtures schedule activities');
    for (const name of scheduled) assert.ok(registered.has(name), `the activity type "${name}" of a recorded history is still registered (renaming one breaks runs in flight)`);
  });
});
