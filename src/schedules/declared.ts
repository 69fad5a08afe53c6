/**
 * The schedules a config declares, as Temporal Schedules: what `lifeboat schedules apply` makes the
 * server hold. Pure: no server is asked here (src/schedules/sync.ts compares and applies).
 *
 * Each `targets.<target>.schedules.<name>` becomes the schedule `lifeboat/<target>/<name>`. Its
 * runs start exactly as a manual run of the same runbook does (src/client.ts runbookStartOptions:
 * input, summary, search attributes), with `requestedBy` naming the schedule, and the base workflow
 * id `<runbook>-<target>`, to which Temporal appends the time the run was due:
 * `backup-orders-2026-11-21T02:00:00Z` (a manual run is `backup-orders-20261121T020000Z-3f9a`: manualWorkflowId in src/client.ts).
 */
import { createHash } from 'node:crypto';
import type { ScheduleDescription, ScheduleOptions, ScheduleOptionsStartWorkflowAction, ScheduleOverlapPolicy, ScheduleSpec } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { runbookStartOptions, type TemporalSettings } from '../client.js';
import type { Config, OverlapPolicy, ScheduleConfig, ScheduledRunbook } from '../config/schema.js';
import { durationMs, formatDuration } from '../duration.js';
import type { RequestedBy } from '../requested-by.js';
import { toCalendarSpec, type CalendarConfig } from './calendar.js';

export const scheduleIdPrefix = 'lifeboat/';

export function scheduleIdOf(target: string, name: string): string {
  return `${scheduleIdPrefix}${target}/${name}`;
}

/**
 * The schedule's own memo, written once when apply creates it (Temporal cannot change a schedule's
 * memo later): it marks the schedules Lifeboat manages, so apply never deletes anyone else's.
 */
export const ownerMemoKey = 'lifeboat';
export interface OwnerMemo {
  managedBy: 'lifeboat';
  target: string;
  name: string;
}

/**
 * Bumped when this module starts compiling the same config entry differently, so that apply
 * updates every schedule once to the new form.
 */
const declarationFormat = 1;

export interface DeclaredSchedule {
  id: string;
  target: string;
  name: string;
  runbook: ScheduledRunbook;
  /** Where it is declared, for messages: targets.orders.schedules.nightly */
  configPath: string;
  /** Short hash of everything below; runs carry it in requestedBy.declaration. */
  declaration: string;
  options: ScheduleOptions<ScheduleOptionsStartWorkflowAction<Workflow>>;
  /** The fields apply compares with the server's description. */
  view: ScheduleView;
  /** When it runs, in words: `cron "0 2 * * *" (Europe/Berlin), jitter 10m`. */
  when: string;
}

/** The parts of a schedule apply compares, in a form both the config and a description give. */
export interface ScheduleView {
  workflowType: string;
  workflowId: string;
  taskQueue: string;
  input: string;
  summary: string;
  details: string;
  searchAttributes: string;
  requestedBy: string;
  overlap: string;
  catchupWindow: string;
  pauseOnFailure: boolean;
  timezone: string;
  jitter: string;
}

/** JSON with object keys sorted, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

export function temporalOverlap(policy: OverlapPolicy): Exclude<ScheduleOverlapPolicy, undefined> {
  return policy.toUpperCase().replace(/-/g, '_') as Exclude<ScheduleOverlapPolicy, undefined>;
}

export function configOverlap(policy: ScheduleOverlapPolicy | undefined): string {
  return (policy ?? 'SKIP').toLowerCase().replace(/_/g, '-');
}

/** The runbook's input: the target and the fields of the entry that this runbook takes. */
export function runbookInput(target: string, schedule: ScheduleConfig): { target: string } & Record<string, unknown> {
  return {
    target,
    ...(schedule.method !== undefined ? { method: schedule.method } : {}),
    // The verify runbook takes readData as text: "full", "n/t" or "x%"; false means its default (none).
    ...(schedule.readData !== undefined && schedule.readData !== false ? { readData: schedule.readData === true ? 'full' : schedule.readData } : {}),
    ...(schedule.to !== undefined ? { to: schedule.to } : {}),
    ...(schedule.from !== undefined ? { from: schedule.from } : {}),
  };
}

function specOf(schedule: ScheduleConfig): ScheduleSpec {
  const jitter = durationMs(schedule.jitter);
  return {
    ...(schedule.cron !== undefined ? { cronExpressions: [schedule.cron.trim()] } : {}),
    ...(schedule.calendar !== undefined ? { calendars: [toCalendarSpec(schedule.calendar as CalendarConfig)] } : {}),
    ...(schedule.every !== undefined
      ? { intervals: [{ every: durationMs(schedule.every), ...(schedule.offset !== undefined ? { offset: durationMs(schedule.offset) } : {}) }] }
      : {}),
    ...(jitter > 0 ? { jitter } : {}),
    timezone: schedule.timezone,
  };
}

function describeWhen(schedule: ScheduleConfig): string {
  const what =
    schedule.cron !== undefined
      ? `cron "${schedule.cron.trim()}"`
      : schedule.every !== undefined
        ? `every ${schedule.every}${schedule.offset ? ` + ${schedule.offset}` : ''}`
        : `calendar ${canonicalJson(schedule.calendar)}`;
  const zone = schedule.every === undefined ? ` (${schedule.timezone})` : '';
  return `${what}${zone}${durationMs(schedule.jitter) > 0 ? `, jitter ${schedule.jitter}` : ''}`;
}

