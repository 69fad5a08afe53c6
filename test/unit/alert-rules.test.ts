/** The shipped alert rules and Prometheus config (deploy/prometheus/) are valid, and every alert has a promtool case that fires it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { projectRoot } from '../../src/dev/tools.js';

const dir = join(projectRoot, 'deploy', 'prometheus');
const rulesFile = join(dir, 'lifeboat-rules.yml');
const testsFile = join(dir, 'lifeboat-rules.test.yml');

test('promtool check rules accepts the shipped rules', async () => {
  const result = await execa('promtool', ['check', 'rules', rulesFile], { reject: false, all: true });
  assert.equal(result.exitCode, 0, result.all);
});

test('promtool check config accepts the Prometheus config of the docker-compose stack', async () => {
  const result = await execa('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { reject: false, all: true });
  assert.equal(result.exitCode, 0, result.all);
});

test('promtool test rules passes a case for every alert', async () => {
  const rules = parseYaml(readFileSync(rulesFile, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string }> }> };
  const cases = parseYaml(readFileSync(testsFile, 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }> };
  const alerts = rules.groups.flatMap((group) => group.rules.flatMap((rule) => (rule.alert ? [rule.alert] : [])));
  const fired = new Set(cases.tests.flatMap((c) => (c.alert_rule_test ?? []).filter((t) => (t.exp_alerts ?? []).length > 0).map((t) => t.alertname)));
  assert.deepEqual(alerts.filter((alert) => !fired.has(alert)), [], 'alerts without a case that fires them');
  const result = await execa('promtool', ['test', 'rules', testsFile], { cwd: dir, reject: false, all: true });
  assert.equal(result.exitCode, 0, result.all);
});
