import type { NotificationEventType, NotificationsConfig } from '../config/schema.js';

/** The channels of the config that get events of this type about this target, by name. */
export function channelsFor(notifications: NotificationsConfig | undefined, type: NotificationEventType, target: string): string[] {
  return Object.entries(notifications?.channels ?? {})
    .filter(([, channel]) => channel.events.includes(type) && (channel.targets === undefined || channel.targets.includes(target)))
    .map(([name]) => name);
}
