/**
 * Turns the benchmark's executions into the printed tables and bench/RESULTS.md. Every figure is the
 * best (fastest) execution of each variant; all executions are listed in the raw section.
 */
import type { Execution } from './measure.js';

export interface Variant {
  label: string;
  executions: Execution[];
}

export interface Comparison {
  id: string;
  title: string;
  lifeboat: Variant;
  baseline: Variant;
  /** Acceptance: lifeboat wall time / baseline wall time must be at most this; absent = informational. */
  maxRatio?: number;
  /** Bytes of the database the comparison moves (for MB/s). */
  databaseBytes: number;
}

export interface MemoryCheck {
  title: string;
  /** Highest worker VmHWM (kB) over every Lifeboat backup and restore execution. */
  workerPeakKb: number;
  /** Highest sampled worker + zstd subprocess RSS (kB), for context. */
  workerTreePeakKb: number;
  /** Highest sampled anonymous RSS of the worker (kB): VmHWM without file pages mapped by mmap. */
  workerAnonPeakKb: number;
  limitBytes: number;
}

export interface Report {
  date: string;
  machine: string[];
  method: string[];
  comparisons: Comparison[];
  memory: MemoryCheck[];
  /** Suites with verdicts of their own (the fan-out suite), each a titled block of markdown lines. */
  sections?: Array<{ title: string; lines: string[] }>;
}

export function best(executions: Execution[]): Execution {
  const sorted = [...executions].sort((a, b) => a.wallMs - b.wallMs);
  const fastest = sorted[0];
  if (!fastest) throw new Error('no execution to report');
  return fastest;
}

const seconds = (ms: number): string => (ms / 1000).toFixed(2);
const mb = (kb: number | undefined): string => (kb === undefined || kb === 0 ? '—' : ((kb * 1024) / 1e6).toFixed(0));

export function ratio(comparison: Comparison): number {
  return best(comparison.lifeboat.executions).wallMs / best(comparison.baseline.executions).wallMs;
}

function verdict(comparison: Comparison): string {
  if (comparison.maxRatio === undefined) return 'info';
  return ratio(comparison) <= comparison.maxRatio ? 'PASS' : 'MISS';
}

function peakOf(execution: Execution): string {
  if (execution.workerPeakKb !== undefined) {
    return `${mb(execution.workerPeakKb)} (anon ${mb(execution.workerAnonPeakKb)}, worker+zstd ${mb(execution.workerTreePeakKb)})`;
  }
  return mb(execution.toolPeakKb);
}

function markdownTable(header: string[], rows: string[][]): string[] {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)];
}

/** The main table: one row per variant, best of its executions. */
export function resultsTable(report: Report): string[] {
  const rows: string[][] = [];
  for (const comparison of report.comparisons) {
    for (const variant of [comparison.lifeboat, comparison.baseline]) {
      const fastest = best(variant.executions);
      rows.push([
        comparison.title,
        variant.label,
        seconds(fastest.wallMs),
        ((comparison.databaseBytes / 1e6) / (fastest.wallMs / 1000)).toFixed(0),
        fastest.cpuSeconds.toFixed(1),
        peakOf(fastest),
        fastest.otherCpuSeconds.toFixed(1),
        variant.executions.map((e) => seconds(e.wallMs)).join(', '),
      ]);
    }
  }
  return markdownTable(['measurement', 'variant', 'wall s (best)', 'MB/s', 'CPU s', 'peak RSS MB', 'other load CPU s', 'all runs s'], rows);
}

/** Ratios against the acceptance targets, plus the memory limit. */
export function targetsTable(report: Report): string[] {
  const rows = report.comparisons.map((comparison) => [
    comparison.title,
    seconds(best(comparison.lifeboat.executions).wallMs),
    seconds(best(comparison.baseline.executions).wallMs),
    `${ratio(comparison).toFixed(2)}×`,
    comparison.maxRatio === undefined ? '—' : `≤ ${comparison.maxRatio}×`,
    verdict(comparison),
  ]);
  for (const memory of report.memory) {
    // Judged on VmHWM, the kernel's exact peak; it also counts file-backed pages (the node binary,
    // libraries, anything mapped with mmap), so the anonymous peak is shown beside it.
    rows.push([
      memory.title,
      `VmHWM ${mb(memory.workerPeakKb)} MB (anonymous ${mb(memory.workerAnonPeakKb)} MB)`,
      `worker+zstd ${mb(memory.workerTreePeakKb)} MB`,
      '—',
      `≤ ${(memory.limitBytes / 1e6).toFixed(0)} MB`,
      memory.workerPeakKb * 1024 <= memory.limitBytes ? 'PASS' : 'MISS',
    ]);
  }
  return markdownTable(['target', 'lifeboat', 'baseline', 'ratio', 'target', 'result'], rows);
}

function describeSteps(execution: Execution): string {
  const steps = execution.steps.map((step) => `${step.name} ${seconds(step.ms)}`);
  const accounted = execution.steps.reduce((sum, step) => sum + step.ms, 0);
  const rest = execution.wallMs - accounted;
  if (execution.workerPeakKb !== undefined) steps.push(`workflow/client overhead ${seconds(rest)}`);
  const notes = Object.entries(execution.notes).map(([name, value]) => `${name} ${seconds(value)}`);
  return `${steps.join(' · ')}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}

/** Where the time of each best execution went. */
export function breakdownLines(report: Report): string[] {
  const lines: string[] = [];
  for (const comparison of report.comparisons) {
    lines.push(`- **${comparison.title}**`);
    for (const variant of [comparison.lifeboat, comparison.baseline]) {
      lines.push(`  - ${variant.label}: ${describeSteps(best(variant.executions))}`);
    }
  }
  return lines;
}

/** The whole generated part of RESULTS.md. */
export function markdown(report: Report): string {
  return [
    `# Lifeboat benchmark results`,
    '',
    `Generated by \`npm run bench\` (bench/run.ts) on ${report.date}.`,
    '',
    '## Machine',
    '',
    ...report.machine.map((line) => `- ${line}`),
    '',
    '## Method',
    '',
    ...report.method.map((line) => `- ${line}`),
    '',
    '## Targets',
    '',
    ...targetsTable(report),
    '',
    '## All measurements',
    '',
    ...resultsTable(report),
    '',
    '## Where the time goes (best execution of each variant; seconds)',
    '',
    ...breakdownLines(report),
    '',
    ...(report.sections ?? []).flatMap((section) => [`## ${section.title}`, '', ...section.lines, '']),
  ].join('\n');
}
