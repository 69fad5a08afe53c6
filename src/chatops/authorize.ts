import type { ChatopsCommand, ChatopsConfig, ChatopsRule } from '../config/schema.js';

/** Who asks, where, for what: the facts of a verified Slack request that authorization looks at. */
export interface ChatopsAsk {
  command: ChatopsCommand;
  /** The target the command is about (for approve: the target of the waiting run). */
  target: string;
  user: string;
  channel: string;
  team: string | undefined;
}

export type Authorization = { allowed: true; rule: number } | { allowed: false; reason: string };

const covers = (list: string[], value: string): boolean => list.includes('*') || list.includes(value);

/**
 * Default deny: allowed when one rule names the command, the target, the channel and the user (and
 * the request comes from the configured workspace). A refusal says which of these no rule covers,
 * the way an operator fixes it: the rule to add.
 */
export function authorize(config: ChatopsConfig, ask: ChatopsAsk): Authorization {
  const expected = config.slack.teamId;
  if (expected !== undefined && ask.team !== expected) {
    return { allowed: false, reason: `this Lifeboat answers the Slack workspace ${expected} only, and the request came from ${ask.team ?? 'an unnamed workspace'}` };
  }
  const index = config.allow.findIndex((rule) => matches(rule, ask));
  if (index >= 0) return { allowed: true, rule: index };
  return { allowed: false, reason: refusalReason(config.allow, ask) };
}

function matches(rule: ChatopsRule, ask: ChatopsAsk): boolean {
  return rule.commands.includes(ask.command) && covers(rule.targets, ask.target) && covers(rule.channels, ask.channel) && covers(rule.users, ask.user);
}

/** The narrowest reason: what the rules closest to this request lack. */
function refusalReason(rules: ChatopsRule[], ask: ChatopsAsk): string {
  const what = `\`${ask.command}\` on target "${ask.target}"`;
  const forCommand = rules.filter((rule) => rule.commands.includes(ask.command) && covers(rule.targets, ask.target));
  if (forCommand.length === 0) return `no chatops rule allows ${what} (chatops.allow)`;
  const inChannel = forCommand.filter((rule) => covers(rule.channels, ask.channel));
  if (inChannel.length === 0) return `${what} is not allowed in this channel (${ask.channel}); no chatops rule names it`;
  return `user ${ask.user} may not ask for ${what} here; the chatops rules that allow it name other users`;
}
