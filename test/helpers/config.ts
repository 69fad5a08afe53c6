/** Config helpers the unit suites share. */
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { LifeboatError } from '../../src/errors.js';

/** The message of the InvalidConfig failure `raw` is refused with; fails the test when it is accepted. */
export function invalidConfigMessage(raw: unknown): string {
  try {
    parseConfig(raw, 'lifeboat.config.yaml');
  } catch (error) {
    assert.ok(error instanceof LifeboatError);
    assert.equal(error.type, 'InvalidConfig');
    return error.message;
  }
  assert.fail('the config was accepted');
}
