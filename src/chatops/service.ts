import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createHash } from 'node:crypto';
import type { ApprovalInput, ApprovalResult } from '../../workflows/approval.js';
import { innermostMessage, searchAttributes, startRunbookOnce, type TemporalSettings } from '../client.js';
import type { ChatopsConfig, Config, RepositoryConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import { runUrl, slackActions } from '../notify/messages.js';
import { sourceBytesOf } from '../kinds/index.js';
import { openBackend } from '../repository/open.js';
import { Repository } from '../repository/repository.js';
import type { RequestedBy } from '../requested-by.js';
import type { StateReport } from '../state/model.js';
import { authorize } from './authorize.js';
import { parseCommand, permissionOf, type ParsedCommand } from './commands.js';
import type { ChatopsDecision, DecisionLog } from './decisions.js';
import type { OutcomeWatcher } from './outcomes.js';
import {
  approvalAnsweredReply,
  backupsReply,
  deferredReply,
  ephemeral,
  helpReply,
  refusedReply,
  startedReply,
  statusReply,
  type BackupRow,
  type RunLink,
  type SlackReply,
} from './replies.js';
import { postToSlack } from './slack-post.js';

/**
 * What serve does with a verified Slack request (src/serve/routes/slack.ts verifies it): parse the
 * command, check the target and the allow rules (default deny), then start the runbook, answer
 * the question or send the approval, and answer Slack within its 3 seconds: the answer itself when
 * it is ready within ackBudgetMs, else a short "follows in a moment" and the answer later through
 * the response_url. Every decision is recorded (DecisionLog).
 */
export interface ChatOpsOptions {
  config: Config;
  chatops: ChatopsConfig;
  settings: TemporalSettings;
  env: NodeJS.ProcessEnv;
  client: () => Promise<Client>;
  /** The last state read of serve (status answers from it, never reading a repository). */
  state: { latest: StateReport | undefined; lastSuccessAt: number | undefined };
  watcher: OutcomeWatcher;
  decisions: DecisionLog;
  logger: Logger;
  /** How long the answer may take before Slack gets "follows in a moment" instead (default 2,000 ms of Slack's 3 s). */
  ackBudgetMs?: number;
  /** How long a command's response_url takes messages (Slack: 30 minutes); less in tests. */
  responseUrlLifetimeMs?: number;
  openRepository?: (name: string, config: RepositoryConfig) => Repository;
  post?: typeof postToSlack;
}

/** The fields of a slash command request serve reads (application/x-www-form-urlencoded). */
export interface SlashCommand {
  text: string;
  command: string;
  user: string;
  userName: string | undefined;
  channel: string;
  channelName: string | undefined;
  team: string | undefined;
  responseUrl: string | undefined;
  triggerId: string | undefined;
}

export function slashCommandOf(form: URLSearchParams): SlashCommand | undefined {
  const user = form.get('user_id');
  const channel = form.get('channel_id');
  if (!user || !channel) return undefined;
  const optional = (key: string) => form.get(key) || undefined;
  return {
    text: form.get('text') ?? '',
    command: form.get('command') ?? '/lifeboat',
    user,
    userName: optional('user_name'),
    channel,
    channelName: optional('channel_name'),
    team: optional('team_id'),
    responseUrl: optional('response_url'),
    triggerId: optional('trigger_id'),
  };
}

/** A button press (block_actions) on an approval message. */
export interface ButtonPress {
  approve: boolean;
  workflowId: string;
  user: string;
  userName: string | undefined;
  channel: string;
  team: string | undefined;
  responseUrl: string | undefined;
  triggerId: string | undefined;
}

export function buttonPressOf(payload: unknown): ButtonPress | string {
  const p = payload as {
    type?: string;
    user?: { id?: string; username?: string; name?: string; team_id?: string };
    team?: { id?: string } | null;
    channel?: { id?: string } | null;
    container?: { channel_id?: string };
    response_url?: string;
    trigger_id?: string;
    actions?: Array<{ action_id?: string; value?: string }>;
  };
  if (p?.type !== 'block_actions') return `interactions of type "${String(p?.type)}" are not handled`;
  const action = p.actions?.find((a) => a.action_id === slackActions.approve || a.action_id === slackActions.reject);
  if (!action || typeof action.value !== 'string') return 'no Lifeboat approval button in the actions';
  const user = p.user?.id;
  const channel = p.channel?.id ?? p.container?.channel_id;
  if (!user || !channel) return 'the press names no user or no channel';
  return {
    approve: action.action_id === slackActions.approve,
    workflowId: action.value,
    user,
    userName: p.user?.username ?? p.user?.name,
    channel,
    team: p.team?.id ?? p.user?.team_id,
    responseUrl: p.response_url,
    triggerId: p.trigger_id,
  };
}

/**
 * The workflow id of a run a Slack command starts: derived from the request (its workspace and
 * trigger id, unique per invocation), so a retry of the request names the same run.
 */
export function chatopsWorkflowId(runbook: string, target: string, request: { team: string | undefined; triggerId: string | undefined; responseUrl: string | undefined }): string {
  const key = createHash('sha256').update(`${request.team ?? ''}:${request.triggerId ?? request.responseUrl ?? ''}`).digest('hex').slice(0, 12);
  return `${runbook}-${target}-slack-${key}`;
}

/** A failure that is answered to the user as a refusal: nothing was done. */
class Refusal extends Error {}

/** Who asks, and where (ids for authorization, names for people reading the decisions). */
interface Who {
  user: string;
  channel: string;
  team: string | undefined;
  userName?: string | undefined;
  channelName?: string | undefined;
}

export class ChatOps {
  private readonly ackBudgetMs: number;
  private readonly responseUrlLifetimeMs: number;
  private readonly ui: { url: string; namespace: string } | undefined;

  constructor(private readonly options: ChatOpsOptions) {
    this.ackBudgetMs = options.ackBudgetMs ?? 2000;
    this.responseUrlLifetimeMs = options.responseUrlLifetimeMs ?? 30 * 60_000;
    const uiUrl = options.config.notifications?.temporalUiUrl;
    this.ui = uiUrl ? { url: uiUrl, namespace: options.settings.namespace } : undefined;
  }

  /** Answers a verified slash command: the body of the HTTP answer (Slack shows it to the user only). */
  async command(request: SlashCommand, meta: { retry: number | undefined; receivedAt: number }): Promise<SlackReply> {
    const parsed = parseCommand(request.text);
    const who: Who = { user: request.user, userName: request.userName, channel: request.channel, channelName: request.channelName, team: request.team };
    const base = { route: 'commands' as const, request: `${request.command} ${request.text}`.trim(), ...who, ...(meta.retry !== undefined ? { retry: meta.retry } : {}) };
    const work = this.carryOut(parsed, request, meta.receivedAt).then(
      ({ reply, decision }) => {
        this.options.decisions.record({ ...base, ...decision });
        return reply;
      },
      (error: unknown) => {
        const refused = error instanceof Refusal;
        const reason = refused ? error.message : `failed: ${innermostMessage(error)}`;
        this.options.decisions.record({ ...base, decision: 'refused', reason, ...targetOf(parsed) });
        return refused ? refusedReply(reason) : ephemeral(`Lifeboat could not do that: ${reason}`);
      },
    );
    return this.within(work, request.responseUrl, describeAsk(parsed, request));
  }

  /** Carries out a verified button press; its answer goes to the press's response_url (Slack ignores the HTTP body). */
  async press(press: ButtonPress): Promise<void> {
    const who: Who = { user: press.user, userName: press.userName, channel: press.channel, team: press.team };
    const base = { route: 'interactions' as const, request: press.approve ? slackActions.approve : slackActions.reject, workflowId: press.workflowId, ...who };
    let reply: SlackReply;
    try {
      const { reply: answered, target } = await this.answerApproval(press, press.approve, who);
      this.options.decisions.record({ ...base, decision: 'answered', target, reason: press.approve ? 'approved' : 'rejected' });
      // The approval message becomes its answer: the buttons go, so nobody presses them again.
      reply = { ...answered, replace_original: true };
    } catch (error) {
      const refused = error instanceof Refusal;
      const reason = refused ? error.message : `failed: ${innermostMessage(error)}`;
      this.options.decisions.record({ ...base, decision: 'refused', reason });
      reply = { ...(refused ? refusedReply(reason) : ephemeral(`Lifeboat could not do that: ${reason}`)), replace_original: false };
    }
    if (press.responseUrl) await this.post(press.responseUrl, reply);
  }

  /** The answer within the budget, else "follows in a moment" now and the answer through the response_url. */
  private async within(work: Promise<SlackReply>, responseUrl: string | undefined, what: string): Promise<SlackReply> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.ackBudgetMs)));
    const first = await Promise.race([work, late]);
    clearTimeout(timer);
    if (first !== undefined) return first;
    void work.then((reply) => (responseUrl ? this.post(responseUrl, reply) : undefined));
    return deferredReply(what);
  }

  private async post(url: string, reply: SlackReply): Promise<void> {
    await (this.options.post ?? postToSlack)(url, reply, 'the response_url').catch((error: unknown) =>
      this.options.logger.warn({ error: (error as Error).message }, 'chatops: could not post the answer to the response_url'),
    );
  }

  private async carryOut(parsed: ParsedCommand, request: SlashCommand, receivedAt: number): Promise<{ reply: SlackReply; decision: Omit<ChatopsDecision, 'at' | 'route'> }> {
    if (parsed.command === 'help') return { reply: helpReply(), decision: { decision: 'answered', reason: 'help' } };
    if (parsed.command === 'invalid') return { reply: helpReply(parsed.problem), decision: { decision: 'refused', reason: parsed.problem } };
    const who = { user: request.user, channel: request.channel, team: request.team };
    if (parsed.command === 'approve') {
      const { reply, target } = await this.answerApproval({ ...request, workflowId: parsed.workflowId }, parsed.approve, { ...who, userName: request.userName });
      return { reply: { ...reply, response_type: 'in_channel' }, decision: { decision: 'answered', target, workflowId: parsed.workflowId, reason: parsed.approve ? 'approved' : 'rejected' } };
    }
    if (parsed.command === 'status') {
      const targets = parsed.target !== undefined ? [this.knownTarget(parsed.target)] : Object.keys(this.options.config.targets);
      const allowed = targets.filter((target) => authorize(this.options.chatops, { command: 'status', target, ...who }).allowed);
      if (allowed.length === 0) throw new Refusal(this.refusal('status', targets[0] ?? '*', who));
      const state = this.options.state.latest;
      if (state === undefined) return { reply: ephemeral('The state of the targets has not been read yet (serve started moments ago); ask again in a minute.'), decision: { decision: 'answered', reason: 'status not read yet' } };
      const shown = { ...state, targets: state.targets.filter((t) => allowed.includes(t.target)) };
      return { reply: statusReply(shown, parsed.target, this.options.state.lastSuccessAt), decision: { decision: 'answered', ...(parsed.target ? { target: parsed.target } : {}) } };
    }
    const target = this.knownTarget(parsed.target);
    this.allow(permissionOf(parsed)!, target, who);
    if (parsed.command === 'backups') return { reply: await this.listBackups(target), decision: { decision: 'answered', target } };

    // drill or backup: start it once per request, follow it, answer with its id.
    const requestedBy: RequestedBy = {
      via: 'chatops',
      user: request.user,
      channel: request.channel,
      ...(request.userName ? { userName: request.userName } : {}),
      ...(request.channelName ? { channelName: request.channelName } : {}),
      ...(request.team ? { team: request.team } : {}),
    };
    const workflowId = chatopsWorkflowId(parsed.command, target, request);
    const client = await this.options.client();
    const started = await startRunbookOnce(client, this.options.settings, parsed.command, { target }, requestedBy, workflowId);
    const link: RunLink = { workflowId, runId: started.runId, url: runUrl(started, this.ui) };
    this.options.watcher.watch({
      workflowId,
      runId: started.runId,
      runbook: parsed.command,
      target,
      requester: request.user,
      ...(request.responseUrl ? { responseUrl: request.responseUrl, respondBy: receivedAt + this.responseUrlLifetimeMs - 60_000 } : {}),
    });
    return { reply: startedReply(parsed.command, target, link), decision: { decision: 'started', target, workflowId, ...(started.alreadyStarted ? { alreadyStarted: true } : {}) } };
  }

  /** Sends the approval Update to a waiting run, after checking the approver may answer for its target. */
  private async answerApproval(
    request: { workflowId: string; team: string | undefined; triggerId: string | undefined; responseUrl: string | undefined },
    approve: boolean,
    who: Who,
  ): Promise<{ reply: SlackReply; target: string }> {
    const client = await this.options.client();
    const handle = client.workflow.getHandle(request.workflowId);
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new Refusal(`there is no run ${request.workflowId}`);
      throw error;
    }
    const target = description.typedSearchAttributes.get(searchAttributes.target);
    if (target === undefined) throw new Refusal(`run ${request.workflowId} is not a Lifeboat runbook (it has no LifeboatTarget)`);
    this.allow('approve', target, who);
    if (description.status.name !== 'RUNNING') throw new Refusal(`run ${request.workflowId} has ended (${description.status.name.toLowerCase()}); there is nothing to answer`);
    const by = `slack:${who.user}${who.userName ? ` (@${who.userName})` : ''}`;
    // The update id comes from the request: a retried request gets the first answer back, not a second one.
    const updateId = `slack-${createHash('sha256').update(`${request.team ?? ''}:${request.triggerId ?? request.responseUrl ?? ''}`).digest('hex').slice(0, 16)}`;
    let result: ApprovalResult;
    try {
      result = await client.withDeadline(Date.now() + 60_000, () =>
        handle.executeUpdate<ApprovalResult, [ApprovalInput]>('approve', { args: [{ approve, by }], updateId }),
      );
    } catch (error) {
      throw new Refusal(`run ${request.workflowId} did not take the answer: ${innermostMessage(error)}`);
    }
    const link: RunLink = { workflowId: request.workflowId, runId: description.runId, url: runUrl({ workflowId: request.workflowId, runId: description.runId }, this.ui) };
    return { reply: approvalAnsweredReply(result.decision, link, target, who.user), target };
  }

  private knownTarget(target: string): string {
    if (!(target in this.options.config.targets)) {
      throw new Refusal(`there is no target "${target}"; the targets are ${Object.keys(this.options.config.targets).join(', ') || '(none)'}`);
    }
    return target;
  }

  private allow(command: Parameters<typeof authorize>[1]['command'], target: string, who: Who): void {
    const verdict = authorize(this.options.chatops, { command, target, user: who.user, channel: who.channel, team: who.team });
    if (!verdict.allowed) throw new Refusal(verdict.reason);
  }

  private refusal(command: Parameters<typeof authorize>[1]['command'], target: string, who: { user: string; channel: string; team: string | undefined }): string {
    const verdict = authorize(this.options.chatops, { command, target, ...who });
    return verdict.allowed ? 'not allowed' : verdict.reason;
  }

  /** The newest backups of every repository of the target (at most 20 manifests read per repository). */
  private async listBackups(target: string, limit = 20): Promise<SlackReply> {
    const { config, env } = this.options;
    const rows: BackupRow[] = [];
    const warnings: string[] = [];
    for (const name of config.targets[target]!.repositories) {
      try {
        const repositoryConfig = config.repositories[name]!;
        const repository = this.options.openRepository?.(name, repositoryConfig) ?? new Repository(name, openBackend(repositoryConfig, env));
        const ids = (await repository.listBackupIds(target)).slice(0, limit);
        for (const id of ids) {
          try {
            const manifest = await repository.readManifest(target, id);
            rows.push({ repository: name, id, snapshotAt: manifest.snapshotAt, sourceBytes: sourceBytesOf(manifest), storedBytes: manifest.objects.reduce((sum, o) => sum + o.sizeBytes, 0) });
          } catch (error) {
            warnings.push(`backup ${id} in "${name}" is not listed: ${(error as Error).message}`);
          }
        }
      } catch (error) {
        warnings.push(`repository "${name}" could not be read: ${(error as Error).message}`);
      }
    }
    rows.sort((a, b) => (a.id === b.id ? a.repository.localeCompare(b.repository) : a.id < b.id ? 1 : -1));
    return backupsReply(target, rows, warnings, limit);
  }
}

function targetOf(parsed: ParsedCommand): { target?: string; workflowId?: string } {
  if ('target' in parsed && parsed.target !== undefined) return { target: parsed.target };
  if (parsed.command === 'approve') return { workflowId: parsed.workflowId };
  return {};
}

function describeAsk(parsed: ParsedCommand, request: SlashCommand): string {
  switch (parsed.command) {
    case 'drill':
    case 'backup':
      // The id is known before Temporal takes the start: a slow start is still named in the answer.
      return `Starting the ${parsed.command} of ${parsed.target} as ${chatopsWorkflowId(parsed.command, parsed.target, request)}`;
    case 'backups':
      return `Listing the backups of ${parsed.target}`;
    case 'status':
      return 'Reading the status';
    case 'approve':
      return `${parsed.approve ? 'Approving' : 'Rejecting'} ${parsed.workflowId}`;
    default:
      return 'Working on it';
  }
}
