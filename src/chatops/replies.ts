import type { BackupResult } from '../../workflows/backup.js';
import type { DrillReport } from '../../workflows/drill.js';
import { describeObjective, formatSeconds } from '../notify/messages.js';
import { formatDuration, type StateReport } from '../state/model.js';
import { renderStatus } from '../state/render.js';
import { usage } from './commands.js';

/**
 * What serve says in Slack: the immediate answer to a command (ephemeral: only the person who typed
 * it sees it), and the outcome posted later to the command's response_url (in the channel, so the
 * people there see how the drill went) or to the late-outcomes channel. Block Kit with a plain
 * `text` fallback, as Slack recommends.
 */
export interface SlackReply {
  response_type?: 'ephemeral' | 'in_channel';
  replace_original?: boolean;
  text: string;
  blocks?: unknown[];
}

/** Slack's mrkdwn needs only these three escaped. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });
const context = (text: string) => ({ type: 'context', elements: [{ type: 'mrkdwn', text }] });

/** A section's text is at most 3,000 characters in Block Kit. */
function fit(text: string, limit = 2900): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 20)}\n… (cut)`;
}

export interface RunLink {
  workflowId: string;
  runId: string;
  /** The run in the Temporal UI, when notifications.temporalUiUrl is set. */
  url: string | undefined;
}

export function runLinkText(run: RunLink): string {
  return run.url ? `<${run.url}|${escapeMrkdwn(run.workflowId)}>` : `\`${escapeMrkdwn(run.workflowId)}\``;
}

export function ephemeral(text: string, blocks?: unknown[]): SlackReply {
  return { response_type: 'ephemeral', text, ...(blocks ? { blocks } : {}) };
}

export function helpReply(problem?: string): SlackReply {
  const lines = [...(problem ? [`:grey_question: ${escapeMrkdwn(problem)}.`] : []), '*Lifeboat commands*', ...usage.map((line) => `• ${line}`)];
  return ephemeral(`${problem ? `${problem}. ` : ''}Lifeboat commands: drill, backup, status, backups, approve, reject`, [section(lines.join('\n'))]);
}

export function refusedReply(reason: string): SlackReply {
  return ephemeral(`Refused: ${reason}. Nothing was started.`, [section(`:no_entry: *Refused:* ${escapeMrkdwn(reason)}.\nNothing was started; this refusal is recorded.`)]);
}

/** The acknowledgement of a started run: the same words for the first request and for any retry of it. */
export function startedReply(runbook: 'drill' | 'backup', target: string, run: RunLink): SlackReply {
  const what = runbook === 'drill' ? `Drill of ${target}` : `Backup of ${target}`;
  return ephemeral(`${what} started: ${run.workflowId}. The outcome will follow here.`, [
    section(`:arrow_forward: *${escapeMrkdwn(what)} started:* ${runLinkText(run)}\nThe outcome will follow in this channel.`),
  ]);
}

export function deferredReply(what: string): SlackReply {
  return ephemeral(`${what}: the answer follows in a moment.`, [section(`:hourglass_flowing_sand: ${escapeMrkdwn(what)}: the answer follows in a moment.`)]);
}

/** The outcome of a run started from Slack. */
export type RunOutcome =
  | { status: 'completed'; runbook: string; result: unknown }
  | { status: 'failed'; runbook: string; failure: { type: string | undefined; message: string } }
  | { status: 'ended'; runbook: string; how: string };

