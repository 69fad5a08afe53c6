import { z } from 'zod';
import { drillObjectives, envVarName, targetObjectives, targetRepositories, targetMinCopies } from '../../config/common.js';
import { targetRetention } from '../../config/retention.js';
import { targetSchedules } from '../../config/schedules.js';

/** The longest a configured command may run: a transfer step's own limit (workflows/runbook.ts). */
const maxTimeoutSeconds = 4 * 3600;

/** The fields of a configured program (backup, restore, or a drill's check). */
const commandFields = {
  argv: z
    .array(z.string())
    .min(1)
    .describe('The program and its arguments, run without a shell (write ["sh", "-c", "..."] to have one). argv[0] is looked up on PATH.'),
  cwd: z.string().optional().describe('Working directory; default: the worker\'s (a drill check: its scratch directory).'),
  env: z
    .record(envVarName, z.string())
    .default({})
    .describe('Plain environment variables (not for secrets: they are in the config and the run\'s history; use envFrom).'),
  envFrom: z
    .record(envVarName, envVarName)
    .default({})
    .describe(
      'NAME: SOURCE: the program gets NAME set to the value of the worker\'s environment variable SOURCE (a reference: the value is never in the config, history or logs). ' +
        'Besides env and envFrom the program inherits only PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ and TMPDIR.',
    ),
  timeoutSeconds: z
    .number()
    .int()
    .positive()
    .max(maxTimeoutSeconds)
    .default(3600)
    .describe(`Time limit; a program still running then is stopped (SIGTERM, SIGKILL 5 s later) and the step fails. At most ${maxTimeoutSeconds}.`),
};

export const commandSpecSchema = z.object(commandFields).strict();

export const commandCheckSchema = z
  .object({
    name: z.string().min(1).describe('Shown in drill results and reports.'),
    ...commandFields,
  })
  .strict();

/** A target of type command in lifeboat.config.yaml. */
export const commandTargetSchema = z
  .object({
    type: z
      .literal('command')
      .describe('Anything a command can export: the stdout of `backup` is the backup, piped into `restore`\'s stdin to restore, checked by `drill.checks` on a scratch copy.'),
    repositories: targetRepositories.describe('Names of the repositories every backup is written to.'),
    minCopies: targetMinCopies,
    backup: commandSpecSchema.describe('The export: its stdout is streamed into the repositories (zstd, encryption, sha256). A non-zero exit, a signal or the time limit fails the backup, which then stores nothing.'),
    restore: commandSpecSchema
      .optional()
      .describe('The import: the verified payload is piped into its stdin; where it goes and what it replaces is the command\'s. Without it, a restore needs --into (a file).'),
    payloadName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a file name: letters, digits, ".", "_" or "-"')
      .default('payload')
      .describe('Name of the payload: the stored object is <payloadName>.zst, and a drill\'s scratch copy is <scratch>/<payloadName> (e.g. "repo.bundle", "globals.sql").'),
    drill: z
      .object({
        ...drillObjectives,
        checks: z
          .array(commandCheckSchema)
          .default([])
          .describe('Commands run on the scratch copy; each passes when it exits 0. "{payload}" and "{scratch}" in argv (and $LIFEBOAT_PAYLOAD, $LIFEBOAT_SCRATCH_DIR) name the copy and its directory.'),
        scratchDir: z.string().optional().describe('Where the drill decodes the payload; default: the system temp dir.'),
      })
      .strict()
      .default({ checks: [] })
      .describe('A drill: the newest backup decoded into a scratch directory (both checksums verified), the checks run on it, the directory always removed.'),
    objectives: targetObjectives,
    schedules: targetSchedules,
    retention: targetRetention,
  })
  .strict();

export type CommandTargetConfig = z.output<typeof commandTargetSchema>;
export type CommandCheck = z.output<typeof commandCheckSchema>;
