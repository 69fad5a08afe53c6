/** Every runbook the worker serves; these names are the "workflow type" in the Temporal UI. */
export { backup } from './backup.js';
export { restore } from './restore.js';
export { drill } from './drill.js';
export { pitr } from './pitr.js';
export { verify } from './verify.js';
export { retention } from './retention.js';
export { copy } from './copy.js';
export { timelineQuery } from './runbook.js';
