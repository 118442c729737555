import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound, validation } from '../errors.js';
import { parseDuration } from '../kernel/duration.js';
import { currentFiring } from '../gates/alert-firing.js';
import {
  ApproveBody,
  ErrorResponse,
  MAX_LIST_LIMIT,
  RejectBody,
  RevertBody,
  Run,
  RunIdParams,
  RunList,
  RunListQuery,
} from '../schemas/runs.js';
import type { Services } from '../services.js';
import type { TimeBound } from '../store/run-records.js';
import { bearerSecurity, emptyBodyAsObject, requireRole } from './hooks.js';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
/** Durations back from now beyond this are refused: PostgreSQL's timestamps end there. */
const MAX_AGO_MS = 1000 * 365 * 24 * 3600_000;

/** `since` / `until` as the store takes them; a 400 naming the parameter when it is neither a time nor a duration. */
export function timeBound(name: 'since' | 'until', text: string): TimeBound {
  const ago = parseDuration(text);
  if (ago !== undefined) {
    if (ago > MAX_AGO_MS) throw validation(`querystring/${name} must be a duration of at most 1000y`);
    return { agoMs: ago };
  }
  const m = RFC3339.exec(text);
  if (m) {
    const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    // setUTCFullYear, not Date.UTC: Date.UTC reads the years 0-99 as 1900-1999.
    const day = new Date(0);
    day.setUTCFullYear(y, mo - 1, d);
    const offset = m[8]!;
    // PostgreSQL takes UTC offsets up to 15:59 either way; a larger one is refused here, not by the statement.
    const offsetOk = /^[Zz]$/.test(offset) || (Number(offset.slice(1, 3)) <= 15 && Number(offset.slice(4, 6)) <= 59);
    if (
      y >= 1 &&
      day.getUTCFullYear() === y &&
      day.getUTCMonth() === mo - 1 &&
      day.getUTCDate() === d &&
      h <= 23 &&
      mi <= 59 &&
      sec <= 59 &&
      offsetOk
    ) {
      return { at: text.toUpperCase() };
    }
  }
  throw validation(
    `querystring/${name} must be an RFC 3339 time (2026-01-02T15:04:05Z, a UTC offset of at most 15:59) or a duration back from now (30m, 1h, 2d)`,
  );
}

/** The largest sequence number PostgreSQL's bigint holds: a cursor beyond it is no cursor we gave. */
const MAX_SEQ = 2n ** 63n - 1n;

function cursorOf(text: string): string {
  if (BigInt(text) > MAX_SEQ) throw validation('querystring/cursor must be a cursor from an earlier page (nextCursor)');
  return text;
}

/**
 * Before the schema: `limit` out of range is told its range (the schema's pattern would only say
 * "must match pattern"). A page holds at most MAX_LIST_LIMIT runs, so an answer stays small.
 */
async function checkLimit(req: { query: unknown }): Promise<void> {
  const limit = (req.query as { limit?: unknown } | undefined)?.limit;
  if (limit === undefined) return;
  if (typeof limit !== 'string' || !/^[1-9][0-9]{0,2}$/.test(limit) || Number(limit) > MAX_LIST_LIMIT)
    throw validation(`querystring/limit must be a whole number from 1 to ${MAX_LIST_LIMIT} (default 50)`);
}

export const runRoutes =
  (services: Services): FastifyPluginAsyncTypebox =>
  async (app) => {
    const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse };

    app.get(
      '/api/runs',
      {
        onRequest: requireRole(services, 'viewer'),
        preValidation: checkLimit,
        schema: {
          summary: 'List runs, newest first, each with a summary of its alert (the whole alert: GET /api/runs/:id)',
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
          ...(q.alertname ? { alertname: q.alertname } : {}),
          ...(q.fingerprint ? { fingerprint: q.fingerprint } : {}),
          ...(q.target ? { target: q.target } : {}),
          ...(q.since ? { since: timeBound('since', q.since) } : {}),
          ...(q.until ? { until: timeBound('until', q.until) } : {}),
          ...(q.cursor ? { cursor: cursorOf(q.cursor) } : {}),
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
