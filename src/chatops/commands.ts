import type { ChatopsCommand } from '../config/schema.js';

/**
 * The text after the slash command (`/lifeboat drill orders`), parsed. Nothing here talks to
 * anything: serve checks the target against its config and the rules before it acts.
 */
export type ParsedCommand =
  | { command: 'drill' | 'backup' | 'backups'; target: string }
  | { command: 'status'; target: string | undefined }
  | { command: 'approve'; workflowId: string; approve: boolean }
  | { command: 'help' }
  | { command: 'invalid'; problem: string };

export const usage = [
  '`drill <target>`: restore the newest backup into a scratch copy, run the smoke checks, measure RTO and RPO',
  '`backup <target>`: back the target up to every repository it names',
  '`status [target]`: the state of every target (or one) against its objectives',
  '`backups <target>`: the backups the repositories hold, newest first',
  '`approve <workflow id>` or `reject <workflow id>`: answer a run that waits for an approval',
];

const targetName = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const workflowIdForm = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;

export function parseCommand(text: string): ParsedCommand {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const [verb, argument, ...rest] = words;
  if (verb === undefined || verb === 'help') return { command: 'help' };
  const extra = rest.length ? { command: 'invalid' as const, problem: `\`${verb}\` takes one argument; "${rest.join(' ')}" is one too many` } : undefined;
  switch (verb.toLowerCase()) {
    case 'drill':
    case 'backup':
    case 'backups': {
      if (argument === undefined) return { command: 'invalid', problem: `\`${verb}\` needs a target: \`${verb} <target>\`` };
      if (!targetName.test(argument)) return { command: 'invalid', problem: `"${argument}" is not a target name` };
      return extra ?? { command: verb.toLowerCase() as 'drill' | 'backup' | 'backups', target: argument };
    }
    case 'status':
      if (argument !== undefined && !targetName.test(argument)) return { command: 'invalid', problem: `"${argument}" is not a target name` };
      return extra ?? { command: 'status', target: argument };
    case 'approve':
    case 'reject':
      if (argument === undefined) return { command: 'invalid', problem: `\`${verb}\` needs the workflow id of the waiting run: \`${verb} <workflow id>\`` };
      if (!workflowIdForm.test(argument)) return { command: 'invalid', problem: `"${argument}" is not a workflow id` };
      return extra ?? { command: 'approve', workflowId: argument, approve: verb.toLowerCase() === 'approve' };
    default:
      return { command: 'invalid', problem: `unknown command \`${verb}\`` };
  }
}

/** The permission a parsed command needs (help and invalid need none). */
export function permissionOf(parsed: ParsedCommand): ChatopsCommand | undefined {
  return parsed.command === 'help' || parsed.command === 'invalid' ? undefined : parsed.command;
}
