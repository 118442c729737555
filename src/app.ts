import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { API_BODY_LIMIT } from './config.js';
import { notFound, toApiError } from './errors.js';
import { controlRoutes } from './routes/control.js';
import { docsRoutes } from './routes/docs.js';
import { healthRoutes } from './routes/health.js';
import { reloadRoutes } from './routes/reload.js';
import { runRoutes } from './routes/runs.js';
import { simulateRoutes } from './routes/simulate.js';
import { slackRoutes } from './routes/slack.js';
import { UI_CSP, uiRoutes } from './routes/ui.js';
import { webhookRoutes } from './routes/webhook.js';
import { whoamiRoutes } from './routes/whoami.js';
import type { Services } from './services.js';

export interface AppOptions {
  logger: FastifyBaseLogger;
}

/**
 * Fastify's own response serializers, each made on its route's first answer with that status rather
 * than for every route and status at start: the generated code of all of them is half a MiB of
 * source kept in memory, and a process that never answers most of them (a worker, say) never makes them.
 */
export function lazySerializers(build: SerializerFactory = SerializerSelector()): SerializerFactory {
  return (externalSchemas, options) => {
    const compile = build(externalSchemas, options);
    return (route) => {
      let serialize: ((doc: unknown) => string) | undefined;
      return (doc) => (serialize ??= compile(route))(doc);
    };
  };
}

/** The headers every answer carries: no sniffing, no referrer, no framing; the console's CSP and caching, or the API's. */
function securityHeaders(req: FastifyRequest, reply: FastifyReply, status = reply.statusCode): void {
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  if (req.url === '/ui' || req.url.startsWith('/ui/') || req.url.startsWith('/ui?')) {
    // The console: its own scripts, styles and API only (no inline script, nothing from elsewhere).
    reply.header('content-security-policy', UI_CSP);
    // Its assets are named by their content's hash; the page itself is read afresh.
    const asset = req.url.startsWith('/ui/assets/') && status === 200;
    reply.header('cache-control', asset ? 'public, max-age=31536000, immutable' : 'no-store');
  } else if (!req.url.startsWith('/docs')) {
    reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    reply.header('cache-control', 'no-store');
  }
}

/**
 * Any error as the API answers it: `{ statusCode, code, error, message }`, a 5xx logged and its
 * internals hidden. `withHeaders` for an answer made outside any route, which the onSend hook that
 * sets the security headers does not see.
 */
function answerError(err: unknown, req: FastifyRequest, reply: FastifyReply, withHeaders = false) {
  const answer = toApiError(err);
  if (withHeaders) securityHeaders(req, reply, answer.statusCode);
  if (answer.statusCode >= 500) req.log.error({ err: (err as Error).message, code: answer.code, url: req.url }, 'request failed');
  return reply
    .code(answer.statusCode)
    .send({ statusCode: answer.statusCode, code: answer.code, error: httpReason(answer.statusCode), message: answer.message });
}

/**
 * The HTTP application as a plugin tree with no port and no process side effects: tests build it,
 * `server.ts` listens. Errors always answer `{ statusCode, code, error, message }`; a 5xx that is not
 * ours hides its internals.
 */
export async function buildApp(services: Services, opts: AppOptions) {
  const { config } = services;
  const app = Fastify({
    loggerInstance: opts.logger,
    // Small bodies everywhere; the webhook's route sets the large limit, read only after its token is checked.
    bodyLimit: API_BODY_LIMIT,
    // A request arrives whole within requestTimeout, so a trickled body cannot hold a socket.
    requestTimeout: config.requestTimeoutMs,
    // Node checks the deadlines on connectionsCheckingInterval (30s by default): often enough that they hold.
    http: {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(config.requestTimeoutMs / 4))),
    },
    connectionTimeout: config.connectionTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Every route answers its own line where it matters (the webhook's delivery line, errors at 5xx).
    logController: new LogController({ disableRequestLogging: true }),
    // Alertmanager's body is validated as sent: no coercion of wrong types, unknown fields kept.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // What the router refuses before any route (a malformed escape in the path, an over-long path
    // parameter) is answered like every other error, not with Fastify's own codes.
    frameworkErrors: (err, req, reply) => void answerError(err, req, reply, true),
    schemaController: { compilersFactory: { buildSerializer: lazySerializers() } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((err, req, reply) => answerError(err, req, reply));
  app.server.maxConnections = config.maxConnections;

  // An unknown path is answered before its body is read (nothing is parsed or buffered for it).
  app.addHook('onRequest', async (req, reply) => {
    if (!req.is404) return;
    req.log.debug({ method: req.method, url: req.url }, 'no such route');
    const answer = notFound(`${req.method} ${req.url}`);
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) reply.header('connection', 'close');
    return reply.code(404).send({ statusCode: 404, code: answer.code, error: 'Not Found', message: answer.message });
  });
  app.addHook('onSend', async (req, reply) => securityHeaders(req, reply));

  app.setNotFoundHandler((req, reply) => {
    const answer = notFound(`${req.method} ${req.url}`);
    return reply.code(404).send({ statusCode: 404, code: answer.code, error: 'Not Found', message: answer.message });
  });

  if (config.docs) {
    // Imported only when /docs is served (DOCS): it records every route's schema as routes are added.
    const { default: swagger } = await import('@fastify/swagger');
    await app.register(swagger, {
      openapi: {
        info: { title: 'conduit-remediator', version: '0.1.0', description: 'Alert-driven auto-remediation for ConduitLLM' },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      },
    });
    // The UI (@fastify/swagger-ui and its assets) is loaded on the first request for it.
    await app.register(docsRoutes);
  }

  await app.register(healthRoutes(services));
  // Every role decides runs with the matrix (chains move on in workers too): each one reloads.
  await app.register(reloadRoutes(services));
  if (config.role !== 'worker') {
    // Slack authenticates by signature: a sibling of the bearer-token routes, not behind them.
    if (config.slack) await app.register(slackRoutes(services, config.slack));
    await app.register(webhookRoutes(services));
    await app.register(runRoutes(services));
    await app.register(controlRoutes(services));
    await app.register(simulateRoutes(services));
    await app.register(whoamiRoutes(services));
    await app.register(uiRoutes);
  }
  return app;
}

function httpReason(code: number): string {
  const reasons: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    409: 'Conflict',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
    422: 'Unprocessable Entity',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return reasons[code] ?? 'Error';
}
