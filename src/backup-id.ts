/**
 * Backup ids sort by time, to the millisecond: "20261121T020000Z-3e7a1c" is the UTC second, then
 * the millisecond as three hex digits (3e7 = 999), then three random hex digits. Two backups of a
 * target in the same second still list newest first (and "the newest backup" is the right one).
 * Pure, so workflows can use it with their deterministic clock and random source.
 */
const backupIdPattern = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

export function compactTimestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function makeBackupId(date: Date, randomHex: string): string {
  const millisecond = date.getUTCMilliseconds().toString(16).padStart(3, '0');
  const random = randomHex.replace(/[^0-9a-f]/gi, '').toLowerCase().padEnd(3, '0').slice(0, 3);
  return `${compactTimestamp(date)}-${millisecond}${random}`;
}

export function isBackupId(value: string): boolean {
  return backupIdPattern.test(value);
}
