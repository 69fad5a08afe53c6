import { appendFile } from 'node:fs/promises';
import type { Logger } from '../logger.js';

/**
 * What serve decided on each chatops request, for an auditor: one JSON line per decision in
 * `chatops.decisionLog` (when configured) and in serve's log on stderr (always). Never the
 * response_url (a capability to post), the signature or the secret.
 *
 *   started   a runbook was started (or a retry found it started: alreadyStarted)
 *   answered  a question was answered (status, backups, help) or an approval was sent
 *   refused   a verified request was not carried out: not allowed, unknown target, bad command
 *   rejected  a request that is not Slack's (unsigned, stale, future, bad signature, replayed)
 */
export interface ChatopsDecision {
  at: string;
  route: 'commands' | 'interactions';
  decision: 'started' | 'answered' | 'refused' | 'rejected';
  reason?: string;
  /** The command as typed (`drill orders`), or the button (`lifeboat_approve`). */
  request?: string;
  target?: string;
  workflowId?: string;
  alreadyStarted?: boolean;
  user?: string;
  userName?: string;
  channel?: string;
  channelName?: string;
  team?: string;
  /** X-Slack-Retry-Num of a retried request. */
  retry?: number;
  /** The peer's address, for requests that fail verification. */
  remoteAddress?: string;
}

export class DecisionLog {
  private writing: Promise<void> = Promise.resolve();
  readonly decisions: ChatopsDecision[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly file: string | undefined,
    /** How many recent decisions stay in memory (for tests and a future page). */
    private readonly keep = 1000,
  ) {}

  record(decision: Omit<ChatopsDecision, 'at'>): ChatopsDecision {
    const entry: ChatopsDecision = { at: new Date().toISOString(), ...decision };
    this.decisions.push(entry);
    if (this.decisions.length > this.keep) this.decisions.splice(0, this.decisions.length - this.keep);
    const level = entry.decision === 'refused' || entry.decision === 'rejected' ? 'warn' : 'info';
    this.logger[level]({ chatops: entry }, `chatops ${entry.decision}${entry.reason ? `: ${entry.reason}` : ''}`);
    if (this.file !== undefined) {
      const file = this.file;
      // One append at a time, in order; a failed write is logged and the next one tried.
      this.writing = this.writing
        .then(() => appendFile(file, `${JSON.stringify(entry)}\n`, { mode: 0o600 }))
        .catch((error: unknown) => this.logger.error({ file, error: (error as Error).message }, 'chatops decision log could not be written'));
    }
    return entry;
  }

  /** Resolves when every decision recorded so far is in the file. */
  flushed(): Promise<void> {
    return this.writing;
  }
}
