import { defineQuery } from '@temporalio/workflow';
import type { StepRecord } from '../src/repository/manifest.js';

/** The step timeline of a running runbook (the CLI's progress line and the UI's Queries tab read it). */
export const timelineQuery = defineQuery<StepRecord[]>('timeline');
