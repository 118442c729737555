import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { simulate } from '../intake/simulate.js';
import { WebhookMessage } from '../schemas/alertmanager.js';
import { ErrorResponse } from '../schemas/runs.js';
import type { Services } from '../services.js';
import { bearerSecurity, requireRole } from './hooks.js';

const Decision = Type.Object({
  rule: Type.String(),
  action: Type.String(),
  remediation: Type.String(),
  params: Type.Object({}, { additionalProperties: true }),
  target: Type.Union([Type.String(), Type.Null()]),
  plan: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  approvalRequired: Type.Boolean(),
  dryRun: Type.Boolean(),
  outcome: Type.String({
    description: 'would_queue, would_wait (for a predecessor), would_wait_for_approval, would_suppress, would_fail or duplicate',
  }),
  status: Type.String({ description: 'the status the run would be created with' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  existingRun: Type.Union([Type.Object({ id: Type.String(), status: Type.String() }), Type.Null()]),
  check: Type.Union([
    Type.Object(
      {
        query: Type.String(),
        result: Type.String({ description: 'needed, cleared, unavailable, or not_evaluated (no PROMETHEUS_URL)' }),
      },
      { additionalProperties: true },
    ),
    Type.Null(),
  ]),
  verify: Type.Union([Type.Object({ query: Type.String(), withinMs: Type.Integer(), everyMs: Type.Integer() }), Type.Null()]),
  after: Type.Union([
    Type.Object({
      ref: Type.String(),
      when: Type.String(),
      needs: Type.String({ description: 'what the predecessor must end with for this action to go on' }),
      predecessor: Type.Object({
        action: Type.String(),
        createdByThisMessage: Type.Boolean(),
        runId: Type.Union([Type.String(), Type.Null()]),
        status: Type.Union([Type.String(), Type.Null()]),
        wouldSkip: Type.Optional(Type.String()),
      }),
    }),
    Type.Null(),
  ]),
});

const Simulation = Type.Object({
  paused: Type.Boolean(),
  dryRun: Type.Boolean(),
  alerts: Type.Array(
    Type.Object({
      fingerprint: Type.String(),
      status: Type.String(),
      labels: Type.Record(Type.String(), Type.String()),
      matched: Type.Boolean(),
      wouldCancel: Type.Array(Type.Object({ id: Type.String(), status: Type.String() })),
      actions: Type.Array(Decision),
    }),
  ),
});

export const simulateRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/api/simulate',
      {
        onRequest: requireRole(services, 'viewer'),
        bodyLimit: services.config.bodyLimit,
        schema: {
          summary: 'What an Alertmanager message would do now, with no side effect',
          tags: ['simulate'],
          security: bearerSecurity,
          body: WebhookMessage,
          response: { 200: Simulation, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse },
        },
      },
      async (req) => simulate(services, req.body),
    );
  };
