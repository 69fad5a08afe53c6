/**
 * Retention planning over a repository holding many backups of one target (1,000 by default),
 * on fs and on S3: the plan's wall time against its 2 s budget, and the number of requests by
 * kind, for backups of 1 object and of 4 objects each: the list and get requests must grow with
 * the number of backups, never with the number of objects inside them.
 *
 * The fixture (test/helpers/backup-fixture.ts) writes small complete backups straight into the
 * repository; it is reused by runs of the same size (under .lifeboat/bench/work, removed with it).
 */
import { openBackend } from '../../src/repository/open.js';
import type { Backend } from '../../src/repository/backend.js';
import { Repository } from '../../src/repository/repository.js';
import { planRepository, readRetentionState } from '../../src/retention/apply.js';
import type { RetentionPolicy } from '../../src/retention/plan.js';
import { writeFixtureBackups } from '../../test/helpers/backup-fixture.js';
import { CountingBackend, type RequestCounts as CountingRequestCounts } from '../../test/helpers/counting-backend.js';
import type { Execution } from '../measure.js';
import type { Comparison } from '../report.js';
import { s3AccessKeyEnv, s3SecretKeyEnv, type BenchS3 } from '../stack.js';

/** What the plan asks of the repository: requests by kind, and the S3 requests they would be (listed entries are left out: they are data, not requests). */
type RequestCounts = Omit<CountingRequestCounts, 'listedKeys'>;

const policy: RetentionPolicy = { keepDaily: 7, keepWeekly: 4, keepMonthly: 12, timezone: 'Europe/Berlin' };
const budgetMs = 2000;

export async function measureRetentionPlan(options: {
  workDir: string;
  s3: BenchS3;
  backups: number;
  runs: number;
  say: (line: string) => void;
}): Promise<{ comparisons: Comparison[]; notes: string[] }> {
  const { say } = options;
  const env = { [s3AccessKeyEnv]: options.s3.accessKeyId, [s3SecretKeyEnv]: options.s3.secretAccessKey };
  const backends: Array<{ name: string; open: () => Backend }> = [
    { name: 'fs', open: () => openBackend({ type: 'fs', path: `${options.workDir}/retention-fs` }) },
    {
      name: 'S3',
      open: () =>
        openBackend(
          {
            type: 's3',
            endpoint: options.s3.endpoint,
            bucket: options.s3.bucket,
            prefix: 'retention/',
            region: 'us-east-1',
            forcePathStyle: true,
            accessKeyIdEnv: s3AccessKeyEnv,
            secretAccessKeyEnv: s3SecretKeyEnv,
            partSizeMiB: 8,
          },
          env,
        ),
    },
  ];
  const comparisons: Comparison[] = [];
  const notes: string[] = [];
  for (const { name, open } of backends) {
    const counted: Array<{ objects: number; counts: RequestCounts }> = [];
    const executions: Execution[] = [];
    for (const objectsPerBackup of [1, 4]) {
      const target = `plan-${objectsPerBackup}`;
      const fixture = new Repository('bench', open());
      const started = Date.now();
      await writeFixtureBackups(fixture, target, { count: options.backups, objectsPerBackup, objectBytes: 32, intervalMs: 6 * 3_600_000, concurrency: 32 });
      say(`  retention fixture (${name}): ${options.backups} backups of ${objectsPerBackup} object(s) written in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      for (let run = 1; run <= options.runs; run++) {
        const backend = new CountingBackend(open());
        const repository = new Repository('bench', backend);
        const cpuBefore = process.cpuUsage();
        const t0 = performance.now();
        const now = new Date();
        const state = await readRetentionState(repository, target, async () => undefined, now);
        const plan = planRepository('bench', state, policy, { now, deadUploadAfterHours: 48 });
        const wallMs = performance.now() - t0;
        const cpu = process.cpuUsage(cpuBefore);
        if (plan.backups.length !== options.backups) throw new Error(`the plan holds ${plan.backups.length} backups, not ${options.backups}`);
        const { listedKeys: _listed, ...counts } = backend.counts;
        say(`  retention plan (${name}, ${objectsPerBackup} object(s) per backup): ${(wallMs / 1000).toFixed(2)} s; requests ${JSON.stringify(counts)}`);
        if (objectsPerBackup === 1) executions.push({ wallMs, cpuSeconds: (cpu.user + cpu.system) / 1e6, otherCpuSeconds: 0, steps: [], notes: {} });
        if (run === 1) counted.push({ objects: objectsPerBackup, counts });
      }
    }
    const [one, four] = counted;
    const same = JSON.stringify(one!.counts) === JSON.stringify(four!.counts);
    notes.push(
      `retention plan on ${name}, ${options.backups} backups: requests with 1 object per backup ${describe(one!.counts)}; with 4 objects per backup ${describe(four!.counts)}` +
        ` — ${same ? 'the same: they grow with the number of backups, not of objects' : 'DIFFERENT: they grow with the objects'}`,
    );
    if (!same) say(`  MISS: the requests of the plan depend on the number of objects (${name})`);
    comparisons.push({
      id: `retention-plan-${name.toLowerCase()}`,
      title: `retention plan over ${options.backups} backups (${name})`,
      lifeboat: { label: `plan: folder listing, ${options.backups} manifests, leases, verify state (keepDaily 7, keepWeekly 4, keepMonthly 12, Europe/Berlin)`, executions },
      baseline: { label: 'budget: 2 s', executions: [{ wallMs: budgetMs, cpuSeconds: 0, otherCpuSeconds: 0, steps: [], notes: {} }] },
      maxRatio: 1,
      databaseBytes: 0,
    });
  }
  return { comparisons, notes };
}

function describe(counts: RequestCounts): string {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([operation, n]) => `${n} ${operation}`)
    .join(', ');
}
