import { z } from 'zod';
import { defineManifestKind, manifestEnvelope, sha256 } from '../../repository/manifest-envelope.js';

/** A command's backup: its stdout, stored as one object (<payloadName>.zst[.enc]). */
export const commandManifestSchema = z.object({
  ...manifestEnvelope,
  kind: z.literal('command'),
  source: z.object({
    /** The backup command as configured (no secret: those are envFrom references, not in argv). */
    argv: z.array(z.string()),
    cwd: z.string().nullable(),
    payloadName: z.string(),
    /** Bytes the command wrote to stdout, and their sha256. */
    sizeBytes: z.number().int().nonnegative(),
    sha256,
    /** How long the command ran. */
    durationMs: z.number().int().nonnegative(),
  }),
});

export type CommandManifest = z.infer<typeof commandManifestSchema>;

export const commandManifest = defineManifestKind({
  schema: commandManifestSchema,
  sourceBytes: (manifest) => manifest.source.sizeBytes,
  missingHint: (target) => `Run \`lifeboat backup ${target}\` first`,
});
