import { Context } from '@temporalio/activity';
import { Transform } from 'node:stream';

export interface Progress {
  phase: string;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Heartbeats {phase, bytesDone, bytesTotal} at most every intervalMs. Heartbeats are also how a
 * dead worker is noticed (heartbeat timeout) and how cancellation reaches the activity.
 */
export function progressReporter(phase: string, bytesTotal: number, intervalMs = 1000): (bytesDone: number) => void {
  const context = Context.current();
  let last = 0;
  context.heartbeat({ phase, bytesDone: 0, bytesTotal } satisfies Progress);
  return (bytesDone: number) => {
    const now = Date.now();
    if (now - last < intervalMs && bytesDone < bytesTotal) return;
    last = now;
    context.heartbeat({ phase, bytesDone, bytesTotal } satisfies Progress);
  };
}

/** A pass-through that reports the running byte count (for progress heartbeats). */
export function countBytes(report: (bytesDone: number) => void): Transform {
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      report(bytes);
      callback(null, chunk);
    },
  });
}
