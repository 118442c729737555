import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ErrorResponse } from '../schemas/runs.js';
import type { Services } from '../services.js';
import { bearerSecurity, requireRole } from './hooks.js';

/** The caller as its token names it; `can` says which of the API's decisions that role may take. */
export const WhoAmI = Type.Object({
  name: Type.String(),
  role: Type.Union([Type.Literal('viewer'), Type.Literal('approver'), Type.Literal('admin')]),
  can: Type.Object({
    /** approve, reject and revert runs (approver and admin) */
    decide: Type.Boolean(),
    /** pause and resume (admin) */
    control: Type.Boolean(),
  }),
});

export const whoamiRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/api/whoami',
      {
        onRequest: requireRole(services, 'viewer'),
        schema: {
          summary: "The API token's name and role",
          tags: ['auth'],
          security: bearerSecurity,
          response: { 200: WhoAmI, 401: ErrorResponse },
        },
      },
      async (req) => {
        const { name, role } = req.caller!;
        return { name, role, can: { decide: services.auth.allows(role, 'approver'), control: services.auth.allows(role, 'admin') } };
      },
    );
  };
