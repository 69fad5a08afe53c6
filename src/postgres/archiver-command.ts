import { createServer } from 'node:http';
import { resolve } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { loadConfig } from '../config/load.js';
import { LifeboatError } from '../errors.js';
import { postgresTargetNamed } from '../kinds/postgres/commands.js';
import { createLogger } from '../logger.js';
import { listenOn } from '../serve/listen.js';
import { archiveCommandLine } from './archive-commands.js';
import { spoolDirOf, type ArchiverStatus } from './archive-spool.js';
import { runArchiver } from './archiver.js';
import { openWalArchive, walArchiveSpec } from './wal-archive.js';

export interface ArchiverCommandOptions {
  configPath: string;
  target: string;
  dataDir: string | undefined;
  metricsListen?: string;
  env?: NodeJS.ProcessEnv;
}

/** `lifeboat archiver`: runs until SIGTERM or SIGINT. */
export async function archiverCommand(options: ArchiverCommandOptions): Promise<void> {
  const env = options.env ?? process.env;
  const config = loadConfig(options.configPath);
  const target = postgresTargetNamed(config, options.target, options.configPath, 'archiver');
  if (target.archive.mode !== 'async') {
    throw new LifeboatError(
      'InvalidInput',
      `target "${options.target}" has archive.mode "${target.archive.mode}": its archive_command does not read the archiver's marks, so an archiver would only push every file twice`,
      'Set archive.mode: async for the target and archive_command to the line of docs/postgresql-deployment.md, or do not run the archiver',
    );
  }
  const dataDir = options.dataDir ?? env.PGDATA;
  if (!dataDir) throw new LifeboatError('InvalidInput', 'the archiver needs the data directory of the cluster', 'Pass --data-dir <dir> or set PGDATA');
  const spec = walArchiveSpec(config, options.target, options.configPath);
  // Files are pushed `parallel` at a time, one zstd thread each.
  const archive = openWalArchive({ ...spec, compression: { ...spec.compression, threads: 1 } }, env);
  const spool = spoolDirOf(target.archive.spoolDir, options.target);
  const logger = createLogger('lifeboat-archiver');
  const metrics = archiverMetrics(options.target);
  const controller = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => controller.abort());
  let server: ReturnType<typeof createServer> | undefined;
  if (options.metricsListen) {
    server = createServer((request, response) => {
      if (request.url !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      void metrics.registry.metrics().then((text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text));
    });
    await listenOn(server, options.metricsListen, 'the archiver\'s metrics');
  }
  logger.info({ archiveCommand: archiveCommandLine(options.target, resolve(options.configPath), target.archive) }, 'archive_command for this target');
  try {
    await runArchiver({
      archive,
      dataDir: resolve(dataDir),
      spool,
      parallel: target.archive.parallel,
      waitSeconds: target.archive.waitSeconds,
      ...(target.archive.queueMaxBytes !== undefined ? { queueMaxBytes: target.archive.queueMaxBytes } : {}),
      log: logger,
      signal: controller.signal,
      onStatus: metrics.update,
    });
  } finally {
    server?.close();
  }
}

/** The archiver's Prometheus metrics (docs/monitoring.md). */
function archiverMetrics(target: string): { registry: Registry; update: (status: ArchiverStatus) => void } {
  const registry = new Registry();
  const labels = { target };
  const queueBytes = new Gauge({ name: 'lifeboat_archiver_queue_bytes', help: 'WAL waiting in pg_wal for the archiver (ready, not archived nor dropped).', labelNames: ['target'], registers: [registry] });
  const queueFiles = new Gauge({ name: 'lifeboat_archiver_queue_files', help: 'WAL files waiting in pg_wal for the archiver.', labelNames: ['target'], registers: [registry] });
  const archived = new Counter({ name: 'lifeboat_archiver_archived_files_total', help: 'WAL files the archiver made durable in every repository.', labelNames: ['target'], registers: [registry] });
  const dropped = new Counter({
    name: 'lifeboat_archiver_dropped_segments_total',
    help: 'WAL files dropped (reported archived without being stored) because more than archive.queueMaxBytes waited: PITR cannot cross them.',
    labelNames: ['target'],
    registers: [registry],
  });
  const failures = new Counter({ name: 'lifeboat_archiver_failures_total', help: 'Failed attempts to archive a WAL file (the archiver retries).', labelNames: ['target'], registers: [registry] });
  const lastArchived = new Gauge({ name: 'lifeboat_archiver_last_archived_timestamp_seconds', help: 'When the archiver last made a WAL file durable.', labelNames: ['target'], registers: [registry] });
  for (const counter of [archived, dropped, failures]) counter.inc(labels, 0);
  const seen = { archived: 0, dropped: 0, failures: 0 };
  return {
    registry,
    update: (status) => {
      queueBytes.set(labels, status.queue.bytes);
      queueFiles.set(labels, status.queue.files);
      archived.inc(labels, status.archivedFiles - seen.archived);
      dropped.inc(labels, status.droppedFiles - seen.dropped);
      failures.inc(labels, status.failedAttempts - seen.failures);
      Object.assign(seen, { archived: status.archivedFiles, dropped: status.droppedFiles, failures: status.failedAttempts });
      if (status.lastArchived) lastArchived.set(labels, Date.parse(status.lastArchived.at) / 1000);
    },
  };
}
