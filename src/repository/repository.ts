import { Readable } from 'node:stream';
import { LifeboatError } from '../errors.js';
import { readTextIfAny, type Backend } from './backend.js';
import { manifestSchema, type Manifest } from './manifest.js';
import { isBackupId } from '../backup-id.js';

export const latestBackupFormat = 'lifeboat.latest-backup/v1';

/** <target>/latest-backup/<backupId>: which backup is the newest (the manifest stays the truth about it). */
export interface LatestBackupMarker {
  format: typeof latestBackupFormat;
  target: string;
  id: string;
  kind: Manifest['kind'];
  snapshotAt: string;
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The runbook a report belongs to: its `runbook` field; drill reports written before that field existed have none. */
export function runbookOfReport(report: unknown): string | undefined {
  const runbook = (report as { runbook?: unknown } | null)?.runbook ?? 'drill';
  return typeof runbook === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(runbook) ? runbook : undefined;
}

/** A drill that passed or a verify that found everything valid. */
export function reportPassed(report: unknown): boolean {
  const verdict = report as { passed?: unknown; valid?: unknown } | null;
  return verdict?.passed === true || verdict?.valid === true;
}

/** When a report's run ended (or started, for reports that only say that), in ms; 0 when it says neither. */
export function reportTime(report: unknown): number {
  const fields = report as { finishedAt?: unknown; startedAt?: unknown } | null;
  for (const value of [fields?.finishedAt, fields?.startedAt]) {
    const time = typeof value === 'string' ? Date.parse(value) : NaN;
    if (Number.isFinite(time)) return time;
  }
  return 0;
}

/**
 * The repository layer: the on-disk format on top of a Backend.
 *
 *   <target>/backups/<backupId>/manifest.json   written last
 *   <target>/backups/<backupId>/<payload>
 *   <target>/reports/<runId>.json
 *   <target>/reports/<runId>.html                the same report for people (drills, PITR)
 *   <target>/audit/<yyyy>/<mm>/<finishedAt>-<workflowId>.json   one record per finished run (src/audit/)
 *   <target>/latest-backup/<backupId>           marker of the newest backup (a hint; see advanceLatestBackup)
 *   <target>/reports/latest-<runbook>.json      a copy of the newest report of each runbook (drill, verify, ...)
 *   <target>/reports/latest-<runbook>-passed.json   and of the newest one that passed (a drill passed, a verify found all valid)
 */

/** A report as stored: the exact bytes whose sha256 the HTML page names. */
export function reportText(report: unknown): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
/** Where a backup's objects live under a repository's root (also for tools reading a repository's files, like the benchmark). */
export function backupDirKey(target: string, backupId: string): string {
  return `${target}/backups/${backupId}`;
}

export function backupObjectKey(target: string, backupId: string, objectName: string): string {
  return `${backupDirKey(target, backupId)}/${objectName}`;
}

/**
 * The stored name of an object that attempt `attempt` of a backup step writes: `attempt-<n>/<name>`.
 * Every attempt writes under names of its own, recorded in the manifest, so an attempt that lost
 * its heartbeat but still writes (a network partition: Temporal has started the next attempt
 * meanwhile) can never overwrite what the retry stored and the manifest points at; it only leaves
 * objects no manifest names.
 */
export function attemptObjectName(attempt: number, name: string): string {
  if (!Number.isInteger(attempt) || attempt < 1) throw new Error(`an attempt is a positive integer, got ${attempt}`);
  return `attempt-${attempt}/${name}`;
}

/** The attempt that wrote a stored object, from its name; 0 for backups written before attempts had names of their own. */
export function attemptOfObject(name: string): number {
  const match = /^attempt-(\d+)\//.exec(name);
  return match ? Number(match[1]) : 0;
}

export class Repository {
  constructor(
    readonly name: string,
    readonly backend: Backend,
  ) {}

  get location(): string {
    return this.backend.location;
  }

  backupDir(target: string, backupId: string): string {
    return backupDirKey(target, backupId);
  }

  objectKey(target: string, backupId: string, objectName: string): string {
    return backupObjectKey(target, backupId, objectName);
  }

  manifestKey(target: string, backupId: string): string {
    return this.objectKey(target, backupId, 'manifest.json');
  }

  reportKey(target: string, runId: string, format: 'json' | 'html' = 'json'): string {
    return `${target}/reports/${runId}.${format}`;
  }

  /** Where the markers of the target's newest backup live (outside backups/, which holds only backups). */
  latestBackupPrefix(target: string): string {
    return `${target}/latest-backup/`;
  }

  /** Where the copy of a runbook's newest report (or newest passing report) lives. */
  latestReportKey(target: string, runbook: string, options: { passed?: boolean } = {}): string {
    return `${target}/reports/latest-${runbook}${options.passed ? '-passed' : ''}.json`;
  }

