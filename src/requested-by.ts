import { hostname, userInfo } from 'node:os';

/**
 * Who asked for a run. Every run Lifeboat starts carries it twice: as the memo `requestedBy` (the
 * whole record, shown in the Temporal UI) and as the keyword search attribute LifeboatRequestedBy
 * (`cli:root@db1`, `schedule:lifeboat/orders/nightly`), so runs can be listed by who started them.
 */
export type RequestedBy =
  | { via: 'cli'; user: string; host: string }
  /** declaration: the hash of the schedule's config entry that started the run (see src/schedules/declared.ts). */
  | { via: 'schedule'; schedule: string; declaration?: string };

/** The operator at this terminal: the OS user and host the CLI runs as (names, never credentials). */
export function cliRequester(): RequestedBy {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (some containers): the uid still says who it was.
    user = `uid ${process.getuid?.() ?? '?'}`;
  }
  return { via: 'cli', user, host: hostname() };
}

/** The search attribute's value: one keyword that filters runs by who started them. */
export function requestedByKeyword(requestedBy: RequestedBy): string {
  switch (requestedBy.via) {
    case 'cli':
      return `cli:${requestedBy.user}@${requestedBy.host}`;
    case 'schedule':
      return `schedule:${requestedBy.schedule}`;
  }
}

/** One line for the run's details in the UI. */
export function describeRequester(requestedBy: RequestedBy): string {
  switch (requestedBy.via) {
    case 'cli':
      return `Started with the lifeboat CLI by ${requestedBy.user} on ${requestedBy.host}.`;
    case 'schedule':
      return `Started by the Temporal Schedule \`${requestedBy.schedule}\`.`;
  }
}
