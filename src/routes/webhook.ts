import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError, DependencyError, unauthorized } from '../errors.js';
import { WebhookMessage, WebhookResponse } from '../schemas/alertmanager.js';
import { ErrorResponse } from '../schemas/runs.js';
import type { Services } from '../services.js';

/** A NUL, or half of a surrogate pair: text PostgreSQL's text and JSON types refuse. */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');
const storable = (s: string) => s.replace(UNSTORABLE_ALL, '\ufffd');

function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return UNSTORABLE.test(value);
  if (Array.isArray(value)) return value.some(hasNul);
  if (value && typeof value === 'object') return Object.entries(value).some(([k, v]) => UNSTORABLE.test(k) || hasNul(v));
  return false;
}

/** `value` with every NUL and lone surrogate in its strings (keys included) replaced by U+FFFD; `value` itself when it has none. */
export function withoutNul(value: unknown): unknown {
  if (!hasNul(value)) return value;
  if (typeof value === 'string') return storable(value);
  if (Array.isArray(value)) return value.map(withoutNul);
  return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [storable(k), withoutNul(v)]));
}

export const webhookRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
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
          if (!services.auth.webhook(req.headers.authorization)) throw unauthorized('missing or wrong webhook bearer token');
        },
        // Before validating thousands of alerts: a message over the cap is refused whole, with a 4xx
        // Alertmanager does not retry, instead of a 503 it would retry forever.
        preValidation: async (req) => {
          // PostgreSQL stores no NUL (nor half a surrogate pair) in text or JSON: one in a label must not turn the group into a 503 retried forever.
          (req as { body: unknown }).body = withoutNul(req.body);
          const alerts = (req.body as { alerts?: unknown } | undefined)?.alerts;
          const max = services.config.maxAlertsPerMessage;
          if (Array.isArray(alerts) && alerts.length > max) {
            services.metrics.webhookRefused.inc({ reason: 'too_many_alerts' });
            services.log.warn({ reqId: req.id, alerts: alerts.length, max }, 'delivery refused: too many alerts in one message');
            throw new ApiError(
              'PAYLOAD_TOO_LARGE',
              `the message has ${alerts.length} alerts; at most ${max} (MAX_ALERTS_PER_MESSAGE) are taken in one message: lower the Alertmanager route's group size or raise the limit`,
            );
          }
        },
      },
      async (req) => {
        const started = performance.now();
        try {
          const result = await services.intake(req.body);
          const ms = performance.now() - started;
          services.metrics.webhookDuration.observe({ code: '200' }, ms / 1000);
          // "Did my alert arrive?": one line per delivery (Fastify's own request lines stay at warn).
          services.log.info(
            {
              reqId: req.id,
              receiver: req.body.receiver,
              groupKey: req.body.groupKey,
              alerts: req.body.alerts.length,
              runsCreated: result.runs.filter((r) => !r.duplicate).length,
              duplicates: result.runs.filter((r) => r.duplicate).length,
              ms: Math.round(ms),
            },
            'delivery stored',
          );
          return result;
        } catch (err) {
          services.metrics.webhookDuration.observe({ code: '503' }, (performance.now() - started) / 1000);
          // Anything that kept the alerts from being stored is a 503: Alertmanager retries only 5xx.
          const dependency = err instanceof DependencyError ? err.dependency : 'storage';
          req.log.error(
            { err: (err as Error).message, dependency, alerts: req.body.alerts.length },
            'alerts not stored; answering 503 so Alertmanager retries',
          );
          throw new ApiError('UNAVAILABLE', `${dependency} cannot take the write right now; retry`);
        }
      },
    );
  };
