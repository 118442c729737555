/**
 * Slack as the interactions route meets it: a click on a button, signed exactly as Slack signs
 * (`v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing secret), posted as
 * `payload=<urlencoded JSON>`; and a stand-in `response_url` that records what the service posts.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { APPROVE_ACTION, REJECT_ACTION, type SlackMessage } from '../../src/slack/blocks.js';

export const SIGNING_SECRET = 'e3b0c44298fc1c149afbf4c8996fb924';

/** The signature Slack sends for `rawBody` at `timestamp` (seconds). */
export function slackSignature(secret: string, timestamp: string, rawBody: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
}

/** The body Slack posts: `payload=` and the payload as URL-encoded JSON. */
export const interactionBody = (payload: object): string => `payload=${encodeURIComponent(JSON.stringify(payload))}`;

export interface ClickOptions {
  userId: string;
  action: 'approve' | 'reject';
  /** The button's value: the run id it was made for. */
  value: string;
  responseUrl: string;
  /** The message the button is in, as Slack stored it. */
  message?: SlackMessage;
}

/** A `block_actions` payload of a button click in a channel message, shaped as Slack sends one. */
export function blockActions(opts: ClickOptions): Record<string, unknown> {
  const ts = `${Math.floor(Date.now() / 1000)}.${randomBytes(3).readUIntBE(0, 3)}`;
  return {
    type: 'block_actions',
    user: {
      id: opts.userId,
      username: `user-${opts.userId.toLowerCase()}`,
      name: `user-${opts.userId.toLowerCase()}`,
      team_id: 'T0TEAM001',
    },
    api_app_id: 'A0APP0001',
    token: 'verification-token-is-deprecated',
    container: { type: 'message', message_ts: ts, channel_id: 'C0CHAN001', is_ephemeral: false },
    trigger_id: `${Date.now()}.${randomBytes(4).toString('hex')}`,
    team: { id: 'T0TEAM001', domain: 'example' },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: 'C0CHAN001', name: 'oncall' },
    message: { type: 'message', subtype: 'bot_message', ts, bot_id: 'B0BOT0001', ...(opts.message ?? { text: 'notice' }) },
    state: { values: {} },
    response_url: opts.responseUrl,
    actions: [
      {
        action_id: opts.action === 'approve' ? APPROVE_ACTION : REJECT_ACTION,
        block_id: `decide:${opts.value}`,
        text: { type: 'plain_text', text: opts.action === 'approve' ? 'Approve' : 'Reject', emoji: false },
        value: opts.value,
        ...(opts.action === 'approve' ? { style: 'primary' } : {}),
        type: 'button',
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
}

export interface SendOptions {
  /** Seconds since the epoch the request is dated (default now). */
  timestamp?: number;
  /** Signs with this secret instead (a request not from this Slack app). */
  secret?: string;
  /** Sends this signature instead of the right one. */
  signature?: string;
}

/** Posts `payload` to the interactions route at `url` as Slack does; answers the status and the body (JSON when it is). */
export async function sendInteraction(
  url: string,
  payload: object,
  opts: SendOptions = {},
): Promise<{ status: number; body: unknown; text: string }> {
  const raw = interactionBody(payload);
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const res = await fetch(`${url}/integrations/slack/interactions`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      'X-Slack-Request-Timestamp': timestamp,
      'X-Slack-Signature': opts.signature ?? slackSignature(opts.secret ?? SIGNING_SECRET, timestamp, raw),
      'User-Agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
    },
    body: raw,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // An empty acknowledgement, or not JSON: the raw text.
  }
  return { status: res.status, body, text };
}

export interface ResponseSink {
  /** A `response_url` of its own for each click, as Slack gives. */
  responseUrl(): string;
  origin: string;
  /** Every message posted, with the path it was posted to. */
  messages: Array<{ path: string; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

/** A stand-in for Slack's `response_url` endpoint: records each JSON message and answers `ok`. */
export async function startResponseSink(): Promise<ResponseSink> {
  const messages: ResponseSink['messages'] = [];
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      messages.push({ path: req.url ?? '/', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
    } catch {
      res.writeHead(400).end('invalid_payload');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  }
  const server = createServer((req, res) => void handle(req, res).catch(() => res.writeHead(500).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    responseUrl: () => `${origin}/actions/T0TEAM001/${Date.now()}/${randomBytes(12).toString('hex')}`,
    messages,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
