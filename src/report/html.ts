/**
 * The drill (and PITR) report a person reads: one self-contained HTML page rendered from the JSON
 * report, with inline CSS, an inline SVG timeline and a print stylesheet. No script, no font, no
 * image from anywhere (a Content-Security-Policy says so to the browser too). Pure: JSON in, HTML out.
 */
import type { StepRecord } from '../repository/manifest.js';

export interface ReportObjective {
  seconds: number;
  targetSeconds: number | null;
  met: boolean | null;
}

export interface ReportCheck {
  name: string;
  passed: boolean;
  detail: string;
  durationMs?: number;
  expected?: string;
  actual?: string;
}

/** The fields of a stored JSON report the page shows (drill reports; PITR reports add runbook "pitr"). */
export interface RenderableReport {
  runbook?: string;
  target: string;
  workflowId: string;
  runId?: string;
  startedAt: string;
  finishedAt?: string;
  passed?: boolean;
  failure?: { type: string | null; message: string } | null;
  backupId: string | null;
  snapshotAt: string | null;
  rto?: ReportObjective | null;
  rpo?: ReportObjective | null;
  checks?: ReportCheck[];
  timeline: StepRecord[];
  requestedBy?: Record<string, unknown> | null;
  approvals?: Array<{ decision: string; by: string | null; at: string; action?: string }>;
  /** Tool versions: of the backup (its manifest), and of the worker that ran the drill. */
  tools?: Record<string, string>;
  /** The point in time the copy was brought to: `latest` for a drill, the recovery target for PITR. */
  pointInTime?: { requested: string; reached: string | null } | null;
  cleanup?: { status: 'done' | 'failed' | 'nothing to clean'; steps: string[] } | null;
  method?: string;
  recovery?: { lsn: string; lastTransactionTime: string | null; walFilesRestored: number; walTimeline: number } | null;
  verification?: { tables: number; rows: number } | null;
  reportKeys?: string[];
}

export interface ReportSource {
  /** sha256 of the JSON document the page was rendered from, as stored. */
  sha256: string;
  /** Where it came from: `local:orders/reports/<id>.json`, or `the workflow result`. */
  from: string;
}

