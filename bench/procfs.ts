/**
 * What the benchmark reads from Linux's /proc: a process's memory peak (VmHWM, resettable through
 * clear_refs), its CPU time including reaped children, its descendants, and the whole machine's CPU
 * counters (to tell how busy other people's processes kept the two cores during a measurement).
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';

/** USER_HZ: /proc/<pid>/stat and /proc/stat count CPU time in these ticks (100 on every Linux port we run on). */
const TICKS_PER_SECOND = 100;

/** A field of /proc/<pid>/status in kB (VmHWM, VmRSS, ...); undefined once the process is gone. */
export async function statusKb(pid: number, field: 'VmHWM' | 'VmRSS' | 'RssAnon'): Promise<number | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resets the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0, `echo 5 > clear_refs`;
 * needs the same user or root). Returns false when the kernel or permissions refuse.
 */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * A process's CPU seconds split into its own (utime + stime) and that of the children it has
 * waited for (cutime + cstime): for the worker, Node itself and its zstd subprocesses. Zero once
 * the process is gone.
 */
export function cpuSplit(pid: number): { own: number; children: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; the rest follows the last ')'.
    // Fields 14..17 of stat (utime, stime, cutime, cstime) are at 11..14 after dropping pid and comm.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { own: ((fields[11] ?? 0) + (fields[12] ?? 0)) / TICKS_PER_SECOND, children: ((fields[13] ?? 0) + (fields[14] ?? 0)) / TICKS_PER_SECOND };
  } catch {
    return { own: 0, children: 0 };
  }
}

/**
 * CPU seconds a process has used, user + system, including the children it has waited for
 * (cutime/cstime): for the worker that counts the zstd subprocesses once they exit.
 */
export function cpuSeconds(pid: number): number {
  const { own, children } = cpuSplit(pid);
  return own + children;
}

/** The command name of a process (/proc/<pid>/comm), or `pid <n>` once it is gone. */
export function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return `pid ${pid}`;
  }
}

/** Direct children of a process (Linux /proc/<pid>/task/<tid>/children, all threads). */
export async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  try {
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const child of text.trim().split(/\s+/)) if (child) found.push(Number(child));
    }
  } catch {
    // the process is gone
  }
  return found;
}

/** A process and all its descendants, parents first. */
export async function processTree(pid: number): Promise<number[]> {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(await childrenOf(tree[i]!)));
  return tree;
}

/** Busy and total CPU ticks of the whole machine since boot (from the first line of /proc/stat). */
export function machineCpuTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice).
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = values;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** CPU seconds the whole machine spent busy between two readings of {@link machineCpuTicks}. */
export function busySecondsBetween(before: { busy: number }, after: { busy: number }): number {
  return (after.busy - before.busy) / TICKS_PER_SECOND;
}

/**
 * Samples every intervalMs the summed RSS of a process tree (a process and every descendant, e.g.
 * the worker and its zstd subprocesses) and the anonymous RSS of the root process alone, keeping
 * the highest of each. RSS sums double-count shared pages, so the tree figure is an upper bound; a
 * sampler can also miss a peak that lasts less than one interval.
 */
export class TreeRssSampler {
  private treeKb = 0;
  private rootAnonKb = 0;
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(
    private readonly rootPid: number,
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    this.treeKb = 0;
    this.rootAnonKb = 0;
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
  }

  /** Stops sampling; returns the highest values seen, in kB. */
  async stop(): Promise<{ treeKb: number; rootAnonKb: number }> {
    clearInterval(this.timer);
    await this.sample();
    return { treeKb: this.treeKb, rootAnonKb: this.rootAnonKb };
  }

  private async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      let sum = 0;
      for (const pid of await processTree(this.rootPid)) sum += (await statusKb(pid, 'VmRSS')) ?? 0;
      this.treeKb = Math.max(this.treeKb, sum);
      this.rootAnonKb = Math.max(this.rootAnonKb, (await statusKb(this.rootPid, 'RssAnon')) ?? 0);
    } finally {
      this.sampling = false;
    }
  }
}

/**
 * Waits until the machine is quiet: the share of busy CPU over a one-second window is below
 * maxBusyShare (0..1), or maxWaitMs passed. Returns the last busy share seen.
 */
export async function waitForQuiet(maxBusyShare: number, maxWaitMs: number): Promise<{ busyShare: number; waitedMs: number }> {
  const started = Date.now();
  for (;;) {
    const before = machineCpuTicks();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = machineCpuTicks();
    const busyShare = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    const waitedMs = Date.now() - started;
    if (busyShare <= maxBusyShare || waitedMs >= maxWaitMs) return { busyShare, waitedMs };
  }
}
