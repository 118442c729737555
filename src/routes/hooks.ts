import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Role } from '../config.js';
import { forbidden, unauthorized } from '../errors.js';
import type { Services } from '../services.js';

declare module 'fastify' {
  interface FastifyRequest {
    caller?: { name: string; role: Role };
  }
}

/** An onRequest hook admitting API tokens of `role` or higher; it runs before the body is read. */
export function requireRole(services: Services, role: Role) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    const caller = services.auth.api(req.headers.authorization);
    if (!caller) throw unauthorized('missing or unknown bearer token');
    if (!services.auth.allows(caller.role, role)) {
      throw forbidden(`token "${caller.name}" has role ${caller.role}; this needs ${role}`);
    }
    req.caller = caller;
  };
}

export const bearerSecurity = [{ bearer: [] as string[] }];

/** Lets a POST whose body is all optional be sent with no body at all (`curl -X POST url`). */
export async function emptyBodyAsObject(req: FastifyRequest): Promise<void> {
  if (req.body === undefined || req.body === null) (req as { body: unknown }).body = {};
}