export function outcomeReply(outcome: RunOutcome, target: string, run: RunLink, requester: string | undefined): SlackReply {
  const asked = requester ? ` (asked by <@${requester}>)` : '';
  const footer = context(`${runLinkText(run)}${asked}`);
  if (outcome.status === 'failed') {
    const type = outcome.failure.type ? ` (${outcome.failure.type})` : '';
    return {
      response_type: 'in_channel',
      text: `${outcome.runbook} of ${target} failed${type}: ${outcome.failure.message}`,
      blocks: [section(`:x: *${escapeMrkdwn(outcome.runbook)} of ${escapeMrkdwn(target)} failed*${escapeMrkdwn(type)}`), section(fit(`>${escapeMrkdwn(outcome.failure.message).replace(/\n/g, '\n>')}`)), footer],
    };
  }
  if (outcome.status === 'ended') {
    return { response_type: 'in_channel', text: `${outcome.runbook} of ${target} ${outcome.how}`, blocks: [section(`:heavy_minus_sign: *${escapeMrkdwn(outcome.runbook)} of ${escapeMrkdwn(target)} ${escapeMrkdwn(outcome.how)}*`), footer] };
  }
  if (outcome.runbook === 'drill') {
    const report = outcome.result as DrillReport;
    const verdict = report.passed ? 'PASSED' : 'FAILED';
    const checks = `${report.checks.filter((c) => c.passed).length}/${report.checks.length} checks passed`;
    const text = `Drill of ${target} ${verdict}: ${describeObjective('RTO', report.rto)}, ${describeObjective('RPO', report.rpo)}, ${checks}${report.failure ? `; ${report.failure.message}` : ''}`;
    return {
      response_type: 'in_channel',
      text,
      blocks: [
        section(`${report.passed ? ':white_check_mark:' : ':x:'} *Drill of ${escapeMrkdwn(target)} ${verdict}*${report.failure ? `: ${escapeMrkdwn(report.failure.message)}` : ''}`),
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: `*RTO*\n${escapeMrkdwn(describeObjective('', report.rto).trim())}` },
            { type: 'mrkdwn', text: `*RPO*\n${escapeMrkdwn(describeObjective('', report.rpo).trim())}` },
            { type: 'mrkdwn', text: `*Backup*\n${escapeMrkdwn(report.backupId ?? 'none')}` },
            { type: 'mrkdwn', text: `*Checks*\n${checks}` },
          ],
        },
        footer,
      ],
    };
  }
  if (outcome.runbook === 'backup') {
    const result = outcome.result as BackupResult;
    const text = `Backup of ${target} done: ${result.backupId}, snapshot ${result.snapshotAt}, ${formatBytes(result.sourceBytes)} -> ${formatBytes(result.storedBytes)} stored in ${result.repositories.join(', ')}`;
    return {
      response_type: 'in_channel',
      text,
      blocks: [
        section(`:white_check_mark: *Backup of ${escapeMrkdwn(target)} done:* \`${escapeMrkdwn(result.backupId)}\``),
        section(`snapshot ${escapeMrkdwn(result.snapshotAt)}; ${formatBytes(result.sourceBytes)} backed up, ${formatBytes(result.storedBytes)} stored in ${escapeMrkdwn(result.repositories.join(', '))}; durable ${formatSeconds(result.secondsToDurable)} after the snapshot`),
        footer,
      ],
    };
  }
  return { response_type: 'in_channel', text: `${outcome.runbook} of ${target} completed`, blocks: [section(`:white_check_mark: *${escapeMrkdwn(outcome.runbook)} of ${escapeMrkdwn(target)} completed*`), footer] };
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** `status`: one line per target, or the whole text of `lifeboat status` for one. */
export function statusReply(report: StateReport, target: string | undefined, readAt: number | undefined): SlackReply {
  const age = readAt !== undefined ? ` (read ${formatDuration((Date.now() - readAt) / 1000)} ago)` : '';
  if (target !== undefined) {
    const one = { ...report, targets: report.targets.filter((t) => t.target === target) };
    const lines = renderStatus(one).filter((line) => !line.startsWith('workers on task queue') && !/target\(s\)/.test(line));
    const healthy = one.targets.every((t) => t.problems.length === 0);
    return ephemeral(`${target}: ${healthy ? 'within its objectives' : 'OUTSIDE its objectives'}${age}`, [
      section(`${healthy ? ':white_check_mark:' : ':warning:'} *${escapeMrkdwn(target)}*${escapeMrkdwn(age)}`),
      section(fit(`\`\`\`${escapeMrkdwn(lines.join('\n').trim())}\`\`\``)),
    ]);
  }
  const lines = report.targets.map((t) => {
    const newest = t.repositories.map((r) => r.newestBackup?.snapshotAt).filter((at): at is string => at !== undefined).sort().at(-1);
    const backup = newest ? `newest backup ${formatDuration((Date.parse(report.observedAt) - Date.parse(newest)) / 1000)} old` : 'no backup';
    return t.problems.length === 0
      ? `:white_check_mark: *${escapeMrkdwn(t.target)}* (${t.type}): OK, ${backup}`
      : `:warning: *${escapeMrkdwn(t.target)}* (${t.type}): ${t.problems.map((p) => p.code).join(', ')}; ${backup}`;
  });
  const healthy = report.targets.every((t) => t.problems.length === 0);
  const summary = healthy ? `all ${report.targets.length} target(s) within their objectives` : `${report.targets.filter((t) => t.problems.length).length} of ${report.targets.length} target(s) outside their objectives`;
  return ephemeral(`${summary}${age}`, [section(fit(lines.join('\n') || 'no targets')), context(`${escapeMrkdwn(summary)}${escapeMrkdwn(age)}`)]);
}

export interface BackupRow {
  repository: string;
  id: string;
  snapshotAt: string;
  sourceBytes: number;
  storedBytes: number;
}

/** `backups <target>`: the newest first, at most `limit` of them. */
export function backupsReply(target: string, rows: BackupRow[], warnings: string[], limit = 20): SlackReply {
  if (rows.length === 0) return ephemeral(`no complete backups of ${target}`, [section(`No complete backups of *${escapeMrkdwn(target)}*.${warnings.length ? `\n${escapeMrkdwn(warnings.join('\n'))}` : ''}`)]);
  const shown = rows.slice(0, limit);
  const table = shown.map((r) => `${r.id}  ${r.snapshotAt}  ${formatBytes(r.storedBytes).padStart(10)}  ${r.repository}`).join('\n');
  return ephemeral(`${rows.length} backup(s) of ${target}; newest ${rows[0]!.id}`, [
    section(`*Backups of ${escapeMrkdwn(target)}*, newest first${rows.length > limit ? ` (${limit} of ${rows.length})` : ''}:`),
    section(fit(`\`\`\`${escapeMrkdwn(table)}\`\`\``)),
    ...(warnings.length ? [context(fit(escapeMrkdwn(warnings.join('; '))))] : []),
  ]);
}

/** The answer to an approval, from the slash command or the button (the button replaces its message with it). */
export function approvalAnsweredReply(decision: 'approved' | 'rejected', run: RunLink, target: string, user: string): SlackReply {
  const text = `${decision === 'approved' ? 'Approved' : 'Rejected'} by <@${user}>: ${run.workflowId} (${target})`;
  return {
    text,
    blocks: [section(`${decision === 'approved' ? ':white_check_mark: *Approved*' : ':no_entry_sign: *Rejected*'} by <@${user}>: ${runLinkText(run)} (target ${escapeMrkdwn(target)})`)],
  };
}
