import { WorkflowFailedError, type Client } from '@temporalio/client';
import { setMaxListeners } from 'node:events';
import { CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { runbookFailure, searchAttributes } from '../client.js';
import type { Logger } from '../logger.js';
import { runUrl } from '../notify/messages.js';
import type { RequestedBy } from '../requested-by.js';
import { outcomeReply, type RunOutcome, type SlackReply } from './replies.js';
import { postToSlack } from './slack-post.js';

/**
 * Tells Slack how a run started from Slack ended. serve keeps each command's response_url in
 * memory only (it is a capability to post into the channel: like a secret it never enters the
 * run's input, history or memo) and follows the run from here (one long poll per run):
 *
 * - the run ends while the response_url is valid (Slack: 30 minutes, 5 uses): the outcome is
 *   posted there, into the channel the command was typed in;
 * - the run outlasts it, or serve restarted meanwhile (the URL is gone with the process): the
 *   outcome goes to the late-outcomes channel (chatops.slack.lateOutcomes, an incoming webhook),
 *   naming who asked. A restarted serve finds the runs Slack started that are still open (the
 *   search attribute LifeboatRequestedBy = chatops:<user>) and follows them again.
 *
 * A run that ends while no serve runs is told only by its own notifications (runbook.failed,
 * drill.finished), which the worker sends whatever happens to serve.
 */
export interface WatchedRun {
  workflowId: string;
  runId: string;
  runbook: string;
  target: string;
  /** The Slack user who asked, mentioned in the outcome. */
  requester: string | undefined;
  /** Where to answer, and until when (ms since the epoch); absent after a restart. */
  responseUrl?: string;
  respondBy?: number;
}

export interface OutcomeWatcherOptions {
  client: () => Promise<Client>;
  taskQueue: string;
  ui: { url: string; namespace: string } | undefined;
  /** The incoming webhook of chatops.slack.lateOutcomes, read from serve's environment. */
  late: { url: string; describe: string } | undefined;
  logger: Logger;
  /** Posts a message (tests and the benchmark count what is posted through their own receiver). */
  post?: typeof postToSlack;
  /** Pause between attempts to follow a run when the Temporal server does not answer. */
  retryDelayMs?: number;
}

export class OutcomeWatcher {
  private readonly watching = new Map<string, WatchedRun>();
  private closed = false;
  /** Ends the long polls of the runs followed when serve closes (closing the connection lets them go on). */
  // Every run followed listens on it (one long poll each): no listener limit.
  private readonly stopping = (() => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  })();
  /** Every outcome told, for tests: where it went. */
  readonly told: Array<{ workflowId: string; via: 'response_url' | 'late' | 'nowhere' }> = [];

  constructor(private readonly options: OutcomeWatcherOptions) {}

  /** Follows the run until it ends (once per workflow id: a retried command adds nothing). */
  watch(run: WatchedRun): void {
    if (this.closed || this.watching.has(run.workflowId)) return;
    this.watching.set(run.workflowId, run);
    void this.follow(run).finally(() => this.watching.delete(run.workflowId));
  }

  get size(): number {
    return this.watching.size;
  }

  /**
   * After a restart: the open runs Slack started on this task queue, followed again. Their
   * response_urls are gone, so their outcomes go to the late-outcomes channel (when there is one).
   */
  async resumeOpenRuns(): Promise<number> {
    if (this.options.late === undefined) return 0;
    const client = await this.options.client();
    const query = `${searchAttributes.requestedBy.name} STARTS_WITH "chatops:" AND ExecutionStatus = "Running" AND TaskQueue = "${this.options.taskQueue}"`;
    let resumed = 0;
    for await (const execution of client.workflow.list({ query })) {
      const requestedBy = execution.memo?.requestedBy as Partial<Extract<RequestedBy, { via: 'chatops' }>> | undefined;
      const target = execution.typedSearchAttributes.get(searchAttributes.target);
      this.watch({ workflowId: execution.workflowId, runId: execution.runId, runbook: execution.type, target: target ?? '?', requester: requestedBy?.user });
      resumed++;
    }
    if (resumed) this.options.logger.info({ runs: resumed }, 'chatops: following the open runs started from Slack again');
    return resumed;
  }

  close(): void {
    this.closed = true;
    this.stopping.abort();
  }

  private async follow(run: WatchedRun): Promise<void> {
    const outcome = await this.outcomeOf(run);
    if (outcome === undefined) return;
    const link = { workflowId: run.workflowId, runId: run.runId, url: runUrl(run, this.options.ui) };
    const message = outcomeReply(outcome, run.target, link, run.requester);
    await this.tell(run, message);
  }

  /** Waits for the run's end; undefined when serve closes first. */
  private async outcomeOf(run: WatchedRun): Promise<RunOutcome | undefined> {
    for (;;) {
      if (this.closed) return undefined;
      try {
        const client = await this.options.client();
        const result: unknown = await client.withAbortSignal(this.stopping.signal, () => client.workflow.getHandle(run.workflowId, run.runId).result());
        if (this.closed) return undefined;
        return { status: 'completed', runbook: run.runbook, result };
      } catch (error) {
        if (this.closed) return undefined;
        if (error instanceof WorkflowFailedError) {
          if (error.cause instanceof CancelledFailure) return { status: 'ended', runbook: run.runbook, how: 'was cancelled' };
          if (error.cause instanceof TerminatedFailure) return { status: 'ended', runbook: run.runbook, how: 'was terminated' };
          if (error.cause instanceof TimeoutFailure) return { status: 'ended', runbook: run.runbook, how: 'timed out' };
          return { status: 'failed', runbook: run.runbook, failure: runbookFailure(error) };
        }
        this.options.logger.warn({ workflowId: run.workflowId, error: (error as Error).message }, 'chatops: lost the run while following it; trying again');
        await new Promise((resolve) => setTimeout(resolve, this.options.retryDelayMs ?? 5000));
      }
    }
  }

  private async tell(run: WatchedRun, message: SlackReply): Promise<void> {
    const post = this.options.post ?? postToSlack;
    const { logger } = this.options;
    if (run.responseUrl !== undefined && run.respondBy !== undefined && Date.now() < run.respondBy) {
      try {
        await post(run.responseUrl, message, 'the command\'s response_url');
        this.told.push({ workflowId: run.workflowId, via: 'response_url' });
        logger.info({ workflowId: run.workflowId }, 'chatops: outcome posted to the command\'s response_url');
        return;
      } catch (error) {
        logger.warn({ workflowId: run.workflowId, error: (error as Error).message }, 'chatops: the response_url did not take the outcome; trying the late-outcomes channel');
      }
    }
    const late = this.options.late;
    if (late === undefined) {
      this.told.push({ workflowId: run.workflowId, via: 'nowhere' });
      logger.warn({ workflowId: run.workflowId }, 'chatops: the outcome could not be posted (response_url expired or gone, chatops.slack.lateOutcomes unset); the run\'s own notifications tell it');
      return;
    }
    try {
      // An incoming webhook posts to its channel; response_type and replace_original mean nothing there.
      await post(late.url, { text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) }, late.describe);
      this.told.push({ workflowId: run.workflowId, via: 'late' });
      logger.info({ workflowId: run.workflowId }, 'chatops: outcome posted to the late-outcomes channel');
    } catch (error) {
      this.told.push({ workflowId: run.workflowId, via: 'nowhere' });
      logger.error({ workflowId: run.workflowId, error: (error as Error).message }, 'chatops: the late-outcomes channel did not take the outcome');
    }
  }
}
