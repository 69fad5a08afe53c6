/**
 * Messages between snapshot.ts and its worker thread (snapshot-holder.mjs), which pins a consistent
 * read snapshot of a live SQLite database and checks it. See snapshot-holder.mjs for why the main
 * database file alone is enough.
 */

export interface HolderInput {
  path: string;
  integrityCheck: 'integrity_check' | 'quick_check' | 'none';
  /** How long to keep trying to get every WAL frame into the main file. */
  settleTimeoutMs: number;
  busyTimeoutMs: number;
}

export type HolderMessage =
  | {
      kind: 'pinned';
      pageSize: number;
      pageCount: number;
      journalMode: string;
      sqliteVersion: string;
      snapshotAt: string;
      settleAttempts: number;
    }
  | { kind: 'integrity'; ok: boolean; problems: string[]; durationMs: number }
  | { kind: 'error'; code: string; message: string };
