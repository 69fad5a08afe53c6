import { ageSeconds, formatDuration, type DrillFacts, type MeasuredObjective, type RepositoryState, type StateReport, type TargetState } from './model.js';

/** `lifeboat status` as text: one block per target, its problems last. */
export function renderStatus(report: StateReport): string[] {
  const now = Date.parse(report.observedAt);
  const lines: string[] = [];
  for (const target of report.targets) {
    lines.push(...renderTarget(target, now), '');
  }
  if (report.workers) {
    const { taskQueue, workflowPollers, activityPollers } = report.workers;
    lines.push(`workers on task queue "${taskQueue}": ${workflowPollers} polling for workflows, ${activityPollers} for activities${workflowPollers + activityPollers === 0 ? ' (NONE: runbooks will not run)' : ''}`);
  }
  const problems = report.targets.reduce((sum, target) => sum + target.problems.length, 0);
  lines.push(report.healthy ? `all ${report.targets.length} target(s) within their objectives` : `${problems} problem(s) in ${report.targets.filter((t) => t.problems.length).length} of ${report.targets.length} target(s)`);
  return lines;
}

function renderTarget(target: TargetState, now: number): string[] {
  const { objectives } = target;
  const stated = [
    objectives.rpoSeconds !== null ? `RPO ${formatDuration(objectives.rpoSeconds)}` : null,
    objectives.rtoSeconds !== null ? `RTO ${formatDuration(objectives.rtoSeconds)}` : null,
    objectives.drillEverySeconds !== null ? `drill every ${formatDuration(objectives.drillEverySeconds)}` : null,
    objectives.verifyEverySeconds !== null ? `verify every ${formatDuration(objectives.verifyEverySeconds)}` : null,
  ].filter((part) => part !== null);
  const lines = [
    `${target.target} (${target.type}): ${target.problems.length ? `${target.problems.length} PROBLEM(S)` : 'OK'}`,
    `  objectives: ${stated.length ? stated.join(', ') : 'none set (only absence and failures are judged)'}`,
  ];
  for (const repo of target.repositories) lines.push(...renderRepository(repo, target, now));
  if (target.archiver) {
    const a = target.archiver;
    if (!a.reachable) lines.push(`  WAL archiving (server): not reachable: ${a.error ?? 'no answer'}`);
    else if (a.archiveMode === 'off') lines.push('  WAL archiving (server): archive_mode is off');
    else {
      lines.push(
        `  WAL archiving (server): last archived ${a.lastArchivedWal ?? 'nothing'}${a.lastArchivedAt ? ` at ${a.lastArchivedAt}` : ''}; ` +
          (a.lag ? `lag ${a.lag.segments} segment(s), ${formatDuration(a.lag.seconds)}` : 'lag unknown') +
          (a.failing ? `; FAILING since ${a.lastFailedAt ?? '?'} (${a.lastFailedWal ?? '?'})` : ''),
      );
    }
  }
  const runs = Object.entries(target.lastRuns).map(([runbook, run]) => `${runbook} ${run.result === 'completed' ? 'completed' : run.result.toUpperCase()} at ${run.closedAt}`);
  if (target.temporalError) lines.push(`  runs and schedules: unknown (Temporal: ${target.temporalError})`);
  else {
    lines.push(`  last runs: ${runs.length ? runs.join('; ') : 'none finished'}`);
    lines.push(
      `  schedules: ${target.schedules.length ? target.schedules.map((s) => `${s.id} ${s.paused ? `PAUSED${s.note ? ` (${s.note})` : ''}` : 'active'}`).join('; ') : 'none'}`,
    );
  }
  for (const problem of target.problems) lines.push(`  problem: ${problem.code}: ${problem.message}`);
  return lines;
}

function renderRepository(repo: RepositoryState, target: TargetState, now: number): string[] {
  const lines = [`  repository ${repo.repository} (${repo.location})${repo.error ? `: UNREADABLE: ${repo.error}` : ''}`];
  const b = repo.newestBackup;
  if (b) {
    const age = ageSeconds(b.snapshotAt, now);
    const rpo = target.objectives.rpoSeconds;
    lines.push(
      `    newest backup     ${b.id} (${b.kind}) snapshot ${b.snapshotAt}, ${formatDuration(age)} old` +
        `${rpo !== null ? ` (RPO ${formatDuration(rpo)}: ${age > rpo ? 'STALE' : 'met'})` : ''}; ${formatBytes(b.storedBytes)} stored` +
        `${b.durationSeconds !== null ? ` in ${formatDuration(b.durationSeconds)}` : ''}`,
    );
  } else lines.push('    newest backup     none');
  const v = repo.newestVerifiedBackup;
  lines.push(`    newest verified   ${v ? `${v.id} (by ${v.by} at ${v.verifiedAt})` : 'none'}`);
  const verify = repo.lastVerify;
  lines.push(
    `    last verify       ${verify ? `${verify.finishedAt}: ${verify.valid ? 'valid' : 'DAMAGE FOUND'}, ${verify.backupsChecked} backup(s) checked${verify.damaged.length ? `, damaged: ${verify.damaged.map((d) => d.backupId).join(', ')}` : ''}${verify.walGaps ? `, ${verify.walGaps} WAL gap(s)` : ''}` : 'never'}`,
  );
  lines.push(`    last drill        ${repo.lastDrill ? describeDrill(repo.lastDrill) : 'never'}`);
  if (repo.lastDrill && !repo.lastDrill.passed) lines.push(`    last passed drill ${repo.lastPassedDrill ? describeDrill(repo.lastPassedDrill) : 'never'}`);
  if (repo.wal) {
    const { head, pitrWindow } = repo.wal;
    lines.push(`    WAL archive head  ${head ? `${head.name} archived ${head.archivedAt}` : 'nothing archived'}`);
    lines.push(`    PITR window       ${pitrWindow.start ? `${pitrWindow.start} .. ${pitrWindow.end ?? '(no WAL archived after it)'}` : 'none (no base backup)'}`);
  }
  const retention = repo.retention;
  lines.push(
    `    next retention    ${retention ? (retention.wouldRemove.length ? `would remove ${retention.wouldRemove.map((r) => `${r.backupId} (${r.reason})`).join(', ')}; keeps ${retention.wouldKeep}` : `removes nothing; keeps ${retention.wouldKeep}`) : 'no retention policy'}`,
  );
  return lines;
}

function describeDrill(drill: DrillFacts): string {
  return (
    `${drill.startedAt}: ${drill.passed ? 'PASSED' : 'FAILED'}${drill.backupId ? ` on ${drill.backupId}` : ''}` +
    `${describeMeasured('RTO', drill.rto)}${describeMeasured('RPO', drill.rpo)}` +
    `${drill.failure ? ` (${drill.failure.type ? `${drill.failure.type}: ` : ''}${drill.failure.message})` : ''}`
  );
}

function describeMeasured(name: string, value: MeasuredObjective | null): string {
  if (!value) return '';
  return `, ${name} ${formatDuration(value.seconds)}${value.objectiveSeconds !== null ? ` (objective ${formatDuration(value.objectiveSeconds)}: ${value.met ? 'met' : 'MISSED'})` : ''}`;
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