  /**
   * Writes a backup's manifest (the last write: the backup exists from then on) and marks it the
   * newest if it is. With `text`, those exact bytes (a copy from another repository keeps the
   * manifest byte for byte, fields this version does not know included).
   */
  async writeManifest(manifest: Manifest, options: { text?: string } = {}): Promise<void> {
    const body = Buffer.from(options.text ?? `${JSON.stringify(manifest, null, 2)}\n`);
    await this.backend.put(this.manifestKey(manifest.target, manifest.id), Readable.from([body]));
    await this.advanceLatestBackup(manifest);
  }

  /**
   * Marks this backup as the newest one: <target>/latest-backup/<backupId>, then removes the
   * markers of older backups, so that monitoring finds the newest backup with one small listing
   * and one read instead of a listing of every object. Lock-free and forward-only: a writer only
   * removes markers older than the newest it sees, so the newest marker always stays, whatever
   * the order of concurrent writers (and a late retry of an older backup removes its own marker).
   * Only a hint: readers check that the manifest a marker names exists, and list the backups when
   * none does (a withdrawn backup, a repository written before the markers existed).
   */
  private async advanceLatestBackup(manifest: Manifest): Promise<void> {
    const prefix = this.latestBackupPrefix(manifest.target);
    const marker: LatestBackupMarker = { format: latestBackupFormat, target: manifest.target, id: manifest.id, kind: manifest.kind, snapshotAt: manifest.snapshotAt };
    await this.backend.put(`${prefix}${manifest.id}`, Readable.from([Buffer.from(`${JSON.stringify(marker)}\n`)]));
    const marked = await this.latestBackupIds(manifest.target);
    for (const id of marked.slice(1)) await this.backend.delete(`${prefix}${id}`);
  }

  /** Ids the latest-backup markers name, newest first (usually one; more while writers race or after a prune failed). */
  async latestBackupIds(target: string): Promise<string[]> {
    const prefix = this.latestBackupPrefix(target);
    return (await this.backend.list(prefix))
      .map((object) => object.key.slice(prefix.length))
      .filter(isBackupId)
      .sort()
      .reverse();
  }

  /** The manifest of one backup as stored (its text) and as read; undefined when it has none; BackupCorrupt when it is not one. */
  async readManifestTextIfAny(target: string, backupId: string): Promise<{ text: string; manifest: Manifest } | undefined> {
    const text = await readTextIfAny(this.backend, this.manifestKey(target, backupId));
    if (text === undefined) return undefined;
    return { text, manifest: this.parseManifest(text, target, backupId) };
  }

  /** The manifest of one backup; BackupNotFound when it has none (incomplete backups do not exist). */
  async readManifest(target: string, backupId: string): Promise<Manifest> {
    const manifest = await this.readManifestIfAny(target, backupId);
    if (manifest) return manifest;
    throw new LifeboatError(
      'BackupNotFound',
      `backup ${backupId} of target "${target}" does not exist in repository "${this.name}" (${this.location})`,
      `Run \`lifeboat backups ${target}\` to see the backups it holds`,
    );
  }

  /**
   * The manifest of one backup, undefined when it has none; with `kind`, also undefined when it
   * describes a backup of another kind (which is then not validated). BackupCorrupt when it is
   * not a manifest of this backup.
   */
  async readManifestIfAny(target: string, backupId: string, kind?: Manifest['kind']): Promise<Manifest | undefined> {
    const raw = await readTextIfAny(this.backend, this.manifestKey(target, backupId));
    if (raw === undefined) return undefined;
    if (kind !== undefined) {
      const parsed = tryParse(raw);
      // Not JSON at all is damage (parseManifest says so); a manifest of another kind is skipped unread.
      if (parsed !== undefined && (parsed as { kind?: unknown } | null)?.kind !== kind) return undefined;
    }
    return this.parseManifest(raw, target, backupId);
  }

