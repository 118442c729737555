import Fastify, { type FastifyPluginAsync } from 'fastify';
import { relayTo } from './relay.js';

/**
 * `/docs`: the OpenAPI document (`/docs/json`, `/docs/yaml`) straight from `@fastify/swagger`, which the
 * application registers before its routes, and the Swagger UI page and its static assets from
 * `@fastify/swagger-ui`, imported with the assets' file server only when a UI path is first asked for
 * (most processes never serve it): it runs in a Fastify instance of its own with no port, and its
 * answers are relayed (`relayTo`). Every /docs route is hidden from the document, as the plugin hides its own.
 */
export const docsRoutes: FastifyPluginAsync = async (app) => {
  const hidden = { schema: { hide: true } } as const;
  app.get('/docs/json', hidden, async () => app.swagger());
  app.get('/docs/yaml', hidden, async (_req, reply) => reply.type('application/x-yaml').send(app.swagger({ yaml: true })));
  const ui = relayTo(async () => {
    const { default: swaggerUi } = await import('@fastify/swagger-ui');
    const inner = Fastify({ logger: false });
    // The plugin needs @fastify/swagger (by name) and its document: the application's.
    inner.decorate('swagger', app.swagger.bind(app));
    await inner.register(
      Object.assign(async () => {}, { [Symbol.for('skip-override')]: true, [Symbol.for('plugin-meta')]: { name: '@fastify/swagger' } }),
    );
    await inner.register(swaggerUi, { routePrefix: '/docs' });
    await inner.ready();
    return inner;
  });
  app.get('/docs', hidden, ui);
  app.get('/docs/*', hidden, ui);
};
