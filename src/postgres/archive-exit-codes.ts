// Own module, free of dependencies: the CLI needs these even when loading the archive code fails.

/**
 * Exit statuses of `lifeboat wal-push`. PostgreSQL counts any non-zero status as a failed
 * attempt and retries the file; statuses above 125 would also restart its archiver, so every
 * failure the command reports is 1 (a usage error exits 2 like any command's: retried as well).
 */
export const archiveCommandExitCodes = { archived: 0, failed: 1 } as const;

/**
 * Exit statuses of `lifeboat wal-fetch`. PostgreSQL reads any status from 1 to 125 as "this file
 * is not in the archive" and carries on: at the end of the archive it ends recovery and opens the
 * database. So only 'missing' may use such a status. A damaged file or an unreachable archive
 * exits with 126, which PostgreSQL treats like a failed shell ("command not executable") and
 * aborts recovery: stopping is recoverable, opening a database that silently lacks the rest of
 * the WAL is not.
 */
export const restoreCommandExitCodes = { fetched: 0, missing: 1, failed: 126 } as const;
