import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import { ApiError, toApiError, unauthorized, validation } from '../errors.js';
import { escapeSlack, oneLine } from '../matrix/template.js';
import { alreadyDecided, decisionNotice, decisionOutcome } from '../notify/notifier.js';
import { APPROVE_ACTION, REJECT_ACTION, RUN_ID } from '../slack/blocks.js';
import type { SlackConfig } from '../slack/config.js';
import type { Services } from '../services.js';

export const SLACK_INTERACTIONS_PATH = '/integrations/slack/interactions';
/** Slack's interaction payloads carry the message clicked; the service's approval notices fit well within this. */
export const SLACK_BODY_LIMIT = 16 * 1024;
/** A request signed longer ago than this (or this far ahead) is refused as a replay. */
export const MAX_SIGNATURE_AGE_S = 5 * 60;

export interface SlackRouteOptions {
  /** The origins a `response_url` may point at; the message is never posted elsewhere. Default: Slack's, `https://hooks.slack.com`. */
  responseOrigins?: readonly string[];
  /** Largest body read (default 16 KiB). It is read before the signature can be checked. */
  bodyLimit?: number;
  /** Slack waits 3 s for an answer: a decision taking longer than this is answered "deciding", and its outcome follows through `response_url`. */
  answerWithinMs?: number;
  /** Deadline of each POST to `response_url` (default 5 s). */
  responseTimeoutMs?: number;
  /** The clock signatures are dated against, in ms. */
  now?: () => number;
}

/** An answer only the clicking user sees, leaving the notice as it is. */
interface Ephemeral {
  response_type: 'ephemeral';
  replace_original: false;
  text: string;
}

const ephemeral = (text: string): Ephemeral => ({ response_type: 'ephemeral', replace_original: false, text });

interface Interaction {
  decision: 'approve' | 'reject';
  runId: string;
  userId: string;
  responseUrl: string | undefined;
}

const TIMESTAMP = /^\d{1,12}$/;
const SIGNATURE = /^v0=[0-9a-f]{64}$/;

/**
 * Checks a request as Slack signs it: `X-Slack-Signature` is `v0=` and the hex HMAC-SHA256, keyed
 * with the signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`, and the timestamp is
 * within 5 minutes of `nowMs`. Returns why the request is refused, or `undefined` when it is Slack's.
 */
export function slackSignatureRefusal(
  secret: string,
  timestamp: string | undefined,
  signature: string | undefined,
  raw: Buffer,
  nowMs: number,
): string | undefined {
  if (timestamp === undefined || !TIMESTAMP.test(timestamp)) return 'missing or malformed X-Slack-Request-Timestamp';
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > MAX_SIGNATURE_AGE_S) {
    return 'X-Slack-Request-Timestamp is more than 5 minutes away from now (a replayed or delayed request)';
  }
  if (signature === undefined || !SIGNATURE.test(signature)) return 'missing or malformed X-Slack-Signature';
  const expected = createHmac('sha256', secret).update(`v0:${timestamp}:`).update(raw).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature.slice(3), 'hex'))) return 'X-Slack-Signature does not match';
  return undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A click on one of the service's buttons, or `undefined` for any other interaction (acknowledged, ignored). */
function parseInteraction(raw: string): Interaction | undefined {
  const text = new URLSearchParams(raw).get('payload');
  if (text === null) throw validation('body/payload is missing (Slack posts payload=<JSON>)');
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    throw validation('body/payload is not JSON');
  }
  if (!isObject(payload)) throw validation('body/payload must be an object');
  if (payload['type'] !== 'block_actions') return undefined;
  const action = Array.isArray(payload['actions']) ? payload['actions'][0] : undefined;
  if (!isObject(action) || (action['action_id'] !== APPROVE_ACTION && action['action_id'] !== REJECT_ACTION)) return undefined;
  const user = payload['user'];
  const userId = isObject(user) && typeof user['id'] === 'string' ? user['id'] : undefined;
  if (!userId) throw validation('body/payload/user/id is missing');
  const value = action['value'];
  if (typeof value !== 'string' || !RUN_ID.test(value)) throw validation('body/payload/actions/0/value must be a run id (UUID)');
  const responseUrl = payload['response_url'];
  return {
    decision: action['action_id'] === APPROVE_ACTION ? 'approve' : 'reject',
    runId: value.toLowerCase(),
    userId,
    responseUrl: typeof responseUrl === 'string' ? responseUrl : undefined,
  };
}

/**
 * `POST /integrations/slack/interactions`: the Approve and Reject buttons of approval notices.
 * Slack authenticates by signature, not by bearer token: the raw form body is kept (a parser of
 * this plugin alone) and checked before anything is read from it. The Slack user is mapped to an
 * approver through SLACK_APPROVERS; the run is decided through `approvals` (one conditional
 * UPDATE, so of clicks on any replica exactly one wins), Slack is answered within its 3 s with an
 * ephemeral line, and the notice is replaced through `response_url` with the outcome, who decided
 * and when. A click on a decided run answers who decided it.
 */
