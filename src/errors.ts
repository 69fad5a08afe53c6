/**
 * Typed failures. Every failure caused by input or by the state of a backup is one of these names,
 * is non-retryable, and carries a message saying what is wrong and a hint saying what to do.
 * Activities turn them into Temporal ApplicationFailures (see activities/failures.ts); the CLI maps
 * them to exit code 2 (bad input) or 1 (the runbook failed).
 */
export const errorTypes = {
  InvalidConfig: 'input',
  InvalidInput: 'input',
  TargetNotFound: 'input',
  BackupNotFound: 'input',
  SourceNotFound: 'input',
  NotASqliteDatabase: 'input',
  EncryptionKeyUnavailable: 'input',
  WrongEncryptionKey: 'input',
  CredentialsUnavailable: 'input',
  PostgresAuthFailed: 'input',
  PostgresConnectionFailed: 'input',
  DatabaseExists: 'input',
  // Redis targets (src/redis/client.ts): the server cannot be reached, or refuses the credentials or the ACL user's permissions.
  RedisConnectionFailed: 'input',
  RedisAuthFailed: 'input',
  NotApproved: 'input',
  ChecksumMismatch: 'data',
  BackupCorrupt: 'data',
  IntegrityCheckFailed: 'data',
  ObjectNotFound: 'data',
  ObjectConflict: 'data',
  HookFailed: 'runbook',
  HealthCheckFailed: 'runbook',
  SmokeCheckFailed: 'runbook',
  // Point-in-time recovery (src/postgres/recovery.ts): the target cannot be reached from what the
  // repository holds; nothing live is touched when these are raised.
  RecoveryTargetBeforeBackup: 'input',
  RecoveryTargetUnreachable: 'input',
  TimelineNotFound: 'input',
  WalSegmentMissing: 'data',
  // A base backup is stored, but the WAL after it does not reach the archive (src/postgres/archive-check.ts).
  ArchiveNotWorking: 'runbook',
  DumpFailed: 'runbook',
  RestoreFailed: 'runbook',
  // A program a step runs (a command target's backup, restore or verify command; redis-cli --rdb) exited non-zero, was killed, timed out or could not start.
  CommandFailed: 'runbook',
  VerificationFailed: 'data',
  // Schedules (src/schedules): a schedule id apply would take over belongs to someone else, or a
  // schedule named on the command line is not one of Lifeboat's.
  ScheduleConflict: 'input',
  ScheduleNotFound: 'input',
  // The Temporal server refused a schedule apply sent (e.g. a search attribute not registered).
  ScheduleRejected: 'input',
  // The CLI could not reach the Temporal server (nothing was started, or a started run goes on).
  TemporalUnavailable: 'service',
  // lifeboat serve (or the worker's metrics) cannot listen where the config says: another process has the address.
  AddressInUse: 'input',
  // A notification receiver refused a message (4xx other than 408/429): retrying will not help.
  NotificationRejected: 'service',
  // An audit record of this run already exists with other content: the log is never rewritten.
  AuditRecordConflict: 'data',
  // files and secrets targets (src/tree/): an entry of a backup that would write outside where it is restored.
  UnsafeEntry: 'data',
  // A secrets target without an encryption key: refused before anything is read.
  EncryptionRequired: 'input',
} as const;

export type ErrorType = keyof typeof errorTypes;
export type ErrorCategory = (typeof errorTypes)[ErrorType];

export class LifeboatError extends Error {
  override readonly name = 'LifeboatError';
  constructor(
    readonly type: ErrorType,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(hint ? `${message}. ${hint}` : message, options);
  }

  get category(): ErrorCategory {
    return errorTypes[this.type];
  }
}

export function isErrorType(value: string | undefined | null): value is ErrorType {
  return value != null && Object.prototype.hasOwnProperty.call(errorTypes, value);
}

/** Input errors exit with 2, everything else with 1 (see the CLI contract in docs/cli.md). */
export function exitCodeFor(type: string | undefined | null): 1 | 2 {
  return isErrorType(type) && errorTypes[type] === 'input' ? 2 : 1;
}

/**
 * A command given options that cannot work together (or that its target refuses): the CLI says
 * the message as it is and exits 2, before anything starts.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
