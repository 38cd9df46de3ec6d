import type { FastifyInstance, FastifyReply } from 'fastify';
import type { PrometheusMetrics } from '../metrics/prometheus.js';
import type { HttpRoutes } from './server.js';

/** `/metrics`: the Prometheus text format, the gauges read at the scrape (see PrometheusMetrics). */
export function metricsRoutes(metrics: PrometheusMetrics): HttpRoutes {
  return async (app: FastifyInstance) => {
    app.get('/metrics', async (_request, reply: FastifyReply) => {
      const text = await metrics.scrape();
      return reply.type(metrics.contentType).header('cache-control', 'no-store').send(text);
    });
  };
}
