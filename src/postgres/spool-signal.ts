import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, fstatSync, openSync, writeSync } from 'node:fs';

/**
 * The daemon's side of a FIFO that a quick shell path (bin/lifeboat-wal-push, bin/lifeboat-wal-fetch)
 * blocks on instead of polling with `sleep` (a process per poll): the daemon writes a line
 * whenever something the script waits for may have happened (a mark written, a fetch ended), and
 * the script, woken by `timeout 1 head -n 1 -- <fifo>`, looks again.
 *
 * The daemon keeps the FIFO open for reading and writing (Linux opens a FIFO so at once, without
 * a reader), which does two things: a line written while nobody waits stays in the pipe, so a
 * script that looked just before the news still wakes at once (no news is lost between a look
 * and the wait); and a script's open(2) does not block while the daemon runs, and its read ends
 * (end of file) when the daemon exits or is killed. A FIFO left by a killed daemon has no writer:
 * opening it blocks, which is why the script's wait is bounded. Writes never block (O_NONBLOCK):
 * a full pipe already holds news nobody read. Without the FIFO (mkfifo failed, or the name is
 * taken by something else) this does nothing, and the scripts poll as before.
 */
export interface SpoolSignal {
  /** Wakes a waiting script (or the next one to wait). */
  tell(): void;
  /** A last word, then closed: a script waiting now looks again and finds the daemon gone. */
  close(): void;
}

export function openSpoolSignal(path: string): SpoolSignal {
  const none: SpoolSignal = { tell: () => undefined, close: () => undefined };
  // Node has no mkfifo(3); mkfifo(1) is coreutils, like the scripts' own tools. Once per daemon.
  if (!existsSync(path) && spawnSync('mkfifo', ['-m', '600', path], { stdio: 'ignore' }).status !== 0) return none;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  } catch {
    return none;
  }
  if (!fstatSync(fd).isFIFO()) {
    closeSync(fd);
    return none;
  }
  let open = true;
  const tell = (): void => {
    if (!open) return;
    try {
      writeSync(fd, '\n');
    } catch {
      // EAGAIN: the pipe is full of news nobody read yet
    }
  };
  return {
    tell,
    close: () => {
      tell();
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