function declare(target: string, name: string, schedule: ScheduleConfig, settings: TemporalSettings): DeclaredSchedule {
  const id = scheduleIdOf(target, name);
  const input = runbookInput(target, schedule);
  const spec = specOf(schedule);
  const policies = {
    overlap: temporalOverlap(schedule.overlap),
    catchupWindow: durationMs(schedule.catchupWindow),
    pauseOnFailure: schedule.pauseOnFailure,
  };
  const action = (requestedBy: RequestedBy): ScheduleOptionsStartWorkflowAction<Workflow> => ({
    type: 'startWorkflow',
    workflowType: schedule.runbook,
    taskQueue: settings.taskQueue,
    workflowId: `${schedule.runbook}-${target}`,
    ...runbookStartOptions(schedule.runbook, input, requestedBy),
  });
  const declaration = createHash('sha256')
    .update(canonicalJson({ declarationFormat, spec, policies, action: action({ via: 'schedule', schedule: id }) }))
    .digest('hex')
    .slice(0, 12);
  const options: DeclaredSchedule['options'] = {
    scheduleId: id,
    spec,
    action: action({ via: 'schedule', schedule: id, declaration }),
    policies,
    memo: { [ownerMemoKey]: { managedBy: 'lifeboat', target, name } satisfies OwnerMemo },
  };
  return {
    id,
    target,
    name,
    runbook: schedule.runbook,
    configPath: `targets.${target}.schedules.${name}`,
    declaration,
    options,
    view: viewOfOptions(options),
    when: describeWhen(schedule),
  };
}

/** Every schedule of the config (of one target, when given), sorted by id. */
export function declaredSchedules(config: Config, settings: TemporalSettings, onlyTarget?: string): DeclaredSchedule[] {
  const declared: DeclaredSchedule[] = [];
  for (const [target, targetConfig] of Object.entries(config.targets)) {
    if (onlyTarget !== undefined && target !== onlyTarget) continue;
    for (const [name, schedule] of Object.entries(targetConfig.schedules)) declared.push(declare(target, name, schedule, settings));
  }
  return declared.sort((a, b) => (a.id < b.id ? -1 : 1));
}

type SearchAttributeList = Array<{ key: { name: string }; value: unknown }>;

function searchAttributeText(attributes: SearchAttributeList | { getAll(): SearchAttributeList } | undefined): string {
  const pairs = attributes === undefined ? [] : Array.isArray(attributes) ? attributes : attributes.getAll();
  return pairs
    .map((pair) => `${pair.key.name}=${canonicalJson(pair.value)}`)
    .sort()
    .join(' ');
}

function viewOf(
  action: { workflowType: unknown; workflowId?: string | undefined; taskQueue: string; args?: unknown; staticSummary?: string | undefined; staticDetails?: string | undefined; memo?: Record<string, unknown> | undefined },
  attributes: SearchAttributeList | { getAll(): SearchAttributeList } | undefined,
  policies: { overlap?: ScheduleOverlapPolicy | undefined; catchupWindow?: number | string | undefined; pauseOnFailure?: boolean | undefined } | undefined,
  spec: { timezone?: string | undefined; jitter?: number | string | undefined },
): ScheduleView {
  const ms = (value: number | string | undefined) => (typeof value === 'string' ? durationMs(value) : (value ?? 0));
  return {
    workflowType: typeof action.workflowType === 'string' ? action.workflowType : '?',
    workflowId: action.workflowId ?? '',
    taskQueue: action.taskQueue,
    input: canonicalJson(action.args ?? []),
    summary: action.staticSummary ?? '',
    details: action.staticDetails ?? '',
    searchAttributes: searchAttributeText(attributes),
    requestedBy: canonicalJson(action.memo?.requestedBy ?? null),
    overlap: configOverlap(policies?.overlap),
    catchupWindow: formatDuration(ms(policies?.catchupWindow)),
    pauseOnFailure: policies?.pauseOnFailure ?? false,
    timezone: spec.timezone || 'UTC',
    jitter: formatDuration(ms(spec.jitter)),
  };
}

function viewOfOptions(options: DeclaredSchedule['options']): ScheduleView {
  const { action } = options;
  return viewOf(action, action.typedSearchAttributes as SearchAttributeList | undefined, options.policies, options.spec);
}

/** The same view of a schedule as the server describes it. */
export function viewOfDescription(description: ScheduleDescription): ScheduleView {
  const { action } = description;
  return viewOf(action, action.typedSearchAttributes as SearchAttributeList | { getAll(): SearchAttributeList } | undefined, description.policies, description.spec);
}

/** The declaration hash the scheduled runs of a described schedule carry, if Lifeboat wrote it. */
export function declarationOf(description: ScheduleDescription): string | undefined {
  const requestedBy = description.action.memo?.requestedBy as Partial<Extract<RequestedBy, { via: 'schedule' }>> | undefined;
  return typeof requestedBy?.declaration === 'string' ? requestedBy.declaration : undefined;
}

/** Lifeboat's owner memo of a schedule, if it has one. */
export function ownerOf(memo: Record<string, unknown> | undefined): OwnerMemo | undefined {
  const owner = memo?.[ownerMemoKey] as Partial<OwnerMemo> | undefined;
  return owner?.managedBy === 'lifeboat' && typeof owner.target === 'string' && typeof owner.name === 'string' ? (owner as OwnerMemo) : undefined;
}
