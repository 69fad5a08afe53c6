import { reportingFailures } from '../../../activities/failures.js';
import type { KindDependencies } from '../contract.js';
import { streamRdbAndUpload } from './backup.js';
import { prepareRedisScratch, removeRedisScratch, runRedisDrill } from './drill.js';
import { checkRedisKeys, fetchRdb, inspectRedisServer, removeRedisFiles, rollbackRdb, swapRdb } from './restore.js';

/** The steps of Redis runbooks. Their names are the activity types recorded in history: never rename one. */
export function redisActivities({ env }: KindDependencies) {
  return {
    streamRdbAndUpload: reportingFailures((input: Parameters<typeof streamRdbAndUpload>[0]) => streamRdbAndUpload(input, env)),
    inspectRedisServer: reportingFailures((input: Parameters<typeof inspectRedisServer>[0]) => inspectRedisServer(input, env)),
    fetchRdb: reportingFailures((input: Parameters<typeof fetchRdb>[0]) => fetchRdb(input, env)),
    swapRdb: reportingFailures((input: Parameters<typeof swapRdb>[0]) => swapRdb(input, env)),
    checkRedisKeys: reportingFailures((input: Parameters<typeof checkRedisKeys>[0]) => checkRedisKeys(input, env)),
    rollbackRdb: reportingFailures(rollbackRdb),
    removeRedisFiles: reportingFailures(removeRedisFiles),
    prepareRedisScratch: reportingFailures(prepareRedisScratch),
    removeRedisScratch: reportingFailures(removeRedisScratch),
    runRedisDrill: reportingFailures(runRedisDrill),
  };
}

export type { UploadedRdb } from './backup.js';
export type { FetchedRdb, RedisDataFiles } from './restore.js';