export const slackRoutes =
  (services: Pick<Services, 'approvals' | 'runs'>, slack: SlackConfig, opts: SlackRouteOptions = {}): FastifyPluginAsync =>
  async (app) => {
    const bodyLimit = opts.bodyLimit ?? SLACK_BODY_LIMIT;
    const answerWithinMs = opts.answerWithinMs ?? 2500;
    const responseTimeoutMs = opts.responseTimeoutMs ?? 5000;
    const now = opts.now ?? (() => Date.now());
    const origins = new Set((opts.responseOrigins ?? ['https://hooks.slack.com']).map((o) => new URL(o).origin));
    const pending = new Set<Promise<void>>();

    const track = (p: Promise<void>) => {
      const tracked = p.finally(() => pending.delete(tracked));
      pending.add(tracked);
    };
    app.addHook('onClose', async () => {
      await Promise.allSettled([...pending]);
    });

    // Slack posts application/x-www-form-urlencoded; the signature is over the bytes as sent.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

    function allowed(url: string): boolean {
      try {
        const u = new URL(url);
        return origins.has(u.origin) && u.username === '' && u.password === '';
      } catch {
        return false;
      }
    }

    /** Posts the messages to `response_url`, in order. Never follows a redirect; the URL (a capability) is never logged. */
    function respond(log: FastifyBaseLogger, url: string | undefined, messages: object[]): void {
      if (url === undefined) return;
      if (!allowed(url)) {
        log.warn({ allowed: [...origins] }, 'Slack interaction: response_url is not at an allowed origin; the message is not updated');
        return;
      }
      track(
        (async () => {
          for (const message of messages) {
            try {
              const res = await fetch(url, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json' },
                body: JSON.stringify(message),
                redirect: 'error',
                signal: AbortSignal.timeout(responseTimeoutMs),
              });
              const answer = (await res.text()).slice(0, 200);
              if (!res.ok) log.warn({ status: res.status, answer }, 'Slack refused the update of the message');
            } catch (err) {
              const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
              const reason = (err as Error).name === 'TimeoutError' ? 'timeout' : (cause?.code ?? cause?.message ?? 'unreachable');
              log.warn({ reason: String(reason) }, 'the update of the Slack message failed');
            }
          }
        })(),
      );
    }

    async function decide(log: FastifyBaseLogger, i: Interaction, name: string): Promise<Ephemeral> {
      const comment = `from Slack (${i.userId})`;
      try {
        const run =
          i.decision === 'approve'
            ? await services.approvals.approve(i.runId, name, comment)
            : await services.approvals.reject(i.runId, name, comment);
        log.info({ runId: run.id, by: name, slackUser: i.userId, decision: i.decision }, 'run decided from Slack');
        respond(log, i.responseUrl, [{ replace_original: true, ...decisionNotice(run) }]);
        return ephemeral(`${decisionOutcome(run)}: run ${run.id}`);
      } catch (err) {
        if (err instanceof ApiError && err.code === 'CONFLICT') {
          const run = await services.runs.get(i.runId, { events: false }).catch(() => undefined);
          if (run) {
            const answer = ephemeral(alreadyDecided(run));
            respond(log, i.responseUrl, [{ replace_original: true, ...decisionNotice(run) }, answer]);
            return answer;
          }
        }
        if (err instanceof ApiError && err.code === 'NOT_FOUND') {
          const answer = ephemeral(`Run ${i.runId} not found: nothing was decided`);
          respond(log, i.responseUrl, [answer]);
          return answer;
        }
        const apiError = toApiError(err);
        log.warn({ runId: i.runId, err: (err as Error).message }, 'a decision from Slack failed');
        const answer = ephemeral(`Run ${i.runId} could not be decided now (${escapeSlack(oneLine(apiError.message))}); try again`);
        respond(log, i.responseUrl, [answer]);
        return answer;
      }
    }

    app.post(
      SLACK_INTERACTIONS_PATH,
      {
        bodyLimit,
        schema: {
          summary: "Slack's interaction payloads: the Approve and Reject buttons of approval notices (signed by Slack, no bearer token)",
          tags: ['slack'],
          consumes: ['application/x-www-form-urlencoded'],
        },
      },
      async (req, reply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const header = (name: string) => {
          const v = req.headers[name];
          return typeof v === 'string' ? v : undefined;
        };
        const refusal = slackSignatureRefusal(
          slack.signingSecret,
          header('x-slack-request-timestamp'),
          header('x-slack-signature'),
          raw,
          now(),
        );
        if (refusal) {
          req.log.warn({ reason: refusal }, 'Slack interaction refused');
          throw unauthorized(refusal);
        }
        const interaction = parseInteraction(raw.toString('utf8'));
        if (!interaction) return reply.code(200).send();

        const name = slack.approvers.get(interaction.userId);
        if (!name) {
          req.log.warn(
            { slackUser: interaction.userId, runId: interaction.runId },
            'Slack user not in SLACK_APPROVERS: not allowed to decide',
          );
          const answer = ephemeral(
            `You are not allowed to approve or reject runs: Slack user ${escapeSlack(oneLine(interaction.userId))} is not in SLACK_APPROVERS. Nothing was decided.`,
          );
          respond(req.log, interaction.responseUrl, [answer]);
          return answer;
        }

        const decision = decide(req.log, interaction, name);
        track(decision.then(() => undefined));
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<Ephemeral>((resolve) => {
          timer = setTimeout(
            () => resolve(ephemeral(`Deciding run ${interaction.runId}; the notice is updated once it is decided`)),
            answerWithinMs,
          );
        });
        try {
          return await Promise.race([decision, late]);
        } finally {
          clearTimeout(timer);
        }
      },
    );
  };
