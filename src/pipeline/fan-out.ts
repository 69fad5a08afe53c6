import { PassThrough, Writable } from 'node:stream';

/**
 * One writable that copies every chunk to several branches, moving at the pace of the slowest, so
 * one pass over the source feeds every repository. Destroying it with an error destroys the branches.
 */
export function fanOut(count: number, highWaterMark = 4 << 20): { sink: Writable; branches: PassThrough[] } {
  const branches = Array.from({ length: count }, () => new PassThrough({ highWaterMark }));
  // Destroying the sink spreads its error to every branch, also to one whose reader is gone (a put
  // that failed before it read): that error is reported by the reader and the sink's pipeline;
  // unobserved on the branch it would be an 'error' event without listener and end the process.
  for (const branch of branches) branch.on('error', () => undefined);
  const whenWritable = (branch: PassThrough) =>
    new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        branch.off('error', onError);
        branch.off('close', onClose);
        resolve();
      };
      const onError = (error: Error) => {
        branch.off('drain', onDrain);
        branch.off('close', onClose);
        reject(error);
      };
      const onClose = () => {
        branch.off('drain', onDrain);
        branch.off('error', onError);
        reject(new Error('a repository stopped reading the backup stream'));
      };
      branch.once('drain', onDrain);
      branch.once('error', onError);
      branch.once('close', onClose);
    });
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      const waits = branches.filter((branch) => !branch.write(chunk)).map(whenWritable);
      if (waits.length === 0) callback();
      else Promise.all(waits).then(() => callback(), callback);
    },
    final(callback) {
      for (const branch of branches) branch.end();
      callback();
    },
    destroy(error, callback) {
      // A finished sink is destroyed too (autoDestroy): only an error may cut the branches short,
      // or a slow repository would lose the data still buffered in its branch.
      if (error) for (const branch of branches) if (!branch.destroyed) branch.destroy(error);
      callback(error);
    },
  });
  return { sink, branches };
}
