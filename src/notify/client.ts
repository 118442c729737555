import { RemediationError, throwIfAborted, type NotifyTarget } from '../../remediations/types.js';

export interface PostOptions {
  signal: AbortSignal;
  timeoutMs: number;
}

/** A message with Block Kit blocks (src/slack/blocks.ts); `text` is what a client without blocks shows. */
export interface NotifyMessage {
  text: string;
  blocks?: readonly unknown[];
}

/** A notify target that also posts Block Kit messages (`{ text, blocks }`). */
export interface MessageTarget extends NotifyTarget {
  postMessage(message: NotifyMessage, opts: PostOptions): Promise<{ status: number }>;
}

/**
 * Posts `{ "text": ... }` (a string) or `{ "text": ..., "blocks": [...] }` (a message) to a
 * Slack-compatible incoming webhook. The URL carries the secret, so
 * no error made here names it, and none keeps the fetch error as `cause` (undici puts the URL in
 * some of its messages). A redirect is never followed: it would carry the message (and, from a
 * proxy that rewrites it, the secret path) to wherever the answer points.
 */
export async function postNotification(url: string, message: string | NotifyMessage, opts: PostOptions): Promise<{ status: number }> {
  throwIfAborted(opts.signal);
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  let answer: string;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(
        typeof message === 'string' ? { text: message } : { text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) },
      ),
      signal: AbortSignal.any([opts.signal, deadline]),
      redirect: 'error',
    });
    answer = await res.text();
  } catch (err) {
    if (opts.signal.aborted) throw new RemediationError('aborted', 'aborted while posting the notification', { retryable: true });
    if (deadline.aborted) {
      throw new RemediationError('timeout', `notification webhook did not answer within ${opts.timeoutMs} ms`, { retryable: true });
    }
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    if (cause?.message === 'unexpected redirect') {
      throw new RemediationError(
        'target_error',
        'notification webhook answered with a redirect, which is not followed (it would send the message elsewhere); check NOTIFY_WEBHOOK_URL',
        { detail: { redirect: true } },
      );
    }
    const code = cause?.code;
    const errorCode = typeof code === 'string' ? code : undefined;
    throw new RemediationError('target_error', `notification webhook unreachable${errorCode ? ` (${errorCode})` : ''}`, {
      retryable: true,
      ...(errorCode ? { detail: { errorCode } } : {}),
    });
  }
  if (res.ok) return { status: res.status };
  throw statusError(res.status, redact(answer, url));
}

function statusError(status: number, answer: string): RemediationError {
  const detail = { status, ...(answer ? { response: answer } : {}) };
  const said = answer ? `: ${answer}` : '';
  if (status === 401 || status === 403) {
    return new RemediationError('unauthorized', `notification webhook refused the request (${status})${said}; check NOTIFY_WEBHOOK_URL`, {
      detail,
    });
  }
  if (status === 404 || status === 410) {
    return new RemediationError(
      'not_found',
      `notification webhook does not exist or was revoked (${status})${said}; check NOTIFY_WEBHOOK_URL`,
      { detail },
    );
  }
  const retryable = status >= 500 || status === 408 || status === 429;
  return new RemediationError('target_error', `notification webhook answered ${status}${said}`, { retryable, detail });
}

/** Keeps the webhook's short answer (`invalid_payload`, `no_text`) but never the URL, should it echo it. */
function redact(answer: string, url: string): string {
  let path = '';
  try {
    path = new URL(url).pathname;
  } catch {
    // An unparsable URL is redacted whole below.
  }
  let text = answer.trim().slice(0, 200);
  for (const secret of [url, path]) {
    if (secret.length > 1) text = text.split(secret).join('[redacted]');
  }
  return text;
}

/** The `notify` target remediations and the notifier post through; the URL stays inside. */
export function notifyTarget(url: string): MessageTarget {
  return {
    post: (text, opts) => postNotification(url, text, opts),
    postMessage: (message, opts) => postNotification(url, message, opts),
  };
}
