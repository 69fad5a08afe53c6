import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { followedRunbooks, isFailedResult, newestDrill, type StateReport, type TargetState } from '../state/model.js';
import type { ClosedRun } from '../state/temporal-facts.js';

/**
 * The state of the targets as Prometheus metrics (docs/monitoring.md lists them). Every gauge is
 * computed at scrape time from the last state read (nothing here does I/O), so ages are exact and
 * a scrape costs no request to a repository. Base units: seconds, bytes; times are Unix
 * timestamps in seconds. Labels name configured things only (target, repository, runbook,
 * schedule key, task queue): no workflow ids.
 */
export interface StateSource {
  latest: StateReport | undefined;
  lastSuccessAt: number | undefined;
  lastDurationSeconds: number | undefined;
  failures: number;
  temporalUp: boolean;
}

type Labels = Record<string, string>;
type Sample = [Labels, number];

const seconds = (iso: string): number => Date.parse(iso) / 1000;
const flag = (value: boolean): number => (value ? 1 : 0);

export interface LifeboatMetrics {
  /** The exposition /metrics answers: the state rendered at the last refresh, and the live part. */
  text(): Promise<string>;
  contentType: string;
  /** Renders a new state read (the refresher calls it after each read). */
  update(report: StateReport): Promise<void>;
  /** Counts a finished run (RunWatcher's onClosed). */
  countRun(run: ClosedRun): void;
}

/**
 * Two registries: the state's gauges, rendered into text once per refresh (a scrape of 100
 * targets x 3 repositories then copies a string instead of formatting 4,000 samples again), and a
 * live one for what changes between refreshes (ages, counters, the process, the refresh itself).
 */
export function createMetrics(source: StateSource, options: { knownTargets: string[] }): LifeboatMetrics {
  const live = new Registry();
  collectDefaultMetrics({ register: live });
  let stateText = '';

  // Ages are computed when Prometheus scrapes, so they are exact between refreshes.
  new Gauge({
    name: 'lifeboat_backup_newest_age_seconds',
    help: 'Age of the newest complete backup\'s snapshot, at scrape time.',
    labelNames: ['target', 'repository'],
    registers: [live],
    collect() {
      this.reset();
      const now = Date.now() / 1000;
      for (const target of source.latest?.targets ?? []) {
        for (const repo of target.repositories) {
          if (repo.newestBackup) this.set({ target: target.target, repository: repo.repository }, Math.max(0, now - seconds(repo.newestBackup.snapshotAt)));
        }
      }
    },
  });
  new Gauge({ name: 'lifeboat_temporal_up', help: '1 when the Temporal server answered at the last refresh.', registers: [live], collect() { this.set(flag(source.temporalUp)); } });
  new Gauge({ name: 'lifeboat_state_refresh_last_success_timestamp_seconds', help: 'When the state of every target was last read completely.', registers: [live], collect() { if (source.lastSuccessAt !== undefined) this.set(source.lastSuccessAt / 1000); } });
  new Gauge({ name: 'lifeboat_state_refresh_duration_seconds', help: 'How long the last read of every target took.', registers: [live], collect() { if (source.lastDurationSeconds !== undefined) this.set(source.lastDurationSeconds); } });
  new Counter({ name: 'lifeboat_state_refresh_failures_total', help: 'Reads of the state that failed as a whole.', registers: [live], collect() { this.reset(); this.inc(source.failures); } });
  const runs = new Counter({
    name: 'lifeboat_runs_total',
    help: 'Runs that finished since this process started, by target, runbook (workflow type) and result, from the Temporal server.',
    labelNames: ['target', 'runbook', 'result'],
    registers: [live],
  });
  // Every followed runbook starts at 0, so rate() and increase() see the first run.
  for (const target of options.knownTargets) for (const runbook of followedRunbooks) for (const result of ['completed', 'failed'] as const) runs.inc({ target, runbook, result }, 0);

  return {
    contentType: live.contentType,
    text: async () => `${stateText}${await live.metrics()}`,
    update: async (report) => {
      stateText = await renderState(report);
    },
    countRun: (run) => runs.inc({ target: run.target, runbook: run.runbook, result: run.result }),
  };
}

