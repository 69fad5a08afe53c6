import type { ErrorType } from './errors.js';

/**
 * What every typed failure means and what the operator should do about it: the source of
 * docs/failures.md (`npm run docs:failures`). It is a Record over every ErrorType, so a new failure
 * type in src/errors.ts does not compile until it is documented here.
 */
export interface FailureGuide {
  /** What happened, in the operator's terms: where it is raised and what it says about their data. */
  meaning: string;
  /** What to do about it, and what Lifeboat has (not) changed. */
  action: string;
}

export const errorGuide: Record<ErrorType, FailureGuide> = {
  InvalidConfig: {
    meaning:
      'The config file cannot be read, is not valid YAML, or breaks the schema: the message names the field, what was expected and what was found (never the value of a field that names a secret). ' +
      'Also raised when the setting a config relies on does not work: an fs repository directory the worker may not write, an S3 bucket that does not exist or is not reachable as configured, ' +
      'a worker that may not give a restored SQLite file the live file\'s owner, or an invalid `LIFEBOAT_LOG_LEVEL`.',
    action:
      'Fix the field or setting the message names ([configuration](configuration.md) lists every option) and run again. Nothing was changed: a restore stopped by the owner check did not swap anything.',
  },
  InvalidInput: {
    meaning:
      'The input of a runbook or the arguments of a command are wrong: a malformed recovery target (a time without a UTC offset, an LSN or timeline that is not one), ' +
      'a restore `--into` that is relative, exists, is the live database or has a `-wal`, `-shm` or `-journal` file beside it, a base-backup destination that is not empty, ' +
      'a backup of the wrong kind for the method asked, a PostgreSQL cluster with tablespaces besides `pg_default` and `pg_global`, or a runbook started on a target of the wrong type.',
    action: 'Correct the input as the message says and start the run again. Nothing was written.',
  },
  TargetNotFound: {
    meaning: 'The config has no target of that name (for PostgreSQL-only commands: no `postgres` target of that name). The message lists the targets it has.',
    action: 'Use one of the listed targets, or define it under `targets:`. Check that the CLI and the worker read the same config (`--config`, `LIFEBOAT_CONFIG`).',
  },
  BackupNotFound: {
    meaning:
      'The backup asked for is in none of the target\'s repositories, the target has no complete backup yet, there is no base backup to start a point-in-time recovery from, ' +
      'or the objects of a dump are missing from every repository. A backup without a manifest does not exist (it was interrupted, or withdrawn because it did not read back right).',
    action: 'Run `lifeboat backups <target>` to list what the repositories hold, and pass one of those ids; take a backup first (a base backup, for pitr).',
  },
  SourceNotFound: {
    meaning: 'What should be backed up does not exist: the SQLite database file at the target\'s `path`, or the WAL file `wal-push` was given.',
    action: 'Fix the target\'s `path` (relative paths are relative to the config file). For `wal-push`: `archive_command` must pass `%p`.',
  },
  NotASqliteDatabase: {
    meaning: 'The target\'s `path` is not a regular file, or the file does not start with the SQLite header ("SQLite format 3").',
    action: 'Point the target\'s `path` at the database file itself, not at its directory or its `-wal` file.',
  },
  EncryptionKeyUnavailable: {
    meaning:
      'The encryption key cannot be used: `encryption.keyFile` is missing, unreadable, or does not hold exactly 32 raw bytes or 64 hex characters; or a backup is encrypted and no key is configured.',
    action:
      'Set `encryption.keyFile` to a file readable by the worker only, holding the key (`head -c 32 /dev/urandom > backup.key`). To restore an encrypted backup, configure the key it was made with: keep a copy of every key away from the repositories, without it no backup made with it can be restored.',
  },
  WrongEncryptionKey: {
    meaning: 'The backup was encrypted with another key: the key id in its header (or manifest) is not the id of the configured key.',
    action: 'Configure the key file whose key id the message names. If you are sure the key is right, the backup\'s header is damaged: restore another backup.',
  },
  CredentialsUnavailable: {
    meaning:
      'A secret the config refers to is missing or refused: an S3 credential variable (`accessKeyIdEnv`, `secretAccessKeyEnv`) is unset or empty, S3 rejected the key pair or denied an operation, ' +
      'the PostgreSQL password variable (`connection.passwordEnv`) is unset, or the pgpass file cannot be read.',
    action:
      'Export the variables the message names where the worker and the CLI run (for `wal-push` / `wal-fetch`, in the PostgreSQL server\'s environment); give the S3 key pair ListBucket, GetObject, PutObject and DeleteObject on the bucket.',
  },
  PostgresAuthFailed: {
    meaning:
      'PostgreSQL refused the role: a wrong or missing password, an unknown role, or (base backups) a role without REPLICATION or without a `replication` line in `pg_hba.conf`. The message names host:port and the setting to fix.',
    action: 'Fix the password (`connection.passwordEnv` or `connection.passfile`) or the role; for base backups `ALTER ROLE <user> REPLICATION` and allow it a replication line in `pg_hba.conf`.',
  },
  PostgresConnectionFailed: {
    meaning: 'PostgreSQL cannot be reached at `connection.host`:`connection.port` (refused, unknown host, timeout), or `connection.database` does not exist there.',
    action: 'Check `connection.host`, `port` and `database` of the target, and that the server runs and accepts connections from the worker\'s host.',
  },
  DatabaseExists: {
    meaning: 'A PostgreSQL restore came to put its database in place and found the destination database existing, without `--yes` or an approval to replace it.',
    action: 'Restore again with `--yes`, answer the approval (`lifeboat approve <workflowId>`), or restore `--into` another name. The restored copy was not put in place; the existing database is untouched.',
  },
  NotApproved: {
    meaning: 'A runbook that waits for an approval (a PostgreSQL restore replacing a database, a PITR cutover) was rejected, or got no answer within its approval timeout.',
    action:
      'Nothing live was touched and what the run restored was removed. Start it again and answer with `lifeboat approve <workflowId>` within `dump.approvalTimeoutSeconds` / `recovery.cutover.approvalTimeoutSeconds`.',
  },
  ChecksumMismatch: {
    meaning:
      'Stored bytes do not match the sha256 recorded for them: on read-back after a backup (that copy is withdrawn, the others stay), while a restore fetches a backup (the next repository\'s copy is tried first), ' +
      'when a restored file does not hash to the snapshot (e.g. an empty or short file after a crash), or when no repository holds an intact copy of a WAL file.',
    action:
      'The damaged copy is not used and nothing live was touched. Restore another backup or from another repository, check the repository\'s storage, and take a new backup. Recovery must not continue past a damaged WAL file: put an intact copy back, or choose an earlier recovery target.',
  },
  BackupCorrupt: {
    meaning:
      'A backup cannot be decoded or is not what its manifest says: an unreadable or foreign manifest or WAL record, an encrypted chunk that fails authentication (truncated, reordered, modified), ' +
      'zstd failing although the stored hash matched, `pg_verifybackup` finding problems, or a base backup PostgreSQL cannot recover from.',
    action: 'Do not use this backup: restore another one (`lifeboat backups <target>`), check the repository storage for damage, and take a new backup.',
  },
  IntegrityCheckFailed: {
    meaning:
      'SQLite\'s check (`quick_check` or `integrity_check`, per `checks`) listed problems, or SQLite could not read the file at all: at backup, the live database is damaged (not retried); at restore, the restored copy is.',
    action:
      'At backup: the live database is damaged, do not let older backups expire; restore one or repair it (`sqlite3 .recover`). At restore: nothing was swapped; restore an older backup.',
  },
  ObjectNotFound: {
    meaning: 'An object the manifest or the caller names is not in the repository (fs directory or S3 bucket and prefix).',
    action: 'Check the repository\'s `path`, or `bucket` and `prefix`, and that the backup was not pruned or moved; restore another backup or from another repository.',
  },
  ObjectConflict: {
    meaning:
      '`wal-push` was given a WAL file whose name is already archived with different content (two clusters archiving into one target, often a restored or cloned cluster still running the original `archive_command`); ' +
      'or a repository cannot store a key because another key is its folder (a file-backed store).',
    action: 'Give each cluster its own target and keep the archived file: a restore may need it. Nothing was written.',
  },
  HookFailed: {
    meaning: 'A hook command (`hooks.stop`, `hooks.start`, `recovery.cutover.stopCommand` / `startCommand`) exited non-zero or ran past its time limit, or a server still ran after the stop command.',
    action:
      'Fix the command in the target\'s config (it runs with the worker\'s user and working directory: give scripts by absolute path). A restore or cutover that fails after the swap rolls back to the safety copy.',
  },
  HealthCheckFailed: {
    meaning:
      'After a restore\'s swap, `hooks.healthUrl` did not answer 2xx within `hooks.healthTimeoutSeconds`; after a cutover, the new live cluster did not accept connections, stayed in recovery or failed the smoke checks within `recovery.cutover.healthTimeoutSeconds`.',
    action: 'The restore or cutover was rolled back to the safety copy. Look at why the application or cluster did not come up, then restore again.',
  },
  SmokeCheckFailed: {
    meaning: 'A smoke check (`drill.smokeChecks`) failed on a recovered copy: its query errored, returned another value than `expect`, or fewer than `minRows` rows.',
    action:
      'A drill reports it (`passed: false`) and the CLI exits 1; a pitr stops before any cutover and removes the recovered cluster. Check whether the backup or the check is wrong; the message names the check and what it found.',
  },
  RecoveryTargetBeforeBackup: {
    meaning: 'The point-in-time recovery target is earlier than the end of the base backup it would start from (or lies inside it): no base backup can reach it.',
    action: 'Choose a later target, or pin an older base backup with `--backup` if the repository has one. Nothing was changed.',
  },
  RecoveryTargetUnreachable: {
    meaning: 'Replay reached the end of the archived WAL before the recovery target: the target is later than anything archived, or a restore point of that name was not archived after the base backup.',
    action: 'Choose an earlier target, or wait until the WAL up to the target is archived (`pg_switch_wal()` completes the current segment). Nothing live was touched; the recovered cluster was removed.',
  },
  TimelineNotFound: {
    meaning: 'The recovery timeline asked for is not in the archive (no `<timeline>.history`), or it does not descend from the base backup\'s timeline.',
    action: 'Use "latest" or a timeline the archive has, or a base backup taken on that timeline. Nothing live was touched.',
  },
  WalSegmentMissing: {
    meaning:
      'Replay needed a WAL segment the archive does not have while it holds later ones (a gap; the message names the segment), or the repositories could not deliver it to the recovering server.',
    action:
      'Recover to a target before the missing segment, or put the segment back into the repository (it may still be in the source\'s `pg_wal`); check that the repositories are reachable from the server\'s environment. Nothing live was touched.',
  },
  RedisConnectionFailed: {
    meaning: 'A Redis target\'s server cannot be reached at `connection.host`:`connection.port` (refused, no route, no answer within `connection.connectTimeoutSeconds`, a TLS handshake that fails), or a TLS file of `connection.tls` cannot be read. The message names the server.',
    action: 'Check `connection` of the target and that the server runs and accepts the worker\'s connections (bind address, protected-mode, firewall, TLS port). Nothing was stored or changed.',
  },
  RedisAuthFailed: {
    meaning:
      'The Redis server refused the credentials (`WRONGPASS`, `NOAUTH`: a wrong or missing password, an unknown or disabled ACL user) or the ACL user lacks a permission a step needs (`NOPERM`). The message quotes the server\'s reply, never the password.',
    action: 'Fix `connection.passwordEnv` (the variable\'s value) or `connection.user`; for `NOPERM`, grant the user what [Redis targets](redis.md) lists (`+ping +info +sync +replconf +config|get +dbsize`). Nothing was stored or changed.',
  },
  CommandFailed: {
    meaning:
      'A program a step runs did not succeed: a `command` target\'s backup, restore or drill check command, or `redis-cli --rdb` of a Redis backup. It exited with a non-zero status, was killed by a signal, ran past its `timeoutSeconds` (it is stopped), or could not start (no such program, a missing `cwd`). The message quotes the command line and the last lines of its stderr.',
    action:
      'Fix what the program reports (run it by hand as the worker\'s user to see it fail), or raise `timeoutSeconds`. A failed backup stored nothing (what it had uploaded is removed); a failed restore command had its input cut short, with no end of input.',
  },
  DumpFailed: {
    meaning: '`pg_dump` failed (its messages are quoted), or the dump it wrote is unusable: `pg_restore --list` cannot read it or sees another number of entries, or a table\'s file was not stored whole.',
    action: 'Nothing was stored (the run removed what it had uploaded). Fix what pg_dump reports (privileges, locks, disk space in `dump.spoolDir`) and run the backup again.',
  },
  RestoreFailed: {
    meaning:
      '`pg_restore` failed or reported errors it "ignored" (its messages are quoted): missing roles, extensions, privileges. Lifeboat never counts a restore with ignored errors as a success.',
    action: 'The database it restored into was dropped; nothing else was changed. Create what is missing (roles that own objects in the dump must exist) and restore again.',
  },
  VerificationFailed: {
    meaning: 'A dump restored into a scratch database (with `dump.verify`, or by a drill) differs from what was dumped: row counts or checksums of some tables do not match their fingerprints.',
    action: 'Do not rely on this backup: the backup got no manifest (or the drill reports it). Check the server and the repository, and run the backup again.',
  },
  TemporalUnavailable: {
    meaning:
      'The CLI could not reach the Temporal server at `TEMPORAL_ADDRESS` (the message names the address and namespace), so nothing was started; or it lost contact while `--wait`ing, and the run goes on without it.',
    action: 'Start Temporal or set `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE` (or `temporal:` in the config). After a lost connection, follow the run in the Temporal UI or with `temporal workflow show`.',
  },
  AddressInUse: {
    meaning: '`lifeboat serve` or the worker\'s metrics endpoint cannot listen on its configured address: another process already listens there.',
    action: 'Stop that process, or choose another address (`serve.listen`, `worker.metricsListen`, or `lifeboat serve --listen`). Nothing was started.',
  },
  ArchiveNotWorking: {
    meaning:
      'A base backup was stored, but the WAL segment holding its stop point did not reach the archive of every repository within `archive.checkTimeoutSeconds`: WAL archiving is not working, so no point-in-time recovery past this backup is possible. The message quotes pg_stat_archiver (last failed segment and when).',
    action:
      'Read the server log for "archive command failed" and what `lifeboat wal-push` printed; run the archive_command by hand as the server user; check that it may write the repository (see the deployment page) and that `--target` and the config are right. A target that is not meant to archive sets `archive.mode: "off"`. The backup itself stays and restores to its stop point.',
  },
  ScheduleConflict: {
    meaning:
      'A schedule id the config wants (`lifeboat/<target>/<name>`) is held by a schedule Lifeboat did not create, or by the Lifeboat of another task queue. `schedules apply` changed nothing.',
    action:
      'Delete that schedule (the message gives the `temporal schedule delete` command) or rename the entry in the config; for another installation\'s schedule, apply with that installation\'s config.',
  },
  ScheduleNotFound: {
    meaning:
      '`lifeboat schedules pause`, `unpause` or `trigger` named a schedule that does not exist or is not Lifeboat\'s; the message lists Lifeboat\'s schedules on the task queue.',
    action: 'Use one of the listed ids (`lifeboat/<target>/<name>` or `<target>/<name>`), or declare the schedule in the config and run `lifeboat schedules apply`.',
  },
  ScheduleRejected: {
    meaning:
      'The Temporal server refused a create, update or delete during `schedules apply`, typically because the search attribute `LifeboatRequestedBy` is not registered. The message names the schedule, how many changes were made before it, and the server\'s reason.',
    action: 'Register the search attributes (the commands are in the message) or fix what the server names, then apply again: apply is idempotent.',
  },
  NotificationRejected: {
    meaning:
      'A notification channel\'s receiver answered 4xx (other than 408 and 429) to a message: a Slack webhook URL that was revoked (404, 410), a signing secret the receiver does not share (401, 403), a body it does not accept (400). ' +
      'Raised by a notify step only: the run\'s own result stands, the step is shown failed in its timeline.',
    action:
      'Check the channel in `notifications.channels`: the webhook URL in the variable `urlEnv` names, or the secret in `secretEnv` and the receiver\'s copy of it. The message quotes the receiver\'s answer (never the URL of a Slack webhook, which is a credential).',
  },
  AuditRecordConflict: {
    meaning:
      'A repository already holds an audit record under the key of this run, with other content: the audit log is append-only and the existing record is never replaced. ' +
      'A retried step writes the same record again and does not raise it; another writer with the same workflow id and finish time, or a changed record, does.',
    action: 'Compare the stored record (the message names its key) with the run in Temporal; keep the stored one. Nothing was overwritten.',
  },
  UnsafeEntry: {
    meaning:
      'A `files` or `secrets` backup holds an entry that would write outside the directory it is restored into, or that cannot be restored safely: an absolute path, a `..` segment, a symlink whose target ' +
      'leaves its root, a device file, a FIFO or socket, a hard link to a file the restore did not write, or a path under a symlink. The message names the entry (for `secrets`, its number only: names never leave the encrypted payload). ' +
      'A backup refuses a symlink that points outside its root the same way, unless the target sets `symlinksOutsideRoot: keep`.',
    action:
      'Nothing was written outside the destination, and nothing live was replaced. A backup you made yourself with a link out of its root (e.g. nginx\'s `modules-enabled` -> `/usr/share/...`): set `symlinksOutsideRoot: keep` on the target ' +
      '(links are then restored as links, never followed). Anything else means the repository holds data Lifeboat did not write: do not restore it, and check who can write to the repository.',
  },
  EncryptionRequired: {
    meaning: 'A `secrets` target is backed up while the config has no `encryption.keyFile`: refused before any file is read, so no secret is ever stored in the clear.',
    action: 'Configure `encryption.keyFile` (a 32-byte key: `head -c 32 /dev/urandom > backup.key`), keep a copy of the key away from the repositories, and run the backup again.',
  },
};
