import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Hop-by-hop and framing headers of the inner answer, which the outer reply sets itself. */
const NOT_RELAYED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

/**
 * A route handler that serves from a Fastify instance built on the first request (`load`): for
 * plugins most processes never need, so that their modules are imported only then. Each request is
 * handed to the instance with `inject` and its answer relayed as it is (status, headers, body; HEAD
 * is answered as the application answers it, from the GET). A 404 of the instance is the
 * application's own 404. A failed `load` is tried again on the next request.
 */
export function relayTo(load: () => Promise<FastifyInstance>): (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
  let inner: Promise<FastifyInstance> | undefined;
  return async (req, reply) => {
    inner ??= load().catch((err: unknown) => {
      inner = undefined;
      throw err;
    });
    const res = await (await inner).inject({ method: 'GET', url: req.url, headers: req.headers });
    if (res.statusCode === 404) {
      reply.callNotFound();
      return reply;
    }
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined && !NOT_RELAYED.has(name.toLowerCase())) reply.header(name, value);
    }
    reply.code(res.statusCode);
    return res.rawPayload.length > 0 ? reply.send(res.rawPayload) : reply.send();
  };
}
