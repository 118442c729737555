import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultProviders, type DemoProvider as Provider, type DemoProviderKey as ProviderKey } from '../../deploy/demo/conduit.mjs';
import { faultInjection } from './faults.js';

/** A provider as Conduit's Admin API lists it (camelCase JSON), and a key credential: `apiKey` is the real secret, answered masked as Conduit does. */
export type { DemoProvider as Provider, DemoProviderKey as ProviderKey } from '../../deploy/demo/conduit.mjs';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON when the body was JSON, the raw text otherwise, `undefined` when empty. */
  body: unknown;
}

export interface ConduitAdmin {
  url: string;
  apiKey: string;
  /** Live state: mutate it to set up a test, inspect it to assert on what a remediation did. */
  providers: Provider[];
  keys: ProviderKey[];
  /**
   * Providers whose connection test fails, by id, with the message Conduit answers: the test endpoint
   * then answers 200 `success: false`, as Conduit does when listing the provider's models throws.
   * Empty at start: every test succeeds.
   */
  failingTests: Map<number, string>;
  clearedCaches: string[];
  requests: RecordedRequest[];
  /** The next `count` requests answer `status` (before authentication, as a failing proxy would). */
  failNext(count: number, status?: number): void;
  /** The next request waits `ms` before it is handled. */
  delayNext(ms: number): void;
  /** The next request is answered `status` (307 by default) with `Location: <base><its path and query>`, as a moved proxy would. */
  redirectNext(base: string, status?: number): void;
  close(): Promise<void>;
}

const CREATED = '2025-01-01T00:00:00Z';

function defaultKeys(): ProviderKey[] {
  return [
    { id: 11, providerId: 1, keyName: 'openai-primary', isPrimary: true, isEnabled: true, apiKey: 'sk-openai-primary-0001' },
    { id: 12, providerId: 1, keyName: 'openai-backup', isPrimary: false, isEnabled: true, apiKey: 'sk-openai-backup-0002' },
    { id: 21, providerId: 2, keyName: 'anthropic-primary', isPrimary: true, isEnabled: true, apiKey: 'sk-ant-primary-0003' },
  ];
}

function toProvider(p: Partial<Provider>, index: number): Provider {
  return {
    id: p.id ?? index + 1,
    providerType: p.providerType ?? 1,
    providerName: p.providerName ?? `provider-${index + 1}`,
    baseUrl: p.baseUrl === undefined ? null : p.baseUrl,
    isEnabled: p.isEnabled ?? true,
    createdAt: p.createdAt ?? CREATED,
    updatedAt: p.updatedAt ?? CREATED,
  };
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res
    .writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8' })
    .end(text);
}

