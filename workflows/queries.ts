import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { StepRecord } from '../src/repository/manifest.js';

/** The step timeline of a running runbook (the CLI's progress line and the UI's Queries tab read it). */
export const timelineQuery = defineQuery<StepRecord[]>('timeline');

/** Byte progress of the step in flight, sent by the step itself at each tenth of the way (activities/progress.ts): the run's current details show it. */
export interface StepProgress {
  activityType: string;
  phase: string;
  bytesDone: number;
  bytesTotal: number;
}

export const progressSignal = defineSignal<[StepProgress]>('progress');
