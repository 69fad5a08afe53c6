import { formatLsn, parseLsn, parseWalSegmentName, walSegmentName } from './recovery-target.js';

/**
 * What a WAL archive allows, from the names of the archived files, the timeline history files and
 * the base backups' WAL ranges alone (pure: verification reports it, retention plans with it):
 *
 * - continuity per timeline: the segments from its first to its last, and every gap between;
 * - per base backup: consistent (every segment from its start to its stop is archived) and how far
 *   an unbroken chain of segments reaches from it, following timeline switches the way recovery
 *   with recovery_target_timeline = 'latest' does;
 * - the recoverable window: from the stop of the oldest base backup whose chain joins the newest
 *   reachable point, to that point (the end of the last segment of the chain).
 *
 * Positions are segment numbers (LSN / segment size), comparable across timelines: a timeline
 * continues the positions of its parent from its switch point on.
 */

export interface TimelineHistory {
  timeline: number;
  /** Its ancestors, oldest first, each with the LSN where the child branched off it. */
  parents: Array<{ timeline: number; switchLsn: string }>;
}

/** A `<timeline>.history` file: lines "<parent timeline>\t<switch LSN>\t<reason>", '#' comments. */
export function parseHistoryFile(timeline: number, content: string): TimelineHistory {
  const parents: TimelineHistory['parents'] = [];
  for (const line of content.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [parent, switchLsn] = trimmed.split(/\s+/);
    const parentTimeline = Number(parent);
    if (!Number.isInteger(parentTimeline) || switchLsn === undefined || !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(switchLsn)) {
      throw new Error(`history file of timeline ${timeline} has a line that is not "<timeline> <LSN> <reason>": ${JSON.stringify(line)}`);
    }
    parents.push({ timeline: parentTimeline, switchLsn: switchLsn.toUpperCase() });
  }
  return { timeline, parents };
}

export interface BaseBackupWal {
  id: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  stopTime: string;
}

export interface WalPoint {
  lsn: string;
  /** The segment file the point is in (its last byte). */
  segment: string;
  timeline: number;
}

export interface WalAnalysis {
  segmentSizeBytes: number;
  timelines: Array<{ timeline: number; first: string; last: string; segments: number; gaps: Array<{ from: string; to: string; segments: number }> }>;
  bases: Array<{
    id: string;
    /** Every segment from its start to its stop is archived. */
    consistent: boolean;
    /** The first segment of its start-stop range that is missing. */
    missing: string | null;
    /** The end of the unbroken chain of segments from its start; null when its first segment is missing. */
    reaches: WalPoint | null;
    /** The first missing segment after which the archive still holds newer segments (the chain does not reach the head). */
    breaksAt: string | null;
  }>;
  /** The newest archived position (end of the newest segment on the latest timeline's path). */
  head: WalPoint | null;
  /** The recoverable window; null without a consistent base backup. */
  window: { earliest: { backupId: string; lsn: string; time: string }; latest: WalPoint } | null;
}

/** The timeline numbers and segment positions of archived segment files (.partial and labels are not replayed from). */
function segmentsByTimeline(names: Iterable<string>, segmentSizeBytes: number): Map<number, Set<bigint>> {
  const byTimeline = new Map<number, Set<bigint>>();
  for (const name of names) {
    const parsed = parseWalSegmentName(name, segmentSizeBytes);
    if (!parsed) continue;
    let set = byTimeline.get(parsed.timeline);
    if (!set) byTimeline.set(parsed.timeline, (set = new Set()));
    set.add(parsed.segment);
  }
  return byTimeline;
}

/** The timelines recovery would follow from `timeline` to `to`, each with the first segment it serves. */
function pathTo(to: number, histories: Map<number, TimelineHistory>, from: number, segmentSizeBytes: number): Array<{ timeline: number; begin: bigint }> | undefined {
  if (to === from) return [{ timeline: from, begin: -1n }];
  const history = histories.get(to);
  if (!history) return undefined;
  const index = history.parents.findIndex((parent) => parent.timeline === from);
  if (index < 0) return undefined;
  const size = BigInt(segmentSizeBytes);
  const path: Array<{ timeline: number; begin: bigint }> = [{ timeline: from, begin: -1n }];
  for (let i = index; i < history.parents.length; i++) {
    const next = history.parents[i + 1]?.timeline ?? to;
    path.push({ timeline: next, begin: parseLsn(history.parents[i]!.switchLsn) / size });
  }
  return path;
}