function validationProblem(res: ServerResponse, field: string, message: string): void {
  send(res, 400, {
    type: 'https://tools.ietf.org/html/rfc9110#section-15.5.1',
    title: 'One or more validation errors occurred.',
    status: 400,
    errors: { [field]: [message] },
  });
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function isJson(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
}

/**
 * A stand-in of Conduit's Admin API with the behaviour the remediations depend on, including the
 * dangerous one: PUT /api/ProviderCredentials/{id} overwrites `baseUrl` from the body (a body
 * without it nulls it) and defaults a missing `isEnabled` to true, as the real controller does.
 * Routes match case-insensitively, as ASP.NET's do.
 */
export async function startConduitAdmin(
  opts: {
    apiKey?: string;
    providers?: Array<Partial<Provider>>;
    keys?: ProviderKey[];
    /** Name the connection test's outcome `isSuccessful`, as older Conduit versions do, instead of `success`. */
    legacyTestAnswers?: boolean;
  } = {},
): Promise<ConduitAdmin> {
  const apiKey = opts.apiKey ?? 'conduit-master-key-for-tests';
  const providers = opts.providers ? opts.providers.map(toProvider) : defaultProviders();
  const keys = opts.keys ?? defaultKeys();
  const failingTests = new Map<number, string>();
  const clearedCaches: string[] = [];
  const requests: RecordedRequest[] = [];
  const redirects: Array<{ base: string; status: number }> = [];

  const provider = (id: string | undefined) => providers.find((p) => String(p.id) === id);
  const listed = (p: Provider) => ({ ...p, keyCount: keys.filter((k) => k.providerId === p.id).length });
  const maskedKey = (k: ProviderKey) => ({ ...k, apiKey: `***${k.apiKey.slice(-4)}` });

  async function route(method: string, segments: string[], body: unknown, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Literal segments compare lowercased; ids and cache names keep their spelling.
    const [a, b, c, d, e] = segments.map((s) => s.toLowerCase());
    const [, , rawC, rawD] = segments;
    const n = segments.length;
    if (a !== 'api') return send(res, 404);

    if (b === 'providercredentials') {
      if (method === 'GET' && n === 2) return send(res, 200, providers.map(listed));
      if (method === 'GET' && n === 3) {
        const p = provider(c);
        return p ? send(res, 200, listed(p)) : send(res, 404, { error: 'Provider not found' });
      }
      if (method === 'PUT' && n === 3) return update(rawC, body, req, res);
      if (method === 'POST' && n === 4 && c === 'test') {
        const p = provider(d);
        if (!p) return send(res, 404, { error: 'Provider not found' });
        // A failed test is still a 200: Conduit catches the provider's error and reports it in the body.
        const failure = failingTests.get(p.id);
        return send(res, 200, {
          [opts.legacyTestAnswers ? 'isSuccessful' : 'success']: failure === undefined,
          providerId: p.id,
          providerType: String(p.providerType),
          providerName: p.providerName,
          modelCount: failure === undefined ? 3 : 0,
          responseTime: new Date().toISOString(),
          message: failure ?? 'Connection successful',
        });
      }
      if (method === 'GET' && n === 5 && d === 'keys') {
        const key = keys.find((k) => String(k.id) === e && String(k.providerId) === c);
        return key ? send(res, 200, maskedKey(key)) : send(res, 404, { error: 'Key credential not found' });
      }
    }

    // The real action binds `[FromBody] string reason`: the body is a JSON string, not an object.
    if (b === 'provider-errors' && c === 'keys' && e === 'disable' && method === 'POST' && n === 5) {
      if (!isJson(req)) return send(res, 415);
      if (typeof body !== 'string' || body.trim() === '') {
        return typeof body === 'string' || body === undefined
          ? send(res, 400, { error: 'Reason is required for disabling a key' })
          : validationProblem(res, '$', 'The JSON value could not be converted to System.String.');
      }
      const key = keys.find((k) => String(k.id) === d);
      if (!key) return send(res, 404, { error: `Key ${d ?? ''} not found` });
      key.isEnabled = false;
      return send(res, 200, { message: 'Key disabled successfully', keyId: key.id });
    }

    if (b === 'config' && c === 'caching' && e === 'clear' && method === 'POST' && n === 5 && rawD !== undefined) {
      clearedCaches.push(rawD);
      return send(res, 200, { message: `Cache '${rawD}' cleared successfully` });
    }

    return send(res, 404);
  }

  function update(id: string | undefined, body: unknown, req: IncomingMessage, res: ServerResponse): void {
    if (!isJson(req)) return send(res, 415);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return validationProblem(res, 'request', 'The request field is required.');
    }
    const b = body as Record<string, unknown>;
    if (typeof b.providerName !== 'string' || b.providerName === '') {
      return validationProblem(res, 'ProviderName', 'The ProviderName field is required.');
    }
    if (b.providerName.length > 100)
      return validationProblem(res, 'ProviderName', 'The field ProviderName must be a string with a maximum length of 100.');
    if (b.baseUrl !== undefined && b.baseUrl !== null && typeof b.baseUrl !== 'string') {
      return validationProblem(res, '$.baseUrl', 'The JSON value could not be converted to System.String.');
    }
    if (b.isEnabled !== undefined && typeof b.isEnabled !== 'boolean') {
      return validationProblem(res, '$.isEnabled', 'The JSON value could not be converted to System.Boolean.');
    }
    const p = provider(id);
    if (!p) return send(res, 404, { error: 'Provider not found' });
    p.providerName = b.providerName;
    p.baseUrl = typeof b.baseUrl === 'string' ? b.baseUrl : null;
    p.isEnabled = b.isEnabled ?? true;
    p.updatedAt = new Date().toISOString();
    send(res, 204);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const body = await readBody(req);
    requests.push({ method, path: url.pathname, headers: req.headers, body });

    if (!(await faults.delay(res))) return;

    const redirect = redirects.shift();
    if (redirect !== undefined) {
      res.writeHead(redirect.status, { location: `${redirect.base}${req.url ?? '/'}` }).end();
      return;
    }

    const failure = faults.nextFailure();
    if (failure !== undefined) return send(res, failure, 'Service Unavailable');
    if (req.headers['x-api-key'] !== apiKey) return send(res, 401);

    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    await route(method, segments, body, req, res);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'An unexpected error occurred.');
    });
  });
  const faults = faultInjection(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    providers,
    keys,
    failingTests,
    clearedCaches,
    requests,
    failNext: (count, status = 503) => faults.failNext(count, status),
    delayNext: (ms) => faults.delayNext(ms),
    redirectNext: (base, status = 307) => void redirects.push({ base, status }),
    close: () => faults.close(),
  };
}
