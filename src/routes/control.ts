import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Control, EmptyBody, ErrorResponse, PauseBody } from '../schemas/runs.js';
import type { Services } from '../services.js';
import { bearerSecurity, emptyBodyAsObject, requireRole } from './hooks.js';

export const controlRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    const errors = { 401: ErrorResponse, 403: ErrorResponse };
    const view = async () => ({ ...(await services.killSwitch.state()), dryRun: services.config.dryRun });

    app.get(
      '/api/control',
      {
        onRequest: requireRole(services, 'viewer'),
        schema: {
          summary: 'Kill switch and dry-run state',
          tags: ['control'],
          security: bearerSecurity,
          response: { 200: Control, ...errors },
        },
      },
      view,
    );

    app.post(
      '/api/control/pause',
      {
        onRequest: requireRole(services, 'admin'),
        preValidation: emptyBodyAsObject,
        schema: {
          summary: 'Kill switch on: new runs are suppressed, queued jobs wait',
          tags: ['control'],
          security: bearerSecurity,
          body: PauseBody,
          response: { 200: Control, ...errors },
        },
      },
      async (req) => {
        await services.killSwitch.pause(req.caller!.name, req.body?.reason ?? null);
        req.log.warn({ by: req.caller!.name, reason: req.body?.reason ?? null }, 'remediation paused');
        return view();
      },
    );

    app.post(
      '/api/control/resume',
      {
        onRequest: requireRole(services, 'admin'),
        preValidation: emptyBodyAsObject,
        schema: {
          summary: 'Kill switch off',
          tags: ['control'],
          security: bearerSecurity,
          body: EmptyBody,
          response: { 200: Control, ...errors },
        },
      },
      async (req) => {
        await services.killSwitch.resume(req.caller!.name);
        req.log.warn({ by: req.caller!.name }, 'remediation resumed');
        return view();
      },
    );
  };
