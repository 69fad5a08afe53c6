// @ts-check
/**
 * SQLite's result codes for a damaged database file (extended codes start with the primary one).
 * Shared by the threads and the code that reads their errors, so both draw the line in one place.
 * @param {string | undefined} code
 */
export function isDamage(code) {
  return code !== undefined && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}
