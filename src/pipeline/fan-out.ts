import { PassThrough, Writable } from 'node:stream';

export interface FanOut {
  sink: Writable;
  branches: PassThrough[];
  /**
   * Lets one branch go (its repository failed): it is destroyed, nothing more is written to it,
   * and the sink no longer waits for it, so the other branches go on at their own pace. Dropping
   * every branch leaves a sink that swallows what is written (its caller decides to stop).
   */
  drop(index: number, error?: Error): void;
}

/**
 * One writable that copies every chunk to several branches, moving at the pace of the slowest, so
 * one pass over the source feeds every repository. Destroying it with an error destroys the
 * branches. A branch whose reader goes away (a repository failed) no longer holds the others back:
 * whoever reads the branches decides whether the rest may go on (src/repository/store.ts).
 */
export function fanOut(count: number, highWaterMark = 4 << 20): FanOut {
  const branches = Array.from({ length: count }, () => new PassThrough({ highWaterMark }));
  const dropped = new Set<PassThrough>();
  // Destroying the sink spreads its error to every branch, also to one whose reader is gone (a put
  // that failed before it read): that error is reported by the reader and the sink's pipeline;
  // unobserved on the branch it would be an 'error' event without listener and end the process.
  for (const branch of branches) branch.on('error', () => undefined);
  // A branch that closes or fails has lost its reader (its repository's upload failed): it is let
  // go, and the others go on; the upload's own failure says what happened to that repository.
  const whenWritable = (branch: PassThrough) =>
    new Promise<void>((resolve) => {
      const settle = () => {
        branch.off('drain', settle);
        branch.off('error', gone);
        branch.off('close', gone);
        resolve();
      };
      const gone = () => {
        dropped.add(branch);
        settle();
      };
      branch.once('drain', settle);
      branch.once('error', gone);
      branch.once('close', gone);
    });
  const live = () => branches.filter((branch) => !dropped.has(branch) && !branch.destroyed);
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      const waits = live()
        .filter((branch) => !branch.write(chunk))
        .map(whenWritable);
      if (waits.length === 0) callback();
      else void Promise.all(waits).then(() => callback());
    },
    final(callback) {
      for (const branch of live()) branch.end();
      callback();
    },
    destroy(error, callback) {
      // A finished sink is destroyed too (autoDestroy): only an error may cut the branches short,
      // or a slow repository would lose the data still buffered in its branch.
      if (error) for (const branch of branches) if (!branch.destroyed) branch.destroy(error);
      callback(error);
    },
  });
  const drop = (index: number, error?: Error) => {
    const branch = branches[index];
    if (!branch || dropped.has(branch)) return;
    dropped.add(branch);
    if (!branch.destroyed) branch.destroy(error);
  };
  return { sink, branches, drop };
}