function segmentOf(lsn: string, segmentSizeBytes: number): bigint {
  return parseLsn(lsn) / BigInt(segmentSizeBytes);
}

export function analyseWal(input: { names: Iterable<string>; histories: readonly TimelineHistory[]; bases: readonly BaseBackupWal[]; segmentSizeBytes: number }): WalAnalysis {
  const { segmentSizeBytes } = input;
  const size = BigInt(segmentSizeBytes);
  const segments = segmentsByTimeline(input.names, segmentSizeBytes);
  const histories = new Map(input.histories.map((history) => [history.timeline, history]));
  const knownTimelines = [...new Set([...segments.keys(), ...histories.keys()])].sort((a, b) => b - a);
  const name = (timeline: number, segment: bigint) => walSegmentName(timeline, segment, segmentSizeBytes);

  const timelines = [...segments.entries()]
    .sort(([a], [b]) => a - b)
    .map(([timeline, set]) => {
      const sorted = [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const gaps: WalAnalysis['timelines'][number]['gaps'] = [];
      for (let i = 1; i < sorted.length; i++) {
        const [previous, current] = [sorted[i - 1]!, sorted[i]!];
        if (current - previous > 1n) gaps.push({ from: name(timeline, previous + 1n), to: name(timeline, current - 1n), segments: Number(current - previous - 1n) });
      }
      return { timeline, first: name(timeline, sorted[0]!), last: name(timeline, sorted.at(-1)!), segments: sorted.length, gaps };
    });

  /** The path recovery to 'latest' takes from a base backup: the newest timeline that branched off its timeline after its stop. */
  const latestPath = (base: BaseBackupWal) => {
    for (const candidate of knownTimelines) {
      if (candidate < base.timeline) break;
      const path = pathTo(candidate, histories, base.timeline, segmentSizeBytes);
      if (!path) continue;
      const branch = path[1]?.begin;
      const stopSegment = segmentOf(base.stopLsn, segmentSizeBytes);
      if (branch === undefined || branch >= stopSegment) return path;
    }
    return [{ timeline: base.timeline, begin: -1n }];
  };
  const present = (path: Array<{ timeline: number; begin: bigint }>, segment: bigint): number | undefined => {
    for (let i = path.length - 1; i >= 0; i--) {
      const step = path[i]!;
      if (step.begin > segment) continue;
      if (segments.get(step.timeline)?.has(segment)) return step.timeline;
    }
    return undefined;
  };
  const newestOn = (path: Array<{ timeline: number; begin: bigint }>): bigint | undefined => {
    let newest: bigint | undefined;
    for (const step of path) {
      for (const segment of segments.get(step.timeline) ?? []) {
        if (segment >= step.begin && (newest === undefined || segment > newest)) newest = segment;
      }
    }
    return newest;
  };

  const bases = input.bases.map((base) => {
    const path = latestPath(base);
    const start = segmentOf(base.startLsn, segmentSizeBytes);
    const stopLsn = parseLsn(base.stopLsn);
    const stop = (stopLsn > 0n ? stopLsn - 1n : 0n) / size;
    const newest = newestOn(path);
    let segment = start;
    let lastTimeline: number | undefined;
    for (;;) {
      const timeline = present(path, segment);
      if (timeline === undefined) break;
      lastTimeline = timeline;
      segment++;
    }
    const reachedSome = lastTimeline !== undefined;
    const expected = (s: bigint) => [...path].reverse().find((step) => step.begin <= s)!.timeline;
    return {
      id: base.id,
      consistent: reachedSome && segment > stop,
      missing: reachedSome && segment > stop ? null : name(expected(segment), segment),
      reaches: reachedSome ? { lsn: formatLsn(segment * size), segment: name(lastTimeline!, segment - 1n), timeline: lastTimeline! } : null,
      breaksAt: newest !== undefined && newest >= segment ? name(expected(segment), segment) : null,
      stopLsn,
      base,
      path,
    };
  });

  // The head: the newest position on the path recovery to 'latest' takes from the newest base
  // backup (without one: the newest segment of the newest timeline that has segments).
  const newestBase = [...input.bases].sort((a, b) => (parseLsn(b.stopLsn) > parseLsn(a.stopLsn) ? 1 : -1))[0];
  const newestTimeline = [...segments.keys()].sort((a, b) => b - a)[0];
  const headPath = newestBase ? latestPath(newestBase) : newestTimeline !== undefined ? [{ timeline: newestTimeline, begin: -1n }] : [];
  const headSegment = newestOn(headPath);
  const headTimeline = headSegment === undefined ? undefined : present(headPath, headSegment);
  const head = headSegment === undefined || headTimeline === undefined ? null : { lsn: formatLsn((headSegment + 1n) * size), segment: name(headTimeline, headSegment), timeline: headTimeline };

  // The window: each consistent backup makes [its stop, the end of its chain] recoverable; of the
  // runs these intervals join into, the one that reaches furthest, from its first backup's stop.
  const intervals = bases
    .filter((b) => b.consistent && b.reaches)
    .map((b) => ({ from: b.stopLsn, to: parseLsn(b.reaches!.lsn), b }))
    .sort((x, y) => (x.from < y.from ? -1 : x.from > y.from ? 1 : 0));
  const runs: Array<{ to: bigint; first: (typeof intervals)[number]; furthest: (typeof intervals)[number] }> = [];
  for (const interval of intervals) {
    const last = runs.at(-1);
    if (last && interval.from <= last.to) {
      if (interval.to > last.to) {
        last.to = interval.to;
        last.furthest = interval;
      }
    } else {
      runs.push({ to: interval.to, first: interval, furthest: interval });
    }
  }
  const best = runs.reduce<(typeof runs)[number] | undefined>((chosen, run) => (!chosen || run.to >= chosen.to ? run : chosen), undefined);
  const window: WalAnalysis['window'] = best
    ? { earliest: { backupId: best.first.b.id, lsn: best.first.b.base.stopLsn, time: best.first.b.base.stopTime }, latest: best.furthest.b.reaches! }
    : null;

  return {
    segmentSizeBytes,
    timelines,
    bases: bases.map(({ id, consistent, missing, reaches, breaksAt }) => ({ id, consistent, missing, reaches, breaksAt })),
    head,
    window,
  };
}

/** The kind of file an archived name is, and the segment position it belongs to (history files: none). */
function positionOf(name: string, segmentSizeBytes: number): bigint | undefined {
  return parseWalSegmentName(name.slice(0, 24), segmentSizeBytes)?.segment;
}

export interface WalRemoval {
  /** The oldest kept base backup's first segment: everything before it goes. Null: nothing is removed (no kept base backup). */
  cutoff: { segment: string; backupId: string } | null;
  /** History files of timelines below this are removed (the kept backups' own history files name them). */
  oldestTimeline: number | null;
  remove: string[];
  keep: number;
}

/**
 * Which archived files retention removes once only `kept` base backups remain: every segment,
 * partial segment and backup label before the start of the oldest kept base backup, and the
 * history files of timelines older than every kept backup's. Everything from that start on stays,
 * on every timeline, and so does every history file of a later timeline: recovery to 'latest'
 * probes them one after another, so none of them may go missing. Without a kept base backup
 * nothing is removed (WAL without a base backup to start from is the operator's call).
 */
export function walRemoval(names: Iterable<string>, kept: readonly BaseBackupWal[], segmentSizeBytes: number): WalRemoval {
  const all = [...names];
  if (kept.length === 0) return { cutoff: null, oldestTimeline: null, remove: [], keep: all.length };
  const oldest = kept.reduce((best, base) => (segmentOf(base.startLsn, segmentSizeBytes) < segmentOf(best.startLsn, segmentSizeBytes) ? base : best));
  const cutoff = segmentOf(oldest.startLsn, segmentSizeBytes);
  const oldestTimeline = Math.min(...kept.map((base) => base.timeline));
  const remove = all.filter((name) => {
    const history = /^([0-9A-F]{8})\.history$/.exec(name);
    if (history) return parseInt(history[1]!, 16) < oldestTimeline;
    const position = positionOf(name, segmentSizeBytes);
    return position !== undefined && position < cutoff;
  });
  return { cutoff: { segment: walSegmentName(oldest.timeline, cutoff, segmentSizeBytes), backupId: oldest.id }, oldestTimeline, remove, keep: all.length - remove.length };
}