  private parseManifest(raw: string, target: string, backupId: string): Manifest {
    const key = this.manifestKey(target, backupId);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new LifeboatError('BackupCorrupt', `manifest ${key} in repository "${this.name}" is not valid JSON`, 'Restore another backup');
    }
    const result = manifestSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new LifeboatError(
        'BackupCorrupt',
        `manifest ${key} in repository "${this.name}" is not a Lifeboat manifest: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
        'Restore another backup',
      );
    }
    if (result.data.id !== backupId || result.data.target !== target) {
      throw new LifeboatError('BackupCorrupt', `manifest ${key} describes ${result.data.target}/${result.data.id}, not ${target}/${backupId}`);
    }
    return result.data;
  }

  /**
   * Takes a complete backup out of this repository: the manifest first, so that from the first
   * delete on it is no longer listed or restored, then its objects. For a copy proven damaged.
   */
  async withdrawBackup(target: string, backupId: string): Promise<number> {
    await this.backend.delete(this.manifestKey(target, backupId));
    return 1 + (await this.discardUnfinishedBackup(target, backupId));
  }

  /**
   * Nothing under a backup id counts before its manifest exists, so a backup attempt starts by
   * removing what an earlier, interrupted attempt left there (objects, temp files, unfinished
   * multipart uploads): a retried backup never leaves duplicated or half-written objects behind.
   * Refuses (throws) when the backup has a manifest. Returns how many things were removed.
   *
   * Without `beforeAttempt`, everything (a backup that failed before its manifest). With it, what
   * the attempts before that one left (their objects, temp files and unfinished uploads), and
   * nothing of that attempt or later ones: an earlier attempt that is still running (it lost its
   * heartbeat, not its process) must not remove what the current attempt stores.
   */
  async discardUnfinishedBackup(target: string, backupId: string, options: { beforeAttempt?: number } = {}): Promise<number> {
    if (await this.backend.head(this.manifestKey(target, backupId))) {
      throw new Error(`backup ${backupId} of "${target}" already has a manifest in repository "${this.name}"; refusing to overwrite it`);
    }
    const prefix = `${this.backupDir(target, backupId)}/`;
    const { beforeAttempt } = options;
    let removed = 0;
    if (beforeAttempt === undefined) {
      removed += await this.backend.discardIncomplete(prefix);
    } else {
      for (let attempt = 1; attempt < beforeAttempt; attempt++) removed += await this.backend.discardIncomplete(`${prefix}${attemptObjectName(attempt, '')}`);
    }
    for (const object of await this.backend.list(prefix)) {
      if (beforeAttempt !== undefined && attemptOfObject(object.key.slice(prefix.length)) >= beforeAttempt) continue;
      await this.backend.delete(object.key);
      removed++;
    }
    return removed;
  }

  /** Ids of complete backups (those with a manifest), newest first. */
  async listBackupIds(target: string): Promise<string[]> {
    const prefix = `${target}/backups/`;
    const objects = await this.backend.list(prefix);
    const ids = objects
      .filter((object) => object.key.endsWith('/manifest.json'))
      .map((object) => object.key.slice(prefix.length, -'/manifest.json'.length))
      .filter((id) => id.length > 0 && !id.includes('/'));
    return ids.sort().reverse();
  }

  /**
   * Names of every folder under <target>/backups/, newest first: complete backups, and backups
   * without a manifest (running, interrupted, or being removed). One listing request per 1,000
   * backups however many objects each holds (Backend.listFolder), unlike listBackupIds.
   */
  async listBackupFolders(target: string): Promise<string[]> {
    const { folders } = await this.backend.listFolder(`${target}/backups/`);
    return folders.sort().reverse();
  }

  /**
   * Manifests of complete backups, newest first, and the backups whose manifest could not be read:
   * one damaged or foreign manifest must not hide every other backup of the repository.
   */
  async listBackups(target: string): Promise<{ manifests: Manifest[]; unreadable: Array<{ id: string; error: Error }> }> {
    const ids = await this.listBackupIds(target);
    const read = await Promise.all(
      ids.map((id) => this.readManifest(target, id).then((manifest) => ({ id, manifest }), (error: Error) => ({ id, error }))),
    );
    return {
      manifests: read.flatMap((entry) => ('manifest' in entry ? [entry.manifest] : [])),
      unreadable: read.flatMap((entry) => ('error' in entry ? [{ id: entry.id, error: entry.error }] : [])),
    };
  }

  async latestBackupId(target: string): Promise<string | undefined> {
    return (await this.listBackupIds(target))[0];
  }

  /**
   * Stores a report under its run id, and as latest-<runbook>.json unless that holds a newer
   * report (a late retry of an old run must not hide a newer result). The runbook is the report's
   * `runbook` field; reports written before it existed are drill reports.
   */
  async writeReport(target: string, runId: string, report: unknown): Promise<string> {
    const key = this.reportKey(target, runId);
    const body = Buffer.from(reportText(report));
    await this.backend.put(key, Readable.from([body]));
    const runbook = runbookOfReport(report);
    if (runbook === undefined) return key;
    for (const passedOnly of reportPassed(report) ? [false, true] : [false]) {
      const current = await this.readLatestReport(target, runbook, { passed: passedOnly }).catch(() => undefined);
      if (current === undefined || !(reportTime(current) > reportTime(report))) {
        await this.backend.put(this.latestReportKey(target, runbook, { passed: passedOnly }), Readable.from([body]));
      }
    }
    return key;
  }

  /**
   * The newest report of a runbook as stored (parsed JSON, not validated), or with passed: the
   * newest one that passed; undefined when there is none. BackupCorrupt when it is not JSON.
   */
  async readLatestReport(target: string, runbook: string, options: { passed?: boolean } = {}): Promise<unknown> {
    const key = this.latestReportKey(target, runbook, options);
    const raw = await readTextIfAny(this.backend, key);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new LifeboatError('BackupCorrupt', `report ${key} in repository "${this.name}" is not valid JSON`, `The next ${runbook} run replaces it`);
    }
  }

  /** The HTML page of a report, beside its JSON. */
  async writeReportPage(target: string, runId: string, html: string): Promise<string> {
    const key = this.reportKey(target, runId, 'html');
    await this.backend.put(key, Readable.from([Buffer.from(html)]));
    return key;
  }

  /** The JSON of a stored report as text (its exact bytes), undefined when there is none. */
  async readReportText(target: string, runId: string): Promise<string | undefined> {
    return readTextIfAny(this.backend, this.reportKey(target, runId));
  }
}
