import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { exportCommandAndUpload, fetchCommandPayload, pipePayloadIntoCommand, prepareCommandScratch, removeCommandScratch, runCommandChecks } from './steps.js';

/** The steps of command runbooks. Their names are the activity types recorded in history: never rename one. */
export function commandActivities({ env }: KindDependencies) {
  return {
    exportCommandAndUpload: reportingFailures((input: Parameters<typeof exportCommandAndUpload>[0]) => exportCommandAndUpload(input, env)),
    pipePayloadIntoCommand: reportingFailures((input: Parameters<typeof pipePayloadIntoCommand>[0]) => pipePayloadIntoCommand(input, env)),
    fetchCommandPayload: reportingFailures((input: Parameters<typeof fetchCommandPayload>[0]) => fetchCommandPayload(input, env)),
    prepareCommandScratch: reportingFailures(prepareCommandScratch),
    removeCommandScratch: reportingFailures(removeCommandScratch),
    runCommandChecks: reportingFailures((input: Parameters<typeof runCommandChecks>[0]) => runCommandChecks(input, env)),
  };
}

export type { ExportedPayload } from './steps.js';
