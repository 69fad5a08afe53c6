import { z } from 'zod';
import { envVarName, name } from './common.js';

/**
 * `chatops:` — Slack slash commands and buttons answered by `lifeboat serve` (docs/chatops.md).
 * Authorization is a list of allow rules, default deny: a request is carried out when one rule
 * names its command, its target, its channel and its user. What depends on the rest of the config
 * (targets that exist, a notification channel of type slack) is checked in schema.ts.
 */

/** What a Slack user can ask for; `approve` covers answering an approval either way (approve or reject). */
export const chatopsCommands = ['drill', 'backup', 'status', 'backups', 'approve'] as const;
export type ChatopsCommand = (typeof chatopsCommands)[number];

const anyone = z.literal('*');
const slackUserId = z.string().regex(/^[UW][A-Z0-9]{2,}$/, 'a Slack user id such as U012AB3CD (profile > ... > Copy member ID), or "*"');
const slackChannelId = z.string().regex(/^[CGD][A-Z0-9]{2,}$/, 'a Slack channel id such as C012AB3CD (channel details, at the bottom), or "*"');

export const chatopsRuleSchema = z
  .object({
    commands: z.array(z.enum(chatopsCommands)).min(1).describe('What the rule allows: drill, backup, status, backups, approve (approve also covers reject).'),
    targets: z.array(z.union([anyone, name])).min(1).describe('Targets the rule covers, by name, or "*" for every target.'),
    channels: z
      .array(z.union([anyone, slackChannelId]))
      .min(1)
      .describe('Slack channel ids the command may be typed in (or the button pressed in), or "*" for any channel. Ids, not names: a channel can be renamed.'),
    users: z.array(z.union([anyone, slackUserId])).min(1).describe('Slack user ids the rule allows, or "*" for anyone in those channels. Ids, not names: a display name can be changed by its owner.'),
  })
  .strict();

export const chatopsSchema = z
  .object({
    slack: z
      .object({
        signingSecretEnv: envVarName.describe(
          'Name of the environment variable holding the Slack app\'s signing secret (Basic Information > App Credentials), in the environment of `lifeboat serve`. Every request is verified with it.',
        ),
        teamId: z
          .string()
          .regex(/^[TE][A-Z0-9]{2,}$/, 'a Slack workspace id such as T012AB3CD')
          .optional()
          .describe('Only requests from this Slack workspace (team id) are carried out; unset: any workspace the app is installed in.'),
        lateOutcomes: name
          .optional()
          .describe(
            'A notifications channel (type slack) where serve posts the outcome of a run started from Slack when it can no longer answer through the command\'s ' +
              'response_url: the run outlasted its 30 minutes, or serve restarted meanwhile. Its webhook URL variable must be in serve\'s environment. ' +
              'Unset: such outcomes are told only by the run\'s own notifications (runbook.failed, drill.finished).',
          ),
      })
      .strict()
      .describe('The Slack app: how its requests are verified, and where late outcomes go.'),
    allow: z
      .array(chatopsRuleSchema)
      .default([])
      .describe('Allow rules, default deny: a request is carried out when one rule names its command, its target, its channel and its user. Every refusal is answered with its reason and recorded.'),
    decisionLog: z
      .string()
      .min(1)
      .optional()
      .describe(
        'File where serve appends one JSON line per chatops request it decided on (started, answered, refused, and requests that failed verification), ' +
          'besides its log on stderr. Created when missing (mode 0600).',
      ),
  })
  .strict()
  .describe('Chatops: Slack slash commands (`/slack/commands`) and Approve / Reject buttons (`/slack/interactions`) answered by `lifeboat serve`. Unset: those routes answer 404.');

export type ChatopsConfig = z.output<typeof chatopsSchema>;
export type ChatopsRule = z.output<typeof chatopsRuleSchema>;
