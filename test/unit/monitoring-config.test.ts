/** The config of monitoring: target objectives, `serve` and `worker.metricsListen`. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { LifeboatError } from '../../src/errors.js';

const valid = {
  repositories: { local: { type: 'fs', path: '/var/backups/lifeboat' } },
  targets: { orders: { type: 'sqlite', path: '/srv/orders.sqlite', repositories: ['local'] } },
};

describe('monitoring configuration', () => {
  test('serve listens on loopback and refreshes every minute by default; the worker exposes no metrics unless told', () => {
    const config = parseConfig(valid, 'test');
    assert.deepEqual(config.serve, { listen: '127.0.0.1:9464', refreshSeconds: 60 });
    assert.equal(config.worker.metricsListen, undefined);
  });

  test('a drill is measured against the target objectives unless it names its own targets', () => {
    const config = parseConfig(
      {
        ...valid,
        targets: {
          orders: { ...valid.targets.orders, objectives: { rpoSeconds: 3600, rtoSeconds: 300 } },
          billing: { ...valid.targets.orders, objectives: { rpoSeconds: 3600, rtoSeconds: 300 }, drill: { rtoTargetSeconds: 60 } },
        },
      },
      'test',
    );
    assert.deepEqual([config.targets.orders?.drill.rtoTargetSeconds, config.targets.orders?.drill.rpoTargetSeconds], [300, 3600]);
    assert.deepEqual([config.targets.billing?.drill.rtoTargetSeconds, config.targets.billing?.drill.rpoTargetSeconds], [60, 3600]);
  });

  test('listen addresses are host:port; anything else names the field and the form', () => {
    for (const listen of ['9464', 'http://127.0.0.1:9464', '127.0.0.1:99999']) {
      assert.throws(
        () => parseConfig({ ...valid, serve: { listen } }, 'lifeboat.config.yaml'),
        (error: unknown) => error instanceof LifeboatError && error.type === 'InvalidConfig' && /serve\.listen/.test(error.message),
        listen,
      );
    }
    assert.equal(parseConfig({ ...valid, worker: { metricsListen: '[::1]:9465' } }, 'test').worker.metricsListen, '[::1]:9465');
    assert.equal(parseConfig({ ...valid, serve: { listen: '0.0.0.0:9464' } }, 'test').serve.listen, '0.0.0.0:9464');
  });

  test('objectives are positive numbers of seconds, and nothing else', () => {
    assert.throws(() => parseConfig({ ...valid, targets: { orders: { ...valid.targets.orders, objectives: { rpoSeconds: 0 } } } }, 'test'), /objectives\.rpoSeconds/);
    assert.throws(() => parseConfig({ ...valid, targets: { orders: { ...valid.targets.orders, objectives: { rpo: 60 } } } }, 'test'), /expected one of: rpoSeconds, rtoSeconds, drillEverySeconds, verifyEverySeconds/);
  });
});
