import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Services } from '../services.js';

const Health = Type.Object({
  status: Type.String(),
  checks: Type.Optional(Type.Record(Type.String(), Type.String())),
  message: Type.Optional(Type.String()),
});

export const healthRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get('/health/live', { schema: { tags: ['health'], response: { 200: Health } } }, async () => ({ status: 'ok' }));

    app.get('/health/ready', { schema: { tags: ['health'], response: { 200: Health, 503: Health } } }, async (_req, reply) => {
      const state = await services.ready();
      const checks = { postgres: state.postgres ? 'ok' : 'unreachable', redis: state.redis ? 'ok' : 'unreachable' };
      const failing = Object.entries(checks)
        .filter(([, v]) => v !== 'ok')
        .map(([k]) => k);
      if (failing.length > 0) {
        return reply.code(503).send({ status: 'unavailable', checks, message: `${failing.join(' and ')} unreachable` });
      }
      return { status: 'ok', checks };
    });

    app.get('/metrics', { schema: { tags: ['health'], hide: true } }, async (_req, reply) => {
      const body = await services.metrics.registry.metrics();
      return reply.type(services.metrics.registry.contentType).send(body);
    });
  };
