import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCheck, type CheckResult } from '../../src/check/result.js';
import { blobsTargetSchema } from '../../src/kinds/blobs/config.js';
import { preflightBlobs } from '../../src/kinds/blobs/preflight.js';

/** `lifeboat check` of a blobs target: the tree a backup would read, and the drill's scratch directory. */
describe('blobs preflight', () => {
  let dir: string;
  const checked = async (target: Record<string, unknown>): Promise<CheckResult[]> => {
    const results: CheckResult[] = [];
    const config = blobsTargetSchema.parse({ type: 'blobs', repositories: ['local'], ...target });
    await preflightBlobs('uploads', config, {
      configPath: join(dir, 'lifeboat.config.yaml'),
      env: {},
      repositories: [],
      timeoutMs: 5_000,
      archiveTimeoutMs: 5_000,
      check: async (...args) => {
        const result = await runCheck(...args);
        results.push(result);
        return result;
      },
    });
    return results;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-blobs-preflight-'));
    await mkdir(join(dir, 'uploads', 'products'), { recursive: true });
    await writeFile(join(dir, 'uploads', 'a.jpg'), 'x');
    await writeFile(join(dir, 'a-file'), 'x');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a readable tree passes, saying what it found', async () => {
    const [result] = await checked({ path: join(dir, 'uploads') });
    assert.deepEqual({ area: result?.area, status: result?.status }, { area: 'source', status: 'ok' });
    assert.equal(result?.detail, 'a directory this user can read (2 entries at its top level)');
  });

  test('a missing root, a file as root and a missing scratch directory each fail naming the field to fix', async () => {
    const [missing] = await checked({ path: join(dir, 'nope') });
    assert.equal(missing?.status, 'failed');
    assert.match(missing?.detail ?? '', /nope does not exist/);
    assert.match(missing?.fix ?? '', /targets\.uploads\.path/);
    const [file] = await checked({ path: join(dir, 'a-file') });
    assert.match(file?.detail ?? '', /is not a directory/);
    const [, scratch] = await checked({ path: join(dir, 'uploads'), drill: { scratchDir: join(dir, 'no-scratch') } });
    assert.equal(scratch?.status, 'failed');
    assert.match(scratch?.fix ?? '', /targets\.uploads\.drill\.scratchDir/);
  });
});
