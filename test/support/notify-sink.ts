import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { faultInjection } from './faults.js';

export interface NotifySink {
  /** The webhook URL; its path carries a random secret, as a Slack one does, so tests can assert it never leaks. */
  url: string;
  secret: string;
  /** Every accepted message, in order of arrival. */
  messages: Array<{ text: string; body: unknown }>;
  /**
   * Whether `text` arrived: a message of its own, or a bullet of a message listing a rule's notices
   * posted within a few seconds of each other (`notify.webhook` posts folded into one).
   */
  received(text: string): boolean;
  /** Every request, accepted or not. */
  requests: Array<{ method: string; path: string; headers: IncomingMessage['headers']; body: unknown }>;
  /** The next `count` requests answer `status` without recording a message. */
  failNext(count: number, status?: number): void;
  /** The next request waits `ms` before it is answered. */
  delayNext(ms: number): void;
  close(): Promise<void>;
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
}

/**
 * A stand-in Slack incoming webhook: `ok` for a JSON body with a non-empty `text`, the answers
 * Slack gives otherwise (`invalid_payload`, `no_text`), 404 `no_service` for any other path.
 */
export async function startNotifySink(opts: { secret?: string } = {}): Promise<NotifySink> {
  const secret = opts.secret ?? randomBytes(12).toString('hex');
  const path = `/services/T0000/B0000/${secret}`;
  const messages: NotifySink['messages'] = [];
  const requests: NotifySink['requests'] = [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = raw;
    try {
      body = JSON.parse(raw) as unknown;
    } catch {
      // Slack answers invalid_payload below; keep the raw text for the test to inspect.
    }
    requests.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body });

    if (!(await faults.delay(res))) return;

    const failure = faults.nextFailure();
    if (failure !== undefined) return reply(res, failure, failure >= 500 ? 'internal_error' : 'invalid_token');
    if (req.method !== 'POST' || req.url !== path) return reply(res, 404, 'no_service');
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply(res, 400, 'invalid_payload');
    const text = (body as { text?: unknown }).text;
    if (typeof text !== 'string' || text === '') return reply(res, 400, 'no_text');
    messages.push({ text, body });
    reply(res, 200, 'ok');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) reply(res, 500, 'internal_error');
    });
  });
  const faults = faultInjection(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${path}`,
    secret,
    received: (text) => messages.some((m) => m.text === text || `\n${m.text}\n`.includes(`\n• ${text.replace(/\n/g, '\n    ')}\n`)),
    messages,
    requests,
    failNext: (count, status = 500) => faults.failNext(count, status),
    delayNext: (ms) => faults.delayNext(ms),
    close: () => faults.close(),
  };
}
