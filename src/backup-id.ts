/**
 * Backup ids sort by time: "20261121T020000Z-3f9a1c". Pure, so workflows can use it with their
 * deterministic clock and random source.
 */
const backupIdPattern = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

export function compactTimestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function makeBackupId(date: Date, randomHex: string): string {
  return `${compactTimestamp(date)}-${randomHex.replace(/[^0-9a-f]/gi, '').toLowerCase().padEnd(6, '0').slice(0, 6)}`;
}

export function isBackupId(value: string): boolean {
  return backupIdPattern.test(value);
}
