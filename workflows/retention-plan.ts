import { defineQuery } from '@temporalio/workflow';
import type { RetentionPlan } from '../activities/index.js';

export type { RetentionPlan };

/** The plan of a running retention run (undefined until it is made): what the CLI shows before it asks. */
export const retentionPlanQuery = defineQuery<RetentionPlan | undefined>('retentionPlan');
