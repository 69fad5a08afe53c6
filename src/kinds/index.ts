/**
 * The kinds of target the worker and the CLI know (the worker-side halves; the workflow-side
 * halves are listed in workflows/kinds/index.ts, and a unit test checks that both lists agree).
 * Adding a kind: its folder under src/kinds/, and one line here. The config's union of targets,
 * the union of manifests and the activities the worker registers are all built from this list.
 */
import { z } from 'zod';
import type { ManifestKind } from '../repository/manifest-envelope.js';
import type { ActivityTable, TargetKind, UnionToIntersection } from './contract.js';
import { postgresKind } from './postgres/index.js';
import { sqliteKind } from './sqlite/index.js';

export const targetKinds = [sqliteKind, postgresKind] as const;

type Kinds = (typeof targetKinds)[number];

/** A target of any kind, as the resolve-target step hands it to runbooks. */
export type ResolvedTarget = ReturnType<Kinds['resolve']>;

/** Every kind of backup, made by any kind of target. */
export const manifestKinds = targetKinds.flatMap((kind): Kinds['manifests'][number][] => [...kind.manifests]);

/** A manifest of any kind of backup. */
export type Manifest = z.output<Kinds['manifests'][number]['schema']>;

/** The activities of every kind, as one table (their names are unique across kinds: a test checks it). */
export type KindActivities = UnionToIntersection<Awaited<ReturnType<Kinds['activities']>>>;

/** One target in lifeboat.config.yaml: a member of the kinds' config schemas, told apart by `type`. */
export const targetConfigSchema = z.discriminatedUnion(
  'type',
  targetKinds.map((kind) => kind.configSchema) as unknown as [Kinds['configSchema'], ...Array<Kinds['configSchema']>],
);

/** The kind of a target's `type`; undefined for a type no kind registers. */
export function targetKindOf(type: string): TargetKind | undefined {
  return (targetKinds as readonly TargetKind[]).find((kind) => kind.type === type);
}

/** The kind of target that makes backups of a manifest's `kind`. */
export function targetKindOfBackup(backupKind: string): TargetKind | undefined {
  return (targetKinds as readonly TargetKind[]).find((kind) => kind.manifests.some((manifest) => manifest.kind === backupKind));
}

/** The definition of a manifest's `kind`. */
export function manifestKindOf(backupKind: string): ManifestKind | undefined {
  return (manifestKinds as readonly ManifestKind[]).find((manifest) => manifest.kind === backupKind);
}

/** Bytes of the source as a backup of any kind holds them. */
export function sourceBytesOf(manifest: Manifest): number {
  const kind = manifestKindOf(manifest.kind);
  if (!kind) throw new Error(`no kind of target makes backups of kind "${manifest.kind}"`);
  return kind.sourceBytes(manifest as never);
}

/** When a backup of any kind was proven restorable as it was taken, if its kind does that (pg_dump with dump.verify). */
export function verifiedWhenTaken(manifest: Manifest): string | null {
  return manifestKindOf(manifest.kind)?.verifiedWhenTaken?.(manifest as never) ?? null;
}

/** The types of target that have backup methods (what `--method` applies to). */
export function typesWithMethods(): string[] {
  return targetKinds.filter((kind) => kind.methods.length > 0).map((kind) => kind.type);
}

/** Every backup method of any kind (what `--method` may say). */
export function backupMethods(): string[] {
  return [...new Set(targetKinds.flatMap((kind) => kind.methods))];
}

/** Loads the activities of every kind (the worker does, once). */
export async function loadKindActivities(dependencies: Parameters<Kinds['activities']>[0]): Promise<KindActivities> {
  const tables: ActivityTable[] = await Promise.all(targetKinds.map((kind) => kind.activities(dependencies)));
  return Object.assign({}, ...tables) as KindActivities;
}
