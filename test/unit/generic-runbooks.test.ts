/**
 * The generic runbooks do not know the kinds of target: they hand a target to whatever kind is
 * registered under its type (here a fake one), and their sources name no kind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/workflow';
import type { ResolvedTargetBase } from '../../activities/index.js';
import { projectRoot } from '../../src/dev/tools.js';
import { manifestKinds, targetKinds } from '../../src/kinds/index.js';
import { defineTargetRunbooks, type TargetRunbooks } from '../../workflows/kinds/contract.js';
import { describeTarget, methodOf, runbooksFor } from '../../workflows/targets.js';

interface NotesTarget extends ResolvedTargetBase {
  type: 'notes';
  directory: string;
}

/** A kind no registry knows: the dispatch must work for it as for the real ones. */
const notesRunbooks = defineTargetRunbooks<NotesTarget>()({
  type: 'notes',
  methods: ['copy', 'tar'],
  describe: (target) => `notes in ${target.directory}`,
  backup: () => Promise.reject(new Error('not run here')),
  restore: () => Promise.reject(new Error('not run here')),
  drill: () => Promise.reject(new Error('not run here')),
});
const plainRunbooks = defineTargetRunbooks<ResolvedTargetBase>()({ ...notesRunbooks, type: 'plain', methods: [], describe: () => 'plain' });
const registry = [notesRunbooks, plainRunbooks] as readonly TargetRunbooks[];

const notes: NotesTarget = {
  type: 'notes',
  name: 'journal',
  directory: '/srv/notes',
  repositories: [{ name: 'local', location: 'fs:/backups', config: { type: 'fs', path: '/backups' } }],
  compression: { level: 3, threads: 2 },
  encryption: { keyFile: '/etc/lifeboat/key', keyId: 'abc123' },
  drill: {},
};

function failureOf(run: () => unknown): ApplicationFailure {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ApplicationFailure, `an ApplicationFailure, got ${String(error)}`);
    return error;
  }
  assert.fail('it did not fail');
}

describe('the generic runbooks hand a target to its kind', () => {
  test('a target goes to the kind registered under its type, which describes it', () => {
    assert.equal(runbooksFor(notes, registry), notesRunbooks);
    assert.equal(describeTarget(notes, {}, registry), 'notes in /srv/notes');
    assert.equal(describeTarget(notes, { repositories: true }, registry), 'notes in /srv/notes -> local (encrypted, key abc123)');
  });

  test('a type no kind registers fails the run as a config the runbooks do not know, naming the ones they do', () => {
    const failure = failureOf(() => runbooksFor({ ...notes, type: 'tape' }, registry));
    assert.equal(failure.type, 'InvalidConfig');
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /target "journal" is of type "tape", and the runbooks know "notes", "plain" only/);
  });

  test('a run may choose one of its kind\'s methods, and nothing else', () => {
    assert.equal(methodOf({}, notes, notesRunbooks, registry), undefined);
    assert.equal(methodOf({ method: 'tar' }, notes, notesRunbooks, registry), 'tar');
    const wrong = failureOf(() => methodOf({ method: 'zip' }, notes, notesRunbooks, registry));
    assert.equal(wrong.type, 'InvalidInput');
    assert.match(wrong.message, /"method" is "zip"; a backup's method on a notes target is "copy" or "tar"/);
    const none = failureOf(() => methodOf({ method: 'tar' }, { ...notes, type: 'plain' }, plainRunbooks, registry));
    assert.equal(none.type, 'InvalidInput');
    assert.match(none.message, /target "journal" is a plain target; "method" applies to notes targets/);
  });
});

describe('the generic code names no kind of target', () => {
  /** Every file that serves all kinds. pitr.ts and the WAL commands are PostgreSQL's own, and not in this list. */
  const generic = [
    'workflows/backup.ts',
    'workflows/restore.ts',
    'workflows/drill.ts',
    'workflows/runbook.ts',
    'workflows/targets.ts',
    'workflows/replace-live.ts',
    'workflows/kinds/contract.ts',
    'activities/index.ts',
    'activities/target.ts',
    'activities/repository.ts',
    'activities/repositories.ts',
    'activities/hooks.ts',
    'src/client.ts',
    'src/config/load.ts',
    'src/kinds/contract.ts',
    'src/state/read.ts',
    'src/state/repository-facts.ts',
    'src/state/reports.ts',
    'src/check/run.ts',
    'workflows/telling.ts',
  ];
  const names = [...targetKinds.map((kind) => kind.type), ...manifestKinds.map((kind) => kind.kind)];

  /** The source without its comments: what the code does, not what it explains. */
  function code(file: string): string {
    return readFileSync(join(projectRoot, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:])\/\/.*$/gm, '$1');
  }

  for (const file of generic) {
    test(`${file} has no kind's name in its code`, () => {
      const source = code(file);
      for (const name of names) {
        assert.doesNotMatch(source, new RegExp(`['"\`]${name}['"\`]`), `${file} tests for the "${name}" kind; move that into the kind's module`);
        assert.doesNotMatch(source, new RegExp(`kinds/${name}[/.]`), `${file} imports the "${name}" kind; go through the registry`);
      }
    });
  }

  test('the CLI tests for no kind: its PostgreSQL-only commands (pitr, wal-push, wal-fetch, archive-status) load PostgreSQL\'s modules', () => {
    const source = code('src/cli.ts');
    for (const name of names) assert.doesNotMatch(source, new RegExp(`['"\`]${name}['"\`]`), `src/cli.ts tests for the "${name}" kind`);
  });
});
