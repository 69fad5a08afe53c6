/**
 * The worker-side half of a kind of target: everything about a kind that runs outside the
 * workflow sandbox. A kind is one folder, src/kinds/<kind>/, whose index.ts exports one
 * TargetKind, listed once in src/kinds/index.ts. Its deterministic half (the steps its runbooks
 * take) is workflows/kinds/<kind>, listed in workflows/kinds/index.ts. docs/architecture-kinds.md
 * says how to add one.
 */
import type { z } from 'zod';
import type { Reported } from '../../activities/failures.js';
import type { NotificationEventType, RepositoryConfig } from '../config/schema.js';
import type { targetObjectives } from '../config/common.js';
import type { targetRetention } from '../config/retention.js';
import type { targetSchedules } from '../config/schedules.js';
import type { CheckResult } from '../check/result.js';
import type { ManifestKind } from '../repository/manifest-envelope.js';
import type { Repository } from '../repository/repository.js';
import type { RepositoryFactsMemory } from '../state/repository-facts.js';
import type { ArchiverFacts, RepositoryState } from '../state/model.js';

/** What every resolved target has: what generic steps (repositories, manifests, reports, drills) use. */
export interface ResolvedTargetBase {
  /** The kind of target (the config's `type`); runbooks hand the target to the kind registered under it. */
  type: string;
  name: string;
  repositories: Array<{ name: string; location: string; config: RepositoryConfig }>;
  compression: { level: number; threads: number };
  /** The key's file and id: a reference, never the key. */
  encryption: { keyFile: string; keyId: string } | null;
  /** What every drill is measured against (the kind adds its own drill settings beside these). */
  drill: { rtoTargetSeconds?: number; rpoTargetSeconds?: number };
  /**
   * The notification channels that get this target's events (names only: URLs and secrets stay in
   * the environment), and how long a run retries one (set by resolve-target for every kind;
   * absent in results of older runs).
   */
  notifications?: { channels: Array<{ name: string; events: NotificationEventType[] }>; deliveryTimeoutSeconds: number };
}

/** What resolve-target works out before it hands a target's config to its kind. */
export type ResolvedTargetCommon = Omit<ResolvedTargetBase, 'type' | 'drill' | 'notifications'>;

/** The config schema of a kind of target: an object whose `type` is the kind's name. */
/** What every kind's config has: its type, its repositories, its objectives (`targetObjectives`: status and alerts judge every target alike) its schedules (`targetSchedules`) and its retention policy (`targetRetention`). */
export type TargetConfigSchema<Type extends string = string> = z.ZodObject<{
  type: z.ZodLiteral<Type>;
  repositories: z.ZodType<string[]>;
  objectives: typeof targetObjectives;
  schedules: typeof targetSchedules;
  retention: typeof targetRetention;
}>;

/** A kind's activities: each one a step that is safe to run twice, named as workflows call it. */
export type ActivityTable = Record<string, (input: never) => Promise<Reported<unknown>>>;

/** What a kind's activities get from the worker. */
export interface KindDependencies {
  /** The worker's lifeboat.config.yaml. */
  configPath: string;
  /** Where secret references (env var names) are resolved. */
  env: NodeJS.ProcessEnv;
}

/** The options of `lifeboat restore` a kind may read. */
/** What a kind's state reader gets for one repository of a target. */
export interface KindRepositoryRead {
  repository: Repository;
  target: string;
  /** The source's last archived file, when its archiver could be asked. */
  serverArchivedWal?: string | null;
  /** What a long-running reader (lifeboat serve) remembers between reads of this repository. */
  memory?: RepositoryFactsMemory;
  /** Reads one fact; a failure is recorded as the repository's error and gives null. */
  attempt<T>(what: string, read: () => Promise<T>): Promise<T | null>;
}

/** What a kind's preflight gets from `lifeboat check`. */
export interface PreflightContext {
  configPath: string;
  env: NodeJS.ProcessEnv;
  /** The target's repositories, in its order. */
  repositories: Array<{ name: string; config: RepositoryConfig }>;
  /** The time limit of one check, and how long a WAL segment switched out may take to reach the archive. */
  timeoutMs: number;
  archiveTimeoutMs: number;
  /** Runs one check within timeoutMs and records its result; an error becomes a failed result with fix(error). */
  check(area: string, subject: string, timeoutMs: number, run: () => Promise<string>, fix: (error: unknown) => string): Promise<CheckResult>;
}

