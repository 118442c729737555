import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound } from '../errors.js';
import { currentFiring } from '../gates/alert-firing.js';
import { ApproveBody, ErrorResponse, RejectBody, RevertBody, Run, RunIdParams, RunList, RunListQuery } from '../schemas/runs.js';
import type { Services } from '../services.js';
import { bearerSecurity, emptyBodyAsObject, requireRole } from './hooks.js';

export const runRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse };

    app.get(
      '/api/runs',
      {
        onRequest: requireRole(services, 'viewer'),
        schema: {
          summary: 'List runs, newest first',
          tags: ['runs'],
          security: bearerSecurity,
          querystring: RunListQuery,
          response: { 200: RunList, ...errors },
        },
      },
      async (req) => {
        const q = req.query;
        return services.runs.list({
          limit: q.limit ? Number(q.limit) : 50,
          ...(q.status ? { status: q.status } : {}),
          ...(q.rule ? { rule: q.rule } : {}),
          ...(q.remediation ? { remediation: q.remediation } : {}),
          ...(q.cursor ? { cursor: q.cursor } : {}),
        });
      },
    );

    app.get(
      '/api/runs/:id',
      {
        onRequest: requireRole(services, 'viewer'),
        schema: {
          summary: 'One run with its event timeline',
          tags: ['runs'],
          security: bearerSecurity,
          params: RunIdParams,
          response: { 200: Run, ...errors },
        },
      },
      async (req) => {
        const run = await services.runs.get(req.params.id);
        if (!run) throw notFound(`run ${req.params.id}`);
        // Asked live: whether acting on this run still makes sense is what on-call wants to know.
        if (services.alertCheck && run.phase === 'firing') run.alertFiring = await currentFiring(services.alertCheck, run);
        return run;
      },
    );

    app.post(
      '/api/runs/:id/approve',
      {
        onRequest: requireRole(services, 'approver'),
        preValidation: emptyBodyAsObject,
        schema: {
          summary: 'Approve a pending run: pending_approval -> queued',
          tags: ['runs'],
          security: bearerSecurity,
          params: RunIdParams,
          body: ApproveBody,
          response: { 200: Run, ...errors },
        },
      },
      async (req) => services.approvals.approve(req.params.id, req.caller!.name, req.body?.comment ?? null),
    );

    app.post(
      '/api/runs/:id/reject',
      {
        onRequest: requireRole(services, 'approver'),
        preValidation: emptyBodyAsObject,
        schema: {
          summary: 'Reject a pending run: pending_approval -> rejected',
          tags: ['runs'],
          security: bearerSecurity,
          params: RunIdParams,
          body: RejectBody,
          response: { 200: Run, ...errors },
        },
      },
      async (req) => services.approvals.reject(req.params.id, req.caller!.name, req.body?.reason ?? null),
    );

    app.post(
      '/api/runs/:id/revert',
      {
        onRequest: requireRole(services, 'approver'),
        preValidation: emptyBodyAsObject,
        schema: {
          summary: 'Undo a succeeded run: creates its revert run (phase revert), through the usual gates',
          tags: ['runs'],
          security: bearerSecurity,
          params: RunIdParams,
          body: RevertBody,
          response: { 200: Run, ...errors },
        },
      },
      async (req) => services.reverts.revertById(req.params.id, req.caller!.name),
    );
  };
