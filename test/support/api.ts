/**
 * The service's HTTP API as tests use it, over supertest, with the tokens of `harness.ts`: deliver an
 * Alertmanager message, read a run, wait for a run to reach a status, approve or reject it.
 */
import type { Static } from '@sinclair/typebox';
import request from 'supertest';
import type { WebhookRun } from '../../src/schemas/alertmanager.js';
import type { Run, RunEvent } from '../../src/schemas/runs.js';
import { eventually, TOKENS, WEBHOOK_TOKEN, type TestService } from './harness.js';

/** Anything with the base URL of a running service. */
export type Api = Pick<TestService, 'url'>;

/** A run as the webhook answers it. */
export type DeliveredRun = Static<typeof WebhookRun>;

/** A run as `GET /api/runs/:id` answers it: with its events. */
export type RunBody = Run & { events: RunEvent[] };

/** `POST /webhooks/alertmanager` with the webhook token, ready for `.send(...)`. */
export const webhook = (svc: Api): request.Test =>
  request(svc.url).post('/webhooks/alertmanager').set('Authorization', `Bearer ${WEBHOOK_TOKEN}`);

/** Delivers an Alertmanager message as Alertmanager would; expects 200 (or `expect`) and returns the runs it answered. */
export async function deliver(svc: Api, message: object, opts: { expect?: number } = {}): Promise<DeliveredRun[]> {
  const res = await webhook(svc)
    .send(message)
    .expect(opts.expect ?? 200);
  return res.body.runs as DeliveredRun[];
}

/** `GET /api/runs/:id` with the viewer token; expects 200. */
export async function getRun(svc: Api, id: string): Promise<RunBody> {
  const res = await request(svc.url).get(`/api/runs/${id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
  return res.body as RunBody;
}

/** Polls the run until its status is `status` and returns it as read then; fails after `timeoutMs`. */
export function settled(svc: Api, id: string, status: Run['status'], timeoutMs = 10_000): Promise<RunBody> {
  return eventually(
    async () => {
      const run = await getRun(svc, id);
      return run.status === status ? run : undefined;
    },
    timeoutMs,
    `run ${id} ${status}`,
  );
}

/** `token`: the bearer token (the approver bob's by default; `null` sends none). */
interface DecisionOptions {
  token?: string | null;
}

function decide(
  svc: Api,
  id: string,
  decision: 'approve' | 'reject',
  token: string | null | undefined,
  body: Record<string, string>,
): request.Test {
  const req = request(svc.url).post(`/api/runs/${id}/${decision}`);
  const bearer = token === undefined ? TOKENS.approver : token;
  if (bearer !== null) req.set('Authorization', `Bearer ${bearer}`);
  return req.send(body);
}

/**
 * `POST /api/runs/:id/approve`; asserts nothing. Await it for the response, or chain `.expect(...)`.
 */
export const approve = (svc: Api, id: string, opts: DecisionOptions & { comment?: string } = {}): request.Test =>
  decide(svc, id, 'approve', opts.token, opts.comment === undefined ? {} : { comment: opts.comment });

/** `POST /api/runs/:id/reject`; asserts nothing. Await it for the response, or chain `.expect(...)`. */
export const reject = (svc: Api, id: string, opts: DecisionOptions & { reason?: string } = {}): request.Test =>
  decide(svc, id, 'reject', opts.token, opts.reason === undefined ? {} : { reason: opts.reason });
