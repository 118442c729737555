import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError, unavailable } from '../errors.js';
import { EnqueueError } from '../queue/queue.js';
import { WebhookMessage, WebhookResponse } from '../schemas/alertmanager.js';
import { ErrorResponse } from '../schemas/runs.js';
import type { Services } from '../services.js';

/** Which dependency failed, for the 503 message; the details go to the log only. */
function dependencyOf(err: unknown): string {
  if (err instanceof EnqueueError) return 'Redis';
  const e = err as { code?: string; severity?: string; message?: string };
  if (e.severity || /^[0-9A-Z]{5}$/.test(e.code ?? '') || /postgres|pg|ECONNREFUSED.*5432/i.test(e.message ?? '')) return 'PostgreSQL';
  if (/redis|stream isn't writeable|Connection is closed/i.test(e.message ?? '')) return 'Redis';
  return 'storage';
}

export const webhookRoutes = (services: Services): FastifyPluginAsyncTypebox => async (app) => {
  app.post(
    '/webhooks/alertmanager',
    {
      bodyLimit: services.config.bodyLimit,
      schema: {
        summary: 'Alertmanager webhook receiver (message version 4)',
        tags: ['webhook'],
        security: [{ bearer: [] }],
        body: WebhookMessage,
        response: { 200: WebhookResponse, 400: ErrorResponse, 401: ErrorResponse, 413: ErrorResponse, 503: ErrorResponse },
      },
      onRequest: async (req) => {
        if (!services.auth.webhook(req.headers.authorization)) throw new AppError(401, 'UNAUTHORIZED', 'missing or wrong webhook bearer token');
      },
    },
    async (req) => {
      const started = performance.now();
      try {
        const result = await services.intake(req.body);
        services.metrics.webhookDuration.observe({ code: '200' }, (performance.now() - started) / 1000);
        return result;
      } catch (err) {
        services.metrics.webhookDuration.observe({ code: '503' }, (performance.now() - started) / 1000);
        const dependency = dependencyOf(err);
        req.log.error({ err: (err as Error).message, dependency, alerts: req.body.alerts.length }, 'alerts not stored; answering 503 so Alertmanager retries');
        throw unavailable(`${dependency} cannot take the write right now; retry`);
      }
    },
  );
};
