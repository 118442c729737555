import { request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { HttpLibrary, RequestContext, ResponseContext } from '@kubernetes/client-node';

type ClientNode = typeof import('@kubernetes/client-node');

/** The API server answered a redirect. Never followed: the next hop would get the bearer token or client certificate. */
export class KubeRedirectError extends Error {
  override readonly name = 'KubeRedirectError';

  constructor(
    readonly status: number,
    /** Origin and path of the Location header (its query may carry a token), or why there is none. */
    readonly location: string,
  ) {
    super(`the Kubernetes API answered HTTP ${status} redirecting to ${location}; redirects are not followed`);
  }
}

/** No answer: refused, reset, DNS, TLS. Retryable, as node-fetch's FetchError was. */
export class KubeNetworkError extends Error {
  override readonly name = 'KubeNetworkError';
  readonly code: string | undefined;

  constructor(cause: Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    super(code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message, { cause });
    this.code = code;
  }
}

function locationOf(headers: IncomingHttpHeaders, base: string): string {
  const location = headers.location;
  if (!location) return '(no Location header)';
  try {
    const url = new URL(location, base);
    return `${url.origin}${url.pathname}`;
  } catch {
    return '(an invalid Location header)';
  }
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

/**
 * client-node 1.x sends every call through node-fetch with its default `redirect: 'follow'`, and no
 * option reaches that: a 307 from a proxy or a rogue endpoint would carry the Authorization header
 * (or the client certificate, held by the agent) to the host it names. This library replaces it. It
 * sends the request as client-node built it (URL, method, headers, body, signal, the agent that holds
 * TLS settings, client certificates and any proxy) over node:http(s), and answers a 3xx with
 * `KubeRedirectError` without a second request. Responses are read whole; no compression is asked for.
 */
export function noRedirectHttpLibrary(k8s: ClientNode): HttpLibrary {
  return k8s.wrapHttpLibrary({ send: (request) => send(k8s, request) });
}

function send(k8s: ClientNode, request: RequestContext): Promise<ResponseContext> {
  const url = new URL(request.getUrl());
  const body = request.getBody();
  if (body !== undefined && typeof body !== 'string' && !(body instanceof URLSearchParams)) {
    return Promise.reject(new Error('a multipart request body is not supported'));
  }
  const payload = body === undefined ? undefined : Buffer.from(String(body), 'utf8');
  const headers: Record<string, string> = { ...request.getHeaders() };
  if (payload !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
    headers['Content-Length'] = String(payload.length);
  }
  const signal = request.getSignal();
  const options: RequestOptions = {
    method: request.getHttpMethod().toString(),
    headers,
    agent: request.getAgent() as RequestOptions['agent'],
    ...(signal ? { signal: signal as AbortSignal } : {}),
  };
  const call = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<ResponseContext>((resolve, reject) => {
    const req = call(url, options, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.resume();
        reject(new KubeRedirectError(status, locationOf(res.headers, url.toString())));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => reject(new KubeNetworkError(err)));
      res.on('end', () => {
        const data = Buffer.concat(chunks);
        resolve(
          new k8s.ResponseContext(status, flatHeaders(res.headers), {
            text: () => Promise.resolve(data.toString('utf8')),
            binary: () => Promise.resolve(data),
          }),
        );
      });
    });
    req.on('error', (err) => reject(err.name === 'AbortError' ? err : new KubeNetworkError(err)));
    req.end(payload);
  });
}
