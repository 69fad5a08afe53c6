/**
 * One operation on an fs repository, as a separate process, so a test can run it as another OS
 * user (execa's uid/gid): `node --import tsx test/helpers/fs-repository-op.ts <root> put|get|delete <key> [text]`.
 * Prints the object's text for get; on failure prints the error's message and exits 1.
 */
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { FsBackend } from '../../src/repository/fs/backend.js';

const [root, op, key, content] = process.argv.slice(2);
if (root === undefined || key === undefined) throw new Error('usage: fs-repository-op.ts <root> put|get|delete <key> [text]');
const backend = new FsBackend({ path: root });
try {
  if (op === 'put') await backend.put(key, Readable.from([Buffer.from(content ?? '')]));
  else if (op === 'get') process.stdout.write(await text(await backend.get(key)));
  else if (op === 'delete') await backend.delete(key);
  else throw new Error(`unknown operation ${op}`);
} catch (error) {
  process.stdout.write(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
