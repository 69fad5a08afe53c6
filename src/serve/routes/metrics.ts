import type { LifeboatMetrics } from '../metrics.js';
import { sendText, type Route } from '../router.js';

/** GET /metrics: the Prometheus text exposition of the last state read (never a read of its own). */
export function metricsRoutes(metrics: LifeboatMetrics): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: async (_request, response) => sendText(response, 200, await metrics.text(), metrics.contentType),
    },
  ];
}
