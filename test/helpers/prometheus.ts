import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, waitForPort } from '../../src/dev/ports.js';

/**
 * A real Prometheus server (Debian's `prometheus`, installed by scripts/bootstrap.sh) for one test
 * file: its own temp directory and a free loopback port, scraping the given targets every second
 * and evaluating the given rule files every second.
 */
export interface TestPrometheus {
  url: string;
  /** An instant query; the result vector. */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** Active alerts (pending and firing). */
  alerts(): Promise<Array<{ labels: Record<string, string>; state: 'pending' | 'firing'; value: string }>>;
  close(): Promise<void>;
}

export async function startPrometheus(options: { jobs: Array<{ job: string; address: string }>; ruleFiles: string[] }): Promise<TestPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-prometheus-'));
  const port = await freePort();
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(
    configFile,
    stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: options.ruleFiles,
      scrape_configs: options.jobs.map(({ job, address }) => ({ job_name: job, static_configs: [{ targets: [address] }] })),
    }),
  );
  const child: ResultPromise = execa(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { reject: false, all: true },
  );
  const url = `http://127.0.0.1:${port}`;
  const close = async (): Promise<void> => {
    child.kill('SIGTERM');
    await child;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      waitForPort(port, '127.0.0.1', 60_000),
      child.then((result) => {
        throw new Error(`prometheus exited (${result.exitCode}) before it listened: ${String(result.all ?? '').slice(-2000)}`);
      }),
    ]);
  } catch (error) {
    await close();
    throw error;
  }
  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? response.status}`);
    return body.data;
  };
  return {
    url,
    query: async (promql) => (await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(`/api/v1/query?query=${encodeURIComponent(promql)}`)).result,
    alerts: async () => (await api<{ alerts: Array<{ labels: Record<string, string>; state: 'pending' | 'firing'; value: string }> }>('/api/v1/alerts')).alerts,
    close,
  };
}