function escapeHtml(value: unknown): string {
  return String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function seconds(value: number): string {
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

function requester(requestedBy: RenderableReport['requestedBy']): string {
  if (!requestedBy) return 'not recorded';
  switch (requestedBy.via) {
    case 'cli':
      return `${String(requestedBy.user)} on ${String(requestedBy.host)}, with the lifeboat CLI`;
    case 'schedule':
      return `the schedule ${String(requestedBy.schedule)}`;
    case 'chatops':
      return `Slack user ${String(requestedBy.user)}${requestedBy.channel ? ` in channel ${String(requestedBy.channel)}` : ''}`;
    case 'temporal':
      return `the Temporal client "${String(requestedBy.identity)}"`;
    default:
      return JSON.stringify(requestedBy);
  }
}

/** Cleanup steps by their names: scratch copies removed, databases dropped, recovered clusters removed. */
function cleanupOf(report: RenderableReport): NonNullable<RenderableReport['cleanup']> {
  if (report.cleanup) return report.cleanup;
  const steps = report.timeline.filter((step) => /^(remove|drop)-|^cleanup$/.test(step.name));
  if (steps.length === 0) return { status: 'nothing to clean', steps: [] };
  return { status: steps.every((step) => step.status === 'completed') ? 'done' : 'failed', steps: steps.map((step) => step.name) };
}

function verdictOf(report: RenderableReport): { word: string; ok: boolean } {
  if (report.passed !== undefined) return { word: report.passed ? 'PASSED' : 'FAILED', ok: report.passed };
  return report.failure ? { word: 'FAILED', ok: false } : { word: 'SUCCEEDED', ok: true };
}

function objectiveRow(name: string, field: string, objective: ReportObjective | null | undefined): string {
  if (!objective) return `<tr><th scope="row">${name}</th><td colspan="3" data-field="${field}">not measured</td></tr>`;
  const verdict = objective.met === null ? 'no objective set' : objective.met ? 'met' : 'MISSED';
  const cls = objective.met === null ? 'neutral' : objective.met ? 'ok' : 'bad';
  return (
    `<tr><th scope="row">${name}</th><td class="num" data-field="${field}-seconds" data-value="${objective.seconds}">${seconds(objective.seconds)}</td>` +
    `<td class="num" data-field="${field}-objective" data-value="${objective.targetSeconds ?? ''}">${objective.targetSeconds === null ? '-' : seconds(objective.targetSeconds)}</td>` +
    `<td class="${cls}" data-field="${field}-met">${verdict}</td></tr>`
  );
}

const statusColours: Record<string, string> = { completed: '#2e7d32', failed: '#c62828', skipped: '#9e9e9e', running: '#1565c0' };

/** The steps as horizontal bars on one time axis: one bar per step, its length the step's duration. */
export function timelineSvg(steps: StepRecord[]): string {
  const labelWidth = 200;
  const barArea = 460;
  const valueWidth = 110;
  const rowHeight = 24;
  const top = 24;
  const width = labelWidth + barArea + valueWidth;
  const height = top + rowHeight * Math.max(steps.length, 1) + 8;
  const starts = steps.map((step) => Date.parse(step.startedAt));
  const ends = steps.map((step, i) => (step.endedAt ? Date.parse(step.endedAt) : starts[i]! + (step.durationMs ?? 0)));
  const t0 = Math.min(...starts);
  const total = Math.max(1, Math.max(...ends) - t0);
  const x = (ms: number) => labelWidth + (barArea * ms) / total;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((fraction) => {
    const at = x(total * fraction);
    return `<line x1="${at.toFixed(1)}" y1="${top - 4}" x2="${at.toFixed(1)}" y2="${height - 8}" class="grid"/><text x="${at.toFixed(1)}" y="${top - 8}" class="tick">${seconds((total * fraction) / 1000)}</text>`;
  });
  const rows = steps.map((step, i) => {
    const y = top + i * rowHeight;
    const start = starts[i]! - t0;
    const duration = step.durationMs ?? ends[i]! - starts[i]!;
    const barWidth = Math.max(2, (barArea * duration) / total);
    const attempts = step.attempts && step.attempts > 1 ? `, ${step.attempts} attempts` : '';
    const label = `${seconds(duration / 1000)}${attempts}`;
    return (
      `<g class="step" data-step="${escapeHtml(step.name)}">` +
      `<text x="${labelWidth - 8}" y="${y + 16}" class="label">${escapeHtml(step.name)}</text>` +
      `<rect class="bar ${escapeHtml(step.status)}" x="${x(start).toFixed(1)}" y="${y + 4}" width="${barWidth.toFixed(1)}" height="${rowHeight - 8}" rx="2" fill="${statusColours[step.status] ?? '#616161'}" ` +
      `data-duration-ms="${duration}" data-attempts="${step.attempts ?? 1}" data-status="${escapeHtml(step.status)}">` +
      `<title>${escapeHtml(`${step.name}: ${step.status}, ${label}${step.detail ? `. ${step.detail}` : ''}`)}</title></rect>` +
      `<text x="${labelWidth + barArea + 8}" y="${y + 16}" class="value">${escapeHtml(label)}${step.status === 'completed' ? '' : ` ${escapeHtml(step.status)}`}</text>` +
      `</g>`
    );
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="Timeline of ${steps.length} steps">` +
    ticks.join('') +
    rows.join('') +
    `</svg>`
  );
}

const css = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1b1b1b; max-width: 820px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: 700; color: #fff; }
.verdict.pass { background: #2e7d32; color: #fff; } .verdict.fail { background: #c62828; color: #fff; }
th[scope="row"] { width: 32%; }
table.steps td:first-child, table.checks td:first-child { white-space: nowrap; }
.sub { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2e7d32; font-weight: 600; } .bad { color: #c62828; font-weight: 600; } .neutral { color: #555; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
.failure { border-left: 4px solid #c62828; background: #fdecea; padding: 8px 12px; }
svg.timeline { font: 11px system-ui, "DejaVu Sans", sans-serif; }
svg.timeline .label { text-anchor: end; fill: #1b1b1b; }
svg.timeline .value, svg.timeline .tick { fill: #555; }
svg.timeline .tick { text-anchor: middle; }
svg.timeline .grid { stroke: #e0e0e0; stroke-width: 1; }
footer { margin-top: 24px; color: #555; font-size: 12px; }
@page { margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section, table, svg { break-inside: avoid; }
  h2 { break-after: avoid; }
}
`;

/** The page. Every value is escaped; nothing loads from anywhere. */
export function renderReportHtml(report: RenderableReport, source: ReportSource): string {
  const runbook = report.runbook ?? 'drill';
  const title = `${runbook === 'pitr' ? 'Point-in-time recovery' : 'Restore drill'} of ${report.target}`;
  const verdict = verdictOf(report);
  const cleanup = cleanupOf(report);
  const checks = report.checks ?? [];
  const approvals = report.approvals ?? [];
  const tools = Object.entries(report.tools ?? {});
  const row = (name: string, value: string, field?: string) => `<tr><th scope="row">${name}</th><td${field ? ` data-field="${field}"` : ''}>${value}</td></tr>`;
  const code = (value: string | null | undefined) => (value ? `<code>${escapeHtml(value)}</code>` : '-');
  const finishedAt = report.finishedAt ?? report.timeline.at(-1)?.endedAt;

  const sections = [
    `<header><h1>${escapeHtml(title)} <span class="verdict ${verdict.ok ? 'pass' : 'fail'}" data-field="verdict">${verdict.word}</span></h1>` +
      `<p class="sub">Run <code>${escapeHtml(report.workflowId)}</code>${report.runId ? ` (run id <code>${escapeHtml(report.runId)}</code>)` : ''}, ` +
      `started ${escapeHtml(report.startedAt)}${finishedAt ? `, finished ${escapeHtml(finishedAt)}` : ''}.</p>` +
      (report.failure ? `<p class="failure" data-field="failure"><strong>${escapeHtml(report.failure.type ?? 'Failure')}</strong>: ${escapeHtml(report.failure.message)}</p>` : '') +
      `</header>`,
    `<section><h2>Who</h2><table>` +
      row('Requested by', escapeHtml(requester(report.requestedBy)), 'requested-by') +
      row(
        'Approvals',
        approvals.length ? approvals.map((a) => `${escapeHtml(a.decision)} by ${escapeHtml(a.by ?? 'someone who did not say')} at ${escapeHtml(a.at)}${a.action ? ` (${escapeHtml(a.action)})` : ''}`).join('<br>') : 'none asked for',
        'approvals',
      ) +
      `</table></section>`,
    `<section><h2>What was restored</h2><table>` +
      row('Backup', code(report.backupId), 'backup-id') +
      row('Snapshot taken', report.snapshotAt ? escapeHtml(report.snapshotAt) : '-', 'snapshot-at') +
      row('Point in time', report.pointInTime ? `${escapeHtml(report.pointInTime.requested)}${report.pointInTime.reached ? `; reached ${escapeHtml(report.pointInTime.reached)}` : ''}` : 'the backup\'s snapshot', 'point-in-time') +
      (report.method ? row('Method', escapeHtml(report.method)) : '') +
      (report.recovery ? row('WAL replay', `to <code>${escapeHtml(report.recovery.lsn)}</code>${report.recovery.lastTransactionTime ? `, last commit ${escapeHtml(report.recovery.lastTransactionTime)}` : ''}; ${report.recovery.walFilesRestored} WAL files; timeline ${report.recovery.walTimeline}`) : '') +
      (report.verification ? row('Compared with the dump', `${report.verification.tables} tables, ${report.verification.rows} rows: counts and checksums match`) : '') +
      `</table></section>`,
    `<section><h2>Objectives</h2><table><thead><tr><th></th><th class="num">measured</th><th class="num">objective</th><th>verdict</th></tr></thead><tbody>` +
      objectiveRow('RTO (time to a checked copy)', 'rto', report.rto) +
      objectiveRow('RPO (data a disaster would lose)', 'rpo', report.rpo) +
      `</tbody></table></section>`,
    `<section><h2>Timeline</h2>${timelineSvg(report.timeline)}` +
      `<table class="steps"><thead><tr><th>step</th><th>status</th><th class="num">duration</th><th class="num">attempts</th><th>detail</th></tr></thead><tbody>` +
      report.timeline
        .map(
          (step) =>
            `<tr data-step="${escapeHtml(step.name)}"><td>${escapeHtml(step.name)}</td><td class="${step.status === 'completed' ? 'ok' : step.status === 'failed' ? 'bad' : 'neutral'}">${escapeHtml(step.status)}</td>` +
            `<td class="num">${step.durationMs !== undefined ? seconds(step.durationMs / 1000) : '-'}</td><td class="num">${step.attempts ?? '-'}</td><td>${escapeHtml(step.detail ?? '')}</td></tr>`,
        )
        .join('') +
      `</tbody></table></section>`,
    `<section><h2>Checks</h2>` +
      (checks.length
        ? `<table class="checks"><thead><tr><th>check</th><th>expected</th><th>actual</th><th>result</th></tr></thead><tbody>` +
          checks
            .map(
              (check) =>
                `<tr data-check="${escapeHtml(check.name)}"><td>${escapeHtml(check.name)}</td><td data-field="expected">${escapeHtml(check.expected ?? '-')}</td>` +
                `<td data-field="actual">${escapeHtml(check.actual ?? check.detail)}</td><td class="${check.passed ? 'ok' : 'bad'}">${check.passed ? 'pass' : 'FAIL'}${check.passed ? '' : `: ${escapeHtml(check.detail)}`}</td></tr>`,
            )
            .join('') +
          `</tbody></table>`
        : '<p>No smoke checks are configured (drill.smokeChecks).</p>') +
      `</section>`,
    `<section><h2>Cleanup</h2><p data-field="cleanup" class="${cleanup.status === 'failed' ? 'bad' : 'ok'}">${escapeHtml(cleanup.status)}${cleanup.steps.length ? `: ${cleanup.steps.map(escapeHtml).join(', ')}` : ''}</p></section>`,
    `<section><h2>Tool versions</h2>` +
      (tools.length ? `<table>${tools.map(([tool, version]) => row(escapeHtml(tool), `<code>${escapeHtml(version)}</code>`)).join('')}</table>` : '<p>not recorded in this report</p>') +
      `</section>`,
    `<footer>Rendered from the JSON report ${escapeHtml(source.from)}, sha256 <code data-field="source-sha256">${escapeHtml(source.sha256)}</code>` +
      `${report.reportKeys?.length ? `; stored as ${report.reportKeys.map((key) => `<code>${escapeHtml(key)}</code>`).join(', ')}` : ''}.</footer>`,
  ];
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)}: ${verdict.word}</title><style>${css}</style></head>\n<body>\n${sections.join('\n')}\n</body></html>\n`
  );
}