/** The gauges of one state read, as exposition text (rendered once per refresh). */
async function renderState(report: StateReport): Promise<string> {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[], samples: (report: StateReport) => Sample[]): void => {
    const metric = new Gauge({ name, help, labelNames, registers: [registry] });
    for (const [labels, value] of samples(report)) if (Number.isFinite(value)) metric.set(labels, value);
  };
  const perTarget = (select: (target: TargetState) => Array<[Labels, number]> | number | null) => (report: StateReport): Sample[] =>
    report.targets.flatMap((target) => {
      const value = select(target);
      if (value === null) return [];
      if (typeof value === 'number') return [[{ target: target.target }, value] as Sample];
      return value.map(([labels, v]) => [{ target: target.target, ...labels }, v] as Sample);
    });
  const perRepository = (select: (repo: TargetState['repositories'][number]) => number | null | undefined) =>
    perTarget((target) =>
      target.repositories.flatMap((repo) => {
        const value = select(repo);
        return value === null || value === undefined ? [] : [[{ repository: repo.repository }, value] as [Labels, number]];
      }),
    );

  // --- targets and their objectives
  gauge('lifeboat_target_info', 'A configured target (value 1), with its type.', ['target', 'type'], perTarget((t) => [[{ type: t.type }, 1]]));
  gauge('lifeboat_target_problems', 'Facts outside the target\'s objectives, as `lifeboat status` counts them.', ['target'], perTarget((t) => t.problems.length));
  gauge('lifeboat_rpo_objective_seconds', 'The target\'s recovery point objective.', ['target'], perTarget((t) => t.objectives.rpoSeconds));
  gauge('lifeboat_rto_objective_seconds', 'The target\'s recovery time objective.', ['target'], perTarget((t) => t.objectives.rtoSeconds));
  gauge('lifeboat_drill_interval_objective_seconds', 'A drill must have passed within this long.', ['target'], perTarget((t) => t.objectives.drillEverySeconds));
  gauge('lifeboat_verify_interval_objective_seconds', 'A verify must have found each repository valid within this long.', ['target'], perTarget((t) => t.objectives.verifyEverySeconds));

  // --- repositories
  gauge('lifeboat_repository_up', '1 when every fact of the repository could be read at the last refresh.', ['target', 'repository'], perRepository((r) => flag(r.error === null)));
  gauge(
    'lifeboat_last_success_timestamp_seconds',
    'When each runbook last succeeded for the repository: backup (its manifest written), verify (found all valid), drill (a passing drill started).',
    ['target', 'repository', 'runbook'],
    perTarget((t) =>
      t.repositories.flatMap((r) => {
        const times: Array<[string, string | undefined]> = [
          ['backup', r.newestBackup?.completedAt],
          ['verify', r.lastPassedVerify?.finishedAt],
          ['drill', r.lastPassedDrill?.startedAt],
        ];
        return times.flatMap(([runbook, at]) => (at ? [[{ repository: r.repository, runbook }, seconds(at)] as [Labels, number]] : []));
      }),
    ),
  );
  gauge('lifeboat_backup_newest_snapshot_timestamp_seconds', 'The snapshot time of the newest complete backup (what a restore would bring back).', ['target', 'repository'], perRepository((r) => r.newestBackup && seconds(r.newestBackup.snapshotAt)));
  gauge('lifeboat_backup_last_size_bytes', 'Bytes the newest backup stores in the repository (compressed, encrypted).', ['target', 'repository'], perRepository((r) => r.newestBackup?.storedBytes));
  gauge('lifeboat_backup_last_source_size_bytes', 'Bytes of the source the newest backup was taken from.', ['target', 'repository'], perRepository((r) => r.newestBackup?.sourceBytes));
  gauge('lifeboat_backup_last_duration_seconds', 'How long the newest backup took, from its first step to its manifest.', ['target', 'repository'], perRepository((r) => r.newestBackup?.durationSeconds));

  // --- verification
  gauge('lifeboat_verify_last_timestamp_seconds', 'When the last verify run of the repository finished.', ['target', 'repository'], perRepository((r) => r.lastVerify && seconds(r.lastVerify.finishedAt)));
  gauge('lifeboat_verify_last_valid', '1 when the last verify run found the repository valid, 0 when it found damage.', ['target', 'repository'], perRepository((r) => r.lastVerify && flag(r.lastVerify.valid)));
  gauge('lifeboat_verify_last_damaged_backups', 'Backups the last verify run found damaged.', ['target', 'repository'], perRepository((r) => r.lastVerify?.damaged.length));
  gauge('lifeboat_verify_last_wal_gaps', 'Gaps the last verify run found in the WAL archive.', ['target', 'repository'], perRepository((r) => r.lastVerify?.walGaps));

  // --- drills (a drill's report is in every repository: the newest any of them holds)
  const drillOf = (t: TargetState) => newestDrill(t.repositories);
  gauge('lifeboat_drill_last_timestamp_seconds', 'When the last drill started.', ['target'], perTarget((t) => { const d = drillOf(t); return d && seconds(d.startedAt); }));
  gauge('lifeboat_drill_last_passed', '1 when the last drill passed (smoke checks, RTO and RPO objectives), 0 when it failed.', ['target'], perTarget((t) => { const d = drillOf(t); return d && flag(d.passed); }));
  gauge('lifeboat_drill_last_rto_seconds', 'The recovery time the last drill measured (start to checks passed).', ['target'], perTarget((t) => drillOf(t)?.rto?.seconds ?? null));
  gauge('lifeboat_drill_last_rpo_seconds', 'The data loss window the last drill measured (its start minus the restored snapshot).', ['target'], perTarget((t) => drillOf(t)?.rpo?.seconds ?? null));
  gauge('lifeboat_drill_last_rto_objective_seconds', 'The RTO objective the last drill was measured against.', ['target'], perTarget((t) => drillOf(t)?.rto?.objectiveSeconds ?? null));
  gauge('lifeboat_drill_last_rpo_objective_seconds', 'The RPO objective the last drill was measured against.', ['target'], perTarget((t) => drillOf(t)?.rpo?.objectiveSeconds ?? null));

  // --- PostgreSQL WAL archive and point-in-time recovery
  gauge('lifeboat_postgres_up', '1 when the PostgreSQL server answered at the last refresh.', ['target'], perTarget((t) => t.archiver && flag(t.archiver.reachable)));
  const archiving = (t: TargetState) => (t.archiver?.reachable && t.archiver.archiveMode !== 'off' ? t.archiver : null);
  gauge('lifeboat_wal_archive_failing', '1 while the server\'s archive_command fails (pg_stat_archiver: the last attempt failed).', ['target'], perTarget((t) => { const a = archiving(t); return a && flag(a.failing); }));
  gauge('lifeboat_wal_archive_lag_segments', 'Completed WAL segments the server has not archived yet.', ['target'], perTarget((t) => archiving(t)?.lag?.segments ?? null));
  gauge('lifeboat_wal_archive_lag_bytes', 'WAL bytes written after the last archived segment.', ['target'], perTarget((t) => archiving(t)?.lag?.bytes ?? null));
  gauge('lifeboat_wal_archive_lag_seconds', 'How long the oldest WAL not in the archive has waited (0 when everything written is archived).', ['target'], perTarget((t) => archiving(t)?.lag?.seconds ?? null));
  gauge('lifeboat_wal_archive_last_archived_timestamp_seconds', 'When the server last archived a WAL file (pg_stat_archiver).', ['target'], perTarget((t) => { const at = archiving(t)?.lastArchivedAt; return at ? seconds(at) : null; }));
  gauge('lifeboat_wal_archive_head_timestamp_seconds', 'When the newest WAL file in the repository was archived.', ['target', 'repository'], perRepository((r) => r.wal?.head && seconds(r.wal.head.archivedAt)));
  gauge('lifeboat_pitr_window_start_timestamp_seconds', 'The earliest point a point-in-time recovery from the repository can reach (the end of its oldest base backup).', ['target', 'repository'], perRepository((r) => (r.wal?.pitrWindow.start ? seconds(r.wal.pitrWindow.start) : null)));
  gauge('lifeboat_pitr_window_end_timestamp_seconds', 'About the latest point it can reach (the archive time of the newest WAL file).', ['target', 'repository'], perRepository((r) => (r.wal?.pitrWindow.end ? seconds(r.wal.pitrWindow.end) : null)));

  // --- runs, schedules and workers (the Temporal server)
  gauge(
    'lifeboat_runbook_last_run_failed',
    '1 when the newest finished run of the runbook failed, timed out or was terminated.',
    ['target', 'runbook'],
    perTarget((t) => Object.entries(t.lastRuns).map(([runbook, run]) => [{ runbook }, flag(isFailedResult(run.result))])),
  );
  gauge('lifeboat_runbook_last_run_timestamp_seconds', 'When the newest finished run of the runbook ended.', ['target', 'runbook'], perTarget((t) => Object.entries(t.lastRuns).map(([runbook, run]) => [{ runbook }, seconds(run.closedAt)])));
  gauge('lifeboat_schedule_paused', '1 when the schedule lifeboat/<target>/<schedule> is paused.', ['target', 'schedule'], perTarget((t) => t.schedules.map((s) => [{ schedule: s.id.split('/').slice(2).join('/') }, flag(s.paused)])));
  gauge('lifeboat_worker_pollers', 'Workers the Temporal server saw polling the task queue in the last minutes.', ['task_queue', 'type'], (report) =>
    report.workers
      ? [
          [{ task_queue: report.workers.taskQueue, type: 'workflow' }, report.workers.workflowPollers],
          [{ task_queue: report.workers.taskQueue, type: 'activity' }, report.workers.activityPollers],
        ]
      : [],
  );
  return registry.metrics();
}
