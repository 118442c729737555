import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../errors.js';
import { EmptyBody, ErrorResponse, Reloaded } from '../schemas/runs.js';
import type { Services } from '../services.js';
import { bearerSecurity, emptyBodyAsObject, requireRole } from './hooks.js';

/**
 * `POST /-/reload` (admin), as Prometheus and Alertmanager name it: re-reads MATRIX_PATH. A valid
 * matrix answers 200 with what is now in use; an invalid one 422 with its `file:line:col` error,
 * and the previous matrix stays. SIGHUP does the same without a token.
 */
export const reloadRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/-/reload',
      {
        onRequest: requireRole(services, 'admin'),
        preValidation: emptyBodyAsObject,
        schema: {
          summary: 'Re-read the response matrix (MATRIX_PATH); an invalid one is refused and the previous one stays',
          tags: ['control'],
          security: bearerSecurity,
          body: EmptyBody,
          response: { 200: Reloaded, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 422: ErrorResponse },
        },
      },
      async (req) => {
        const outcome = services.matrix.reload(`POST /-/reload by ${req.caller!.name}`);
        if (!outcome.ok) throw new ApiError('INVALID_MATRIX', outcome.error);
        return { path: outcome.path, rules: outcome.rules, actions: outcome.actions, loadedAt: outcome.loadedAt };
      },
    );
  };