export interface RestoreCommandOptions {
  backup?: string;
  into?: string;
  method?: string;
  yes?: boolean;
}

/** How `lifeboat restore` runs for a target of this kind. */
export interface RestorePlan {
  /** The kind's fields of the restore runbook's input (a path given by the operator made absolute here, where they typed it). */
  input: { method?: string; into?: string; replaceExisting?: boolean };
  /** What the restore replaces in place, when it does: the CLI asks first, unless --yes. */
  replaces?: string;
  /** Said to the operator before the run starts. */
  notes?: string[];
}

/** What the CLI shows of a finished restore. */
export interface RestoredSummary {
  backupId: string;
  backupKind: string;
  snapshotAt: string;
  restoredTo: string;
  safetyCopy: string | null;
}

/** A smoke check's outcome, in drill reports (whatever the kind checks with). */
export interface SmokeCheckResult {
  name: string;
  passed: boolean;
  detail: string;
  durationMs: number;
  /** What the check asks for, in words (src/kinds/smoke-check-values.ts); absent in results of older runs. */
  expected?: string;
  /** What the copy answered, or the query's error. */
  actual?: string;
}

export interface TargetKind<
  Schema extends TargetConfigSchema = TargetConfigSchema,
  Resolved extends ResolvedTargetBase = ResolvedTargetBase,
  Manifests extends readonly ManifestKind[] = readonly ManifestKind[],
  Activities extends ActivityTable = ActivityTable,
> {
  /** The config's `type` of these targets. */
  readonly type: z.output<Schema>['type'];
  /** The config schema of one target (with `.describe()` on every option: the docs come from it). */
  readonly configSchema: Schema;
  /** Backup methods a run may choose (`--method`); empty when the kind has one way to back up. */
  readonly methods: readonly string[];
  /** The kinds of backup (manifests) this kind of target makes. */
  readonly manifests: Manifests;
  /** Relative paths of the config, made absolute against the config file's directory when it is loaded. */
  absolutePaths?(config: z.output<Schema>, absolute: (path: string) => string): void;
  /**
   * The target a run works on, from its config: the first step of every runbook (so history records
   * the exact settings). References only (env var names, file paths), never secret values.
   */
  resolve(config: z.output<Schema>, common: ResolvedTargetCommon, context: { configPath: string }): Resolved;
  /** The kind's activities; loaded only by the worker (the CLI never pays for them). */
  activities(dependencies: KindDependencies): Promise<Activities>;
  /** The kind's part of the command line. */
  /**
   * `lifeboat check` of one target of this kind, besides the generic checks (config, key,
   * repositories, zstd, Temporal, schedules): each check through context.check, which runs it with
   * its time limit and records its result. Load the code lazily (`await import(...)`).
   */
  preflight?(name: string, config: z.output<Schema>, context: PreflightContext): Promise<void>;
  /**
   * What `lifeboat status` and /metrics read of a target of this kind beyond its backups and
   * reports (PostgreSQL: its server's archiver, and the WAL archive of each repository). Load the
   * code lazily.
   */
  readonly state?: {
    /** The source's own account of its archiving, once per read of the target; never throws. */
    archiver?(config: z.output<Schema>, env: NodeJS.ProcessEnv, now: number): Promise<ArchiverFacts>;
    /** The continuous archive in one repository (head, recovery window). */
    wal?(input: KindRepositoryRead): Promise<NonNullable<RepositoryState['wal']>>;
  };
  readonly cli: {
    /** What `lifeboat restore` sends and asks (throw UsageError for options the kind refuses). */
    restore(options: RestoreCommandOptions, target: { name: string; config: z.output<Schema> }): RestorePlan;
    /** The first line a finished restore of one of this kind's backups prints. */
    restored(result: RestoredSummary): string;
  };
}

/** A | B -> A & B: how the registries join what each kind adds to a shared type (activities, results, reports). */
export type UnionToIntersection<U> = (U extends unknown ? (union: U) => void : never) extends (intersection: infer I) => void ? I : never;

/** Checks a kind's definition against the contract, keeping its exact types for the registry. */
export function defineTargetKind<
  Schema extends TargetConfigSchema,
  Resolved extends ResolvedTargetBase,
  const Manifests extends readonly ManifestKind[],
  Activities extends ActivityTable,
>(kind: TargetKind<Schema, Resolved, Manifests, Activities>): TargetKind<Schema, Resolved, Manifests, Activities> {
  return kind;
}
