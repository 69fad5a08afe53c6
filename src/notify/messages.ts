import type { NotificationEvent, Objective, RunReference } from './events.js';

/**
 * The Slack message of each event: a one-line `text` (what notifications and old clients show) and
 * Block Kit blocks with the facts; an approval also gets Approve / Reject buttons, which `lifeboat
 * serve` answers at /slack/interactions (action ids below, the workflow id as their value).
 */
export const slackActions = { approve: 'lifeboat_approve', reject: 'lifeboat_reject' } as const;

export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

/** Slack's mrkdwn needs only these three escaped. */
function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The run in the Temporal UI, when its address is configured. */
export function runUrl(run: RunReference, ui: { url: string; namespace: string } | undefined): string | undefined {
  if (!ui) return undefined;
  return `${ui.url.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(ui.namespace)}/workflows/${encodeURIComponent(run.workflowId)}/${encodeURIComponent(run.runId)}/history`;
}

export function describeRequester(requestedBy: RunReference['requestedBy']): string {
  if (!requestedBy) return 'not recorded';
  const who = requestedBy as Record<string, unknown>;
  switch (who.via) {
    case 'cli':
      return `${String(who.user)}@${String(who.host)} (CLI)`;
    case 'schedule':
      return `schedule ${String(who.schedule)}`;
    case 'chatops':
      return `Slack user <@${String(who.user)}>`;
    case 'temporal':
      return `${String(who.identity)} (Temporal client)`;
    default:
      return JSON.stringify(requestedBy);
  }
}

export function formatSeconds(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function describeObjective(name: string, objective: Objective | null): string {
  if (!objective) return `${name} not measured`;
  const target = objective.targetSeconds === null ? 'no objective' : `objective ${formatSeconds(objective.targetSeconds)}: ${objective.met ? 'met' : 'MISSED'}`;
  return `${name} ${formatSeconds(objective.seconds)} (${target})`;
}

/** The facts of an event in one line (the Slack fallback text, logs). */
export function summarize(event: NotificationEvent): string {
  const { runbook, target } = event.run;
  switch (event.type) {
    case 'runbook.failed':
      return `${runbook} of ${target} failed${event.failure.type ? ` (${event.failure.type})` : ''}: ${event.failure.message}`;
    case 'drill.finished':
      return `drill of ${target} ${event.passed ? 'PASSED' : 'FAILED'}: ${describeObjective('RTO', event.rto)}, ${describeObjective('RPO', event.rpo)}`;
    case 'approval.waiting':
      return `${runbook} of ${target} waits for an approval to ${event.action}, until ${event.deadline}: \`${event.answer.approve}\` or \`${event.answer.reject}\``;
    case 'verify.damaged':
      return `verification of ${target} found ${event.damaged.length} damaged backup cop${event.damaged.length === 1 ? 'y' : 'ies'}`;
  }
}

export function slackMessage(event: NotificationEvent, ui?: { url: string; namespace: string }): SlackMessage {
  const { run } = event;
  const link = runUrl(run, ui);
  const runName = link ? `<${link}|${escape(run.workflowId)}>` : `\`${escape(run.workflowId)}\``;
  const context = { type: 'context', elements: [{ type: 'mrkdwn', text: `${runName} · requested by ${escape(describeRequester(run.requestedBy))}` }] };
  const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });
  const text = summarize(event);
  switch (event.type) {
    case 'runbook.failed':
      return {
        text,
        blocks: [
          section(`:x: *${escape(run.runbook)} of ${escape(run.target)} failed*${event.failure.type ? ` (${escape(event.failure.type)})` : ''}${event.step ? ` in step \`${escape(event.step)}\`` : ''}`),
          section(`>${escape(event.failure.message).replace(/\n/g, '\n>')}`),
          context,
        ],
      };
    case 'drill.finished':
      return {
        text,
        blocks: [
          section(`${event.passed ? ':white_check_mark:' : ':x:'} *Drill of ${escape(run.target)} ${event.passed ? 'PASSED' : 'FAILED'}*${event.failure ? `: ${escape(event.failure.message)}` : ''}`),
          {
            type: 'section',
            fields: [
              { type: 'mrkdwn', text: `*RTO*\n${escape(describeObjective('', event.rto).trim())}` },
              { type: 'mrkdwn', text: `*RPO*\n${escape(describeObjective('', event.rpo).trim())}` },
              { type: 'mrkdwn', text: `*Backup*\n${escape(event.backupId ?? 'none')}${event.snapshotAt ? ` (snapshot ${escape(event.snapshotAt)})` : ''}` },
              { type: 'mrkdwn', text: `*Checks*\n${event.checks.passed}/${event.checks.total} passed` },
            ],
          },
          ...(event.reportKeys.length ? [section(`Report: ${event.reportKeys.map((key) => `\`${escape(key)}\``).join(', ')}`)] : []),
          context,
        ],
      };
    case 'approval.waiting':
      return {
        text,
        blocks: [
          section(`:hourglass_flowing_sand: *${escape(run.runbook)} of ${escape(run.target)} waits for an approval* to ${escape(event.action)}, until ${escape(event.deadline)}; without one it ends and changes nothing.`),
          section(`From a terminal: \`${escape(event.answer.approve)}\` or \`${escape(event.answer.reject)}\`; in the Temporal UI: the Update \`approve\` with \`{"approve": true}\`.`),
          {
            type: 'actions',
            block_id: 'lifeboat_approval',
            elements: [
              { type: 'button', action_id: slackActions.approve, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: run.workflowId },
              {
                type: 'button',
                action_id: slackActions.reject,
                style: 'danger',
                text: { type: 'plain_text', text: 'Reject' },
                value: run.workflowId,
              },
            ],
          },
          context,
        ],
      };
    case 'verify.damaged':
      return {
        text,
        blocks: [
          section(`:warning: *Verification of ${escape(run.target)} found damage*`),
          section(event.damaged.map((d) => `• \`${escape(d.repository)}\` backup \`${escape(d.backupId)}\`: ${escape(d.problem)}`).join('\n')),
          context,
        ],
      };
  }
}
