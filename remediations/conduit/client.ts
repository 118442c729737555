import { Type } from '@sinclair/typebox';
import { RemediationError, throwIfAborted, type ExecutionContext } from '../types.js';
import { redirectTarget } from '../../src/kernel/http.js';

/** A provider as `GET /api/ProviderCredentials` lists it. */
export interface ConduitProvider {
  id: number;
  providerType: number | string;
  providerName: string;
  baseUrl: string | null;
  isEnabled: boolean;
  createdAt: string;
  updatedAt: string;
  keyCount: number;
}

/** A provider name or numeric id. The pattern keeps anything else out of URLs and log lines. */
export const ProviderRef = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: '^[A-Za-z0-9._-][A-Za-z0-9 ._-]*$',
  description: 'Provider name (case-insensitive) or numeric id, as Conduit lists it',
});

export interface ConduitResponse {
  status: number;
  body: unknown;
}

export interface ConduitClient {
  /** One Admin API call; non-2xx answers are thrown as `RemediationError`. */
  request(method: string, path: string, body?: unknown): Promise<ConduitResponse>;
  listProviders(): Promise<ConduitProvider[]>;
  /** By numeric id, else by name (case-insensitive); `not_found` lists the names Conduit knows. */
  resolveProvider(nameOrId: string): Promise<ConduitProvider>;
}

/** Encodes one path segment, so an id can never add a segment or a query. */
export function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

function statusError(status: number, method: string, path: string, body: unknown): RemediationError {
  const where = `${method} ${path}`;
  const detail: Record<string, unknown> = { status, method, path };
  const said = conduitMessage(body);
  if (said !== undefined) detail.response = said;
  if (status === 401 || status === 403) {
    return new RemediationError('unauthorized', `Conduit Admin API refused the API key (${status} on ${where}); check CONDUIT_ADMIN_KEY`, {
      detail,
    });
  }
  if (status === 404) return new RemediationError('not_found', `Conduit Admin API: not found (${where})`, { detail });
  if (status === 409) return new RemediationError('conflict', `Conduit Admin API: conflict on ${where}`, { retryable: true, detail });
  const retryable = status >= 500 || status === 408 || status === 429;
  return new RemediationError('target_error', `Conduit Admin API answered ${status} on ${where}${said ? `: ${said}` : ''}`, {
    retryable,
    detail,
  });
}

/** The short reason Conduit gives in an error body, bounded so a huge page cannot flood a run record. */
function conduitMessage(body: unknown): string | undefined {
  if (typeof body === 'string') return body.trim().slice(0, 200) || undefined;
  if (typeof body === 'object' && body !== null) {
    const b = body as Record<string, unknown>;
    const text = [b.error, b.title, b.message].find((v) => typeof v === 'string');
    return typeof text === 'string' ? text.slice(0, 200) : undefined;
  }
  return undefined;
}

async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text === '') return undefined;
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

export function conduitClient(ctx: ExecutionContext): ConduitClient {
  const target = ctx.targets.conduit;
  if (!target) {
    throw new RemediationError('target_not_configured', 'Conduit Admin API is not configured (CONDUIT_ADMIN_URL / CONDUIT_ADMIN_KEY)');
  }
  const baseUrl = target.baseUrl.replace(/\/+$/, '');
  const { apiKey } = target;

  async function request(method: string, path: string, body?: unknown): Promise<ConduitResponse> {
    throwIfAborted(ctx.signal);
    const deadline = AbortSignal.timeout(ctx.timeoutMs);
    const signal = AbortSignal.any([ctx.signal, deadline]);
    const headers: Record<string, string> = { 'X-API-Key': apiKey, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      const url = `${baseUrl}${path}`;
      const res = await fetch(url, {
        method,
        headers,
        signal,
        redirect: 'manual',
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (res.status >= 300 && res.status < 400) {
        // Never asked: following would send X-API-Key to whatever host the answer names.
        const location = redirectTarget(res.headers.get('location'), url);
        await res.body?.cancel().catch(() => undefined);
        throw new RemediationError(
          'target_error',
          `Conduit Admin API answered ${res.status} redirecting ${method} ${path} to ${location}; redirects are not followed ` +
            '(they would carry X-API-Key to another host): set CONDUIT_ADMIN_URL to the address that answers',
          { detail: { status: res.status, method, path, location } },
        );
      }
      const parsed = await readBody(res);
      if (!res.ok) throw statusError(res.status, method, path, parsed);
      return { status: res.status, body: parsed };
    } catch (err) {
      if (err instanceof RemediationError) throw err;
      const detail = { method, path };
      if (ctx.signal.aborted) {
        throw new RemediationError('aborted', `aborted during ${method} ${path}`, { retryable: true, detail, cause: err });
      }
      if (deadline.aborted) {
        throw new RemediationError('timeout', `Conduit Admin API did not answer ${method} ${path} within ${ctx.timeoutMs} ms`, {
          retryable: true,
          detail,
          cause: err,
        });
      }
      const cause = (err as { cause?: { code?: unknown } }).cause;
      const code = typeof cause?.code === 'string' ? cause.code : undefined;
      throw new RemediationError('target_error', `Conduit Admin API unreachable on ${method} ${path}${code ? ` (${code})` : ''}`, {
        retryable: true,
        detail: { ...detail, ...(code ? { errorCode: code } : {}) },
        cause: err,
      });
    }
  }

  async function listProviders(): Promise<ConduitProvider[]> {
    const { body } = await request('GET', '/api/ProviderCredentials');
    if (!Array.isArray(body)) {
      throw new RemediationError('target_error', 'Conduit Admin API: GET /api/ProviderCredentials did not answer a JSON array', {
        detail: { method: 'GET', path: '/api/ProviderCredentials' },
      });
    }
    return body as ConduitProvider[];
  }

  async function resolveProvider(nameOrId: string): Promise<ConduitProvider> {
    const providers = await listProviders();
    const byId = /^\d+$/.test(nameOrId) ? providers.find((p) => String(p.id) === nameOrId) : undefined;
    if (byId) return byId;
    const wanted = nameOrId.toLowerCase();
    const named = providers.filter((p) => typeof p.providerName === 'string' && p.providerName.toLowerCase() === wanted);
    if (named.length > 1) {
      // Two instances of one name: acting on either could disable the healthy one.
      throw new RemediationError(
        'refused',
        `provider name "${nameOrId}" is ambiguous (ids ${named.map((p) => p.id).join(', ')}); use the numeric id`,
        {
          detail: { provider: nameOrId, ids: named.map((p) => p.id) },
        },
      );
    }
    const [match] = named;
    if (match) return match;
    const known = providers.map((p) => p.providerName);
    throw new RemediationError('not_found', `Conduit has no provider "${nameOrId}"; known: ${known.join(', ') || 'none'}`, {
      detail: { provider: nameOrId, known },
    });
  }

  return { request, listProviders, resolveProvider };
}
