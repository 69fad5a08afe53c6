import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { LifeboatError } from '../../src/errors.js';
import { invalidConfigMessage } from '../helpers/config.js';

const valid = {
  repositories: { local: { type: 'fs', path: '/var/backups/lifeboat' } },
  targets: { orders: { type: 'sqlite', path: '/srv/orders.sqlite', repositories: ['local'] } },
};

describe('configuration', () => {
  test('a minimal config gets its defaults from the schema', () => {
    const config = parseConfig(valid, 'test');
    const orders = config.targets.orders;
    assert.equal(orders?.type, 'sqlite');
    assert.equal(config.compression.level, 3);
    assert.equal(config.compression.threads, 2);
    assert.equal(config.temporal.taskQueue, 'lifeboat');
    assert.deepEqual(orders.checks, { backup: 'quick_check', restore: 'integrity_check' });
    assert.deepEqual(orders.drill.smokeChecks, []);
  });

  test('a wrong type names the field, what was expected and what was found', () => {
    const message = invalidConfigMessage({ ...valid, targets: { orders: { ...valid.targets.orders, path: 42 } } });
    assert.match(message, /targets\.orders\.path/);
    assert.match(message, /expected string/);
    assert.match(message, /found number 42/);
  });

  test('an unknown field is reported with its name', () => {
    const message = invalidConfigMessage({ ...valid, targets: { orders: { ...valid.targets.orders, pth: 'x' } } });
    assert.match(message, /targets\.orders/);
    assert.match(message, /pth/);
  });

  test('a target that names an undefined repository says which ones exist', () => {
    const message = invalidConfigMessage({ ...valid, targets: { orders: { ...valid.targets.orders, repositories: ['offsite'] } } });
    assert.match(message, /targets\.orders\.repositories\.0: unknown repository "offsite"/);
    assert.match(message, /local/);
  });

  test('minCopies below the number of repositories is refused for a kind whose backups cannot land with fewer copies, and taken for one that can', () => {
    const repositories = { local: { type: 'fs', path: '/b/local' }, offsite: { type: 'fs', path: '/b/offsite' } };
    const message = invalidConfigMessage({ repositories, targets: { etc: { type: 'files', roots: ['/etc'], repositories: ['local', 'offsite'], minCopies: 1 } } });
    assert.match(message, /targets\.etc\.minCopies: a files target's backup cannot yet go on without one of its repositories: every repository takes every backup; remove minCopies \(or set it to 2\)/);
    const sqlite = parseConfig({ repositories, targets: { orders: { type: 'sqlite', path: '/srv/orders.sqlite', repositories: ['local', 'offsite'], minCopies: 1 } } }, 'lifeboat.config.yaml');
    assert.equal(sqlite.targets.orders!.minCopies, 1);
    parseConfig({ repositories, targets: { etc: { type: 'files', roots: ['/etc'], repositories: ['local', 'offsite'], minCopies: 2 } } }, 'lifeboat.config.yaml');
  });

  test('S3 credentials must be environment variable names, not values', () => {
    const message = invalidConfigMessage({
      ...valid,
      repositories: { s3: { type: 's3', bucket: 'backups', accessKeyIdEnv: 'AKIA/xyz+secret', secretAccessKeyEnv: 'S3_SECRET' } },
      targets: { orders: { ...valid.targets.orders, repositories: ['s3'] } },
    });
    assert.match(message, /repositories\.s3\.accessKeyIdEnv: the NAME of an environment variable/);
  });

  test('a target name that breaks the naming rule says the rule and the name', () => {
    const message = invalidConfigMessage({ ...valid, targets: { 'Bad Name': valid.targets.orders } });
    assert.match(message, /targets\.Bad Name: a name must be lowercase letters, digits, "-" or "_", starting with a letter or digit \(found the name "Bad Name"\)/);
  });

  test("a smoke check's expected value of the wrong type says which types it may be", () => {
    const message = invalidConfigMessage({
      ...valid,
      targets: { orders: { ...valid.targets.orders, drill: { smokeChecks: [{ name: 'up', sql: 'SELECT 1', expect: true }] } } },
    });
    assert.match(message, /targets\.orders\.drill\.smokeChecks\.0\.expect: expected a string, a number or null \(found boolean true\)/);
  });

  test('a health URL or S3 endpoint without http:// or https:// is refused before any restore relies on it', () => {
    const health = invalidConfigMessage({ ...valid, targets: { orders: { ...valid.targets.orders, hooks: { healthUrl: 'localhost:8080/health' } } } });
    assert.match(health, /targets\.orders\.hooks\.healthUrl: expected an http:\/\/ or https:\/\/ URL \(found string "localhost:8080\/health"\)/);
    const endpoint = invalidConfigMessage({
      ...valid,
      repositories: { s3: { type: 's3', bucket: 'backups', endpoint: 'minio:9000', accessKeyIdEnv: 'S3_KEY', secretAccessKeyEnv: 'S3_SECRET' } },
      targets: { orders: { ...valid.targets.orders, repositories: ['s3'] } },
    });
    assert.match(endpoint, /repositories\.s3\.endpoint: expected an http:\/\/ or https:\/\/ URL/);
  });

  test('a secret pasted where an environment variable name belongs is not repeated in the error', () => {
    const pasted = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    const message = invalidConfigMessage({
      ...valid,
      repositories: { s3: { type: 's3', bucket: 'backups', accessKeyIdEnv: 'S3_KEY', secretAccessKeyEnv: pasted } },
      targets: { orders: { ...valid.targets.orders, repositories: ['s3'] } },
    });
    assert.match(message, /repositories\.s3\.secretAccessKeyEnv: the NAME of an environment variable .*not shown/);
    assert.equal(message.includes(pasted), false, 'the pasted value is not in the message');
    assert.equal(message.includes('wJalr'), false);
  });

  test('relative paths are resolved against the config file, not the current directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-config-'));
    const file = join(dir, 'lifeboat.config.yaml');
    await writeFile(file, 'repositories:\n  local: { type: fs, path: repo }\ntargets:\n  orders: { type: sqlite, path: data/orders.sqlite, repositories: [local] }\nencryption:\n  keyFile: keys/backup.key\n');
    const config = loadConfig(file);
    const orders = config.targets.orders;
    assert.equal(orders?.type, 'sqlite');
    assert.equal(orders.path, join(dir, 'data/orders.sqlite'));
    assert.deepEqual(config.repositories.local, { type: 'fs', path: join(dir, 'repo') });
    assert.equal(config.encryption?.keyFile, join(dir, 'keys/backup.key'));
  });

  test('YAML syntax errors give the line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-config-'));
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'repositories:\n  local: { type: fs, path: repo\ntargets: {}\n');
    assert.throws(() => loadConfig(file), (error: unknown) => error instanceof LifeboatError && error.type === 'InvalidConfig' && /not valid YAML at line \d+/.test(error.message));
  });

  test('a missing config file says how to point at one', () => {
    assert.throws(() => loadConfig('/nonexistent/lifeboat.config.yaml'), /Pass --config <file>, set LIFEBOAT_CONFIG/);
  });
});
