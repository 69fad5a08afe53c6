import type { Config } from '../config/schema.js';
import { openBackend } from '../repository/open.js';
import { Repository } from '../repository/repository.js';

/**
 * The stored JSON report of a run, from the first repository that has it: the target named in the
 * workflow id (`drill-<target>-<time>`) first, then every other target. Also says which
 * repositories could not be read.
 */
export async function findStoredReport(
  config: Config,
  workflowId: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ found?: { text: string; from: string }; problems: string[] }> {
  const named = /^[a-z]+-(.+)-\d{8}T\d{6}Z(-[0-9a-f]+)?$/.exec(workflowId)?.[1];
  const targets = Object.keys(config.targets).sort((a, b) => Number(b === named) - Number(a === named));
  const problems: string[] = [];
  for (const target of targets) {
    for (const name of config.targets[target]!.repositories) {
      try {
        const repository = new Repository(name, openBackend(config.repositories[name]!, env));
        const text = await repository.readReportText(target, workflowId);
        if (text !== undefined) return { found: { text, from: `${name}:${repository.reportKey(target, workflowId)}` }, problems };
      } catch (error) {
        problems.push(`repository "${name}": ${(error as Error).message}`);
      }
    }
  }
  return { problems };
}
