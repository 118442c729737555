/**
 * The service's HTTP API as the operator commands call it: `REMEDIATOR_URL` (or `--url`) and the
 * bearer token `REMEDIATOR_TOKEN` (or `--token`). Every failure is a `ClientError` whose message is
 * what the operator reads: the API's own `message` for an error answer, the URL for a service that
 * cannot be reached. The token is sent, never printed.
 */
import { networkError, parseBaseUrl } from '../kernel/http.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface ConnectionOptions {
  url?: string;
  token?: string;
}

export interface Endpoint {
  url: string;
  token: string | undefined;
  timeoutMs: number;
}

export class ClientError extends Error {
  override readonly name = 'ClientError';

  constructor(
    message: string,
    /** The HTTP status of an error answer; undefined when there was no answer. */
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Where to send requests: flags first, then the environment, then the service's default listener. */
export function endpoint(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): Endpoint {
  const raw = opts.url ?? env['REMEDIATOR_URL'] ?? DEFAULT_URL;
  let url: string;
  try {
    url = parseBaseUrl(raw, opts.url !== undefined ? '--url' : 'REMEDIATOR_URL');
  } catch (err) {
    throw new ClientError((err as Error).message);
  }
  const token = opts.token ?? env['REMEDIATOR_TOKEN'];
  return { url, token: token === '' ? undefined : token, timeoutMs: DEFAULT_TIMEOUT_MS };
}

function isApiError(body: unknown): body is { statusCode: number; code: string; message: string } {
  return typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string';
}

/** One request; resolves with the JSON answer of a 2xx, throws `ClientError` otherwise. */
export async function request<T>(ep: Endpoint, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (ep.token !== undefined) headers['authorization'] = `Bearer ${ep.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${ep.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      redirect: 'error',
      signal: AbortSignal.timeout(ep.timeoutMs),
    });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') {
      throw new ClientError(`no answer from the remediator at ${ep.url} within ${ep.timeoutMs / 1000}s`);
    }
    const why = networkError(err);
    if (why === 'unexpected redirect') {
      throw new ClientError(
        `${ep.url}${path} answered with a redirect, which is not followed: point REMEDIATOR_URL or --url at the service itself`,
      );
    }
    throw new ClientError(`cannot reach the remediator at ${ep.url}: ${why} (set REMEDIATOR_URL or --url)`);
  }
  const text = await res.text().catch(() => '');
  let answer: unknown;
  try {
    answer = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new ClientError(`${ep.url}${path} answered HTTP ${res.status} with a body that is not JSON: is it the remediator?`, res.status);
  }
  if (res.ok) return answer as T;
  if (isApiError(answer)) {
    const hint = res.status === 401 && ep.token === undefined ? ' (no token: set REMEDIATOR_TOKEN or --token)' : '';
    throw new ClientError(`${answer.message}${hint} (HTTP ${res.status} ${answer.code ?? ''})`.replace(' )', ')'), res.status, answer.code);
  }
  throw new ClientError(`${ep.url}${path} answered HTTP ${res.status}`, res.status);
}
