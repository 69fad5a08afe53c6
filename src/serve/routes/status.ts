import type { StateSource } from '../metrics.js';
import { sendJson, sendText, type Route } from '../router.js';

/**
 * GET /status: the state of every target as `lifeboat status --json` prints it (status 503 until
 * the first read ended); GET /healthz: the process answers.
 */
export function statusRoutes(source: StateSource): Route[] {
  return [
    {
      method: 'GET',
      path: '/status',
      handler: (_request, response) => {
        if (source.latest === undefined) sendJson(response, 503, { error: 'the first read of the targets has not ended yet' });
        else sendJson(response, 200, source.latest);
      },
    },
    { method: 'GET', path: '/healthz', handler: (_request, response) => sendText(response, 200, 'ok\n') },
  ];
}
