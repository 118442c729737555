// @ts-check
/**
 * A demo ConduitLLM for the Compose stack: the Admin API the remediations call, the metrics the
 * shipped alert rules read (Conduit's own and those of postgres_exporter, cAdvisor, kube-state-metrics,
 * the kubelet and cert-manager), simulated traffic, and switches that make each alert's condition true.
 * It has no dependencies beyond Node.js, so it runs in the remediator's image:
 *
 *   node deploy/demo/conduit.mjs                  # PORT=8080, CONDUIT_ADMIN_KEY=demo-admin-key
 *
 *   GET    /api/...                               the Admin API (X-API-Key: CONDUIT_ADMIN_KEY)
 *   GET    /metrics                               Conduit's metrics (conduit_http_requests_total, conduit_model_requests_total)
 *   GET    /exporters/<name>/metrics              postgres, cadvisor, kube-state-metrics, kubelet, cert-manager
 *   POST   /_fail/<what>                          make it fail: a provider's name, or errors, database, memory, disk, certificate
 *   DELETE /_fail/<what>                          back to normal
 *   GET    /_fail                                 what fails now, and every name that can
 *   POST   /_notifications                        a webhook sink for notify.webhook (NOTIFY_WEBHOOK_URL); GET lists what it got
 *   GET    /health                                200
 *
 * Traffic: every tick (DEMO_TICK_MS, 1 s) Conduit serves DEMO_REQUESTS_PER_TICK (10) chat completions,
 * spread over the enabled providers. A failing provider answers every request it gets with an error; a
 * disabled one gets none (its share goes to the others), so disabling a failing provider brings the
 * error ratio down as it does in Conduit. `errors` makes a third of all requests fail (HighErrorRate
 * without a provider down). The other switches set the exporters' gauges past the rules' thresholds:
 * what the remediations do about them cannot change a simulated gauge, so they stay until DELETE.
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const NAMESPACE = 'conduit';
const POD = 'conduit-api-6c9f8d7b5d-x7k2p';
const REPLICA_SET = 'conduit-api-6c9f8d7b5d';
const CONTAINER = 'conduit-api';
const PVC = 'data-conduit-postgres-0';
const CERTIFICATE = 'conduit-tls';
const GIB = 1024 ** 3;
const DAY = 24 * 3600;

/** Failures that are not a provider's. */
export const SCENARIOS = /** @type {const} */ ({
  errors: 'a third of the requests answer 500 (HighErrorRate)',
  database: 'PostgreSQL connections at 95 of 97 slots (DatabaseConnectionPoolExhausted)',
  memory: "the API container's working set at 95% of its limit (ConduitHighMemoryUsage)",
  disk: "PostgreSQL's volume 85% full (ConduitDiskUsageHigh)",
  certificate: 'the TLS certificate expires in 10 days (CertificateExpiringSoon)',
});

/**
 * @typedef {{ id: number, providerType: number, providerName: string, baseUrl: string | null, isEnabled: boolean, createdAt: string, updatedAt: string }} Provider
 * @typedef {{ id: number, providerId: number, keyName: string, isPrimary: boolean, isEnabled: boolean, apiKey: string }} ProviderKey
 * @typedef {{ model: string, provider: string, status: string }} ModelSeries
 */

const CREATED = '2025-01-01T00:00:00Z';

/** The providers a fresh Conduit of the demo (and of the tests' stand-in) has. @returns {Provider[]} */
export function defaultProviders() {
  return [
    {
      id: 1,
      providerType: 1,
      providerName: 'openai',
      baseUrl: 'https://api.openai.com/v1',
      isEnabled: true,
      createdAt: CREATED,
      updatedAt: CREATED,
    },
    {
      id: 2,
      providerType: 2,
      providerName: 'anthropic',
      baseUrl: 'https://api.anthropic.com',
      isEnabled: true,
      createdAt: CREATED,
      updatedAt: CREATED,
    },
    {
      id: 3,
      providerType: 4,
      providerName: 'groq',
      baseUrl: 'https://api.groq.com/openai/v1',
      isEnabled: false,
      createdAt: CREATED,
      updatedAt: CREATED,
    },
  ];
}

/** @returns {ProviderKey[]} */
function defaultKeys() {
  return [
    { id: 11, providerId: 1, keyName: 'openai-primary', isPrimary: true, isEnabled: true, apiKey: 'sk-demo-openai-0001' },
    { id: 21, providerId: 2, keyName: 'anthropic-primary', isPrimary: true, isEnabled: true, apiKey: 'sk-demo-anthropic-0002' },
    { id: 31, providerId: 3, keyName: 'groq-primary', isPrimary: true, isEnabled: true, apiKey: 'sk-demo-groq-0003' },
  ];
}

/** @type {Record<string, string>} */
const MODELS = { openai: 'gpt-4o-mini', anthropic: 'claude-3-5-haiku', groq: 'llama-3.1-8b-instant' };

/** @param {string} value */
const escapeLabel = (value) => value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));

/** @param {Record<string, string>} labels */
function labelSet(labels) {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/**
 * One metric family in the text exposition format (version 0.0.4).
 * @param {string} name
 * @param {'counter' | 'gauge'} type
 * @param {string} help
 * @param {Array<[Record<string, string>, number]>} samples
 */
function family(name, type, help, samples) {
  let out = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  for (const [labels, value] of samples) out += `${name}${labelSet(labels)} ${value}\n`;
  return out;
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} [body]
 */
function send(res, status, body) {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  const type = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8';
  res.writeHead(status, { 'content-type': type }).end(text);
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {string} field
 * @param {string} message
 */
function validationProblem(res, field, message) {
  send(res, 400, {
    type: 'https://tools.ietf.org/html/rfc9110#section-15.5.1',
    title: 'One or more validation errors occurred.',
    status: 400,
    errors: { [field]: [message] },
  });
}

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {number} limit
 */
async function readBody(req, limit) {
  /** @type {Buffer[]} */
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * @param {{
 *   port?: number, host?: string, adminKey?: string, tickMs?: number, requestsPerTick?: number,
 *   log?: (line: string) => void, now?: () => number,
 * }} [opts]
 */
export async function startDemoConduit(opts = {}) {
  const adminKey = opts.adminKey ?? 'demo-admin-key';
  const tickMs = opts.tickMs ?? 1000;
  const requestsPerTick = opts.requestsPerTick ?? 10;
  const log = opts.log ?? (() => {});
  const now = opts.now ?? Date.now;
  const providers = defaultProviders();
  const keys = defaultKeys();
  /** @type {Set<string>} what fails now: provider names (lowercase) and SCENARIOS keys */
  const failing = new Set();
  /** @type {string[]} */
  const clearedCaches = [];
  /** @type {Array<{ receivedAt: string, body: unknown }>} */
  const notifications = [];
  /** @type {Map<string, number>} conduit_http_requests_total by status code */
  const httpRequests = new Map([['200', 0]]);
  /** @type {Map<string, { series: ModelSeries, value: number }>} conduit_model_requests_total */
  const modelRequests = new Map();
  let tick = 0;

  /** @param {ModelSeries} series */
  const countModelRequest = (series) => {
    const key = `${series.provider}\u0000${series.status}`;
    const entry = modelRequests.get(key) ?? { series, value: 0 };
    entry.value += 1;
    modelRequests.set(key, entry);
  };
  /** @param {string} status */
  const countHttp = (status) => httpRequests.set(status, (httpRequests.get(status) ?? 0) + 1);

  /** One tick of traffic: requests round-robin over the enabled providers. */
  function serveTraffic() {
    const enabled = providers.filter((p) => p.isEnabled);
    for (let i = 0; i < requestsPerTick; i += 1) {
      if (enabled.length === 0) {
        countHttp('503'); // no provider to route to
        continue;
      }
      const p = /** @type {Provider} */ (enabled[(tick * requestsPerTick + i) % enabled.length]);
      const name = p.providerName.toLowerCase();
      const model = MODELS[name] ?? 'default';
      const ok = !failing.has(name) && !(failing.has('errors') && i % 3 === 0);
      countModelRequest({ model, provider: p.providerName, status: ok ? 'success' : 'error' });
      countHttp(ok ? '200' : failing.has(name) ? '502' : '500');
    }
    tick += 1;
  }
  serveTraffic();
  const timer = setInterval(serveTraffic, tickMs);

  const conduitMetrics = () =>
    family(
      'conduit_http_requests_total',
      'counter',
      'Total number of HTTP requests',
      [...httpRequests].map(([status, value]) => [
        { method: 'POST', endpoint: '/v1/chat/completions', status_code: status, virtual_key_id: '1' },
        value,
      ]),
    ) +
    family(
      'conduit_model_requests_total',
      'counter',
      'Total requests per model',
      [...modelRequests.values()].map(({ series, value }) => [
        { model: series.model, provider: series.provider, status: series.status },
        value,
      ]),
    );

  /** @type {Record<string, () => string>} */
  const exporters = {
    postgres: () => {
      const idle = failing.has('database') ? 90 : 6;
      return (
        family('pg_stat_activity_count', 'gauge', 'number of connections in this state', [
          [{ datname: 'conduit', state: 'active' }, 4],
          [{ datname: 'conduit', state: 'idle' }, idle],
          [{ datname: 'postgres', state: 'idle' }, 1],
        ]) +
        family('pg_settings_max_connections', 'gauge', 'Sets the maximum number of concurrent connections.', [[{}, 100]]) +
        family('pg_settings_superuser_reserved_connections', 'gauge', 'Sets the number of connection slots reserved for superusers.', [
          [{}, 3],
        ])
      );
    },
    cadvisor: () =>
      family('container_memory_working_set_bytes', 'gauge', 'Current working set of the container in bytes', [
        [{ namespace: NAMESPACE, pod: POD, container: CONTAINER }, Math.round((failing.has('memory') ? 0.95 : 0.4) * GIB)],
      ]),
    'kube-state-metrics': () =>
      family('kube_pod_container_resource_limits', 'gauge', 'The number of requested limit resource by a container.', [
        [{ namespace: NAMESPACE, pod: POD, container: CONTAINER, node: 'demo-node', resource: 'memory', unit: 'byte' }, GIB],
      ]) +
      family('kube_pod_owner', 'gauge', "Information about the Pod's owner.", [
        [{ namespace: NAMESPACE, pod: POD, owner_kind: 'ReplicaSet', owner_name: REPLICA_SET, owner_is_controller: 'true' }, 1],
      ]),
    kubelet: () =>
      family('kubelet_volume_stats_capacity_bytes', 'gauge', 'Capacity in bytes of the volume', [
        [{ namespace: NAMESPACE, persistentvolumeclaim: PVC }, 20 * GIB],
      ]) +
      family('kubelet_volume_stats_used_bytes', 'gauge', 'Number of used bytes in the volume', [
        [{ namespace: NAMESPACE, persistentvolumeclaim: PVC }, Math.round((failing.has('disk') ? 0.85 : 0.5) * 20 * GIB)],
      ]),
    'cert-manager': () =>
      family('certmanager_certificate_expiration_timestamp_seconds', 'gauge', 'The date after which the certificate expires.', [
        [
          {
            name: CERTIFICATE,
            namespace: NAMESPACE,
            issuer_name: 'letsencrypt',
            issuer_kind: 'ClusterIssuer',
            issuer_group: 'cert-manager.io',
          },
          Math.floor(now() / 1000) + (failing.has('certificate') ? 10 : 60) * DAY,
        ],
      ]),
  };

  /** Every name POST /_fail/<what> accepts. */
  const failureNames = () => [...providers.map((p) => p.providerName.toLowerCase()), ...Object.keys(SCENARIOS)];
  const failureState = () => ({
    failing: [...failing].sort(),
    names: Object.fromEntries(
      failureNames().map((n) => [
        n,
        n in SCENARIOS ? SCENARIOS[/** @type {keyof typeof SCENARIOS} */ (n)] : `provider ${n} fails every request`,
      ]),
    ),
  });

  /** @param {string | undefined} id */
  const provider = (id) => providers.find((p) => String(p.id) === id);
  /** @param {Provider} p */
  const listed = (p) => ({ ...p, keyCount: keys.filter((k) => k.providerId === p.id).length });
  /** @param {ProviderKey} k */
  const maskedKey = (k) => ({ ...k, apiKey: `***${k.apiKey.slice(-4)}` });
  /** @param {import('node:http').IncomingMessage} req */
  const isJson = (req) => (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');

  /**
   * The Admin API: routes match case-insensitively, as ASP.NET's do.
   * @param {string} method
   * @param {string[]} segments
   * @param {unknown} body
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   */
  function admin(method, segments, body, req, res) {
    const [, b, c, d, e] = segments.map((s) => s.toLowerCase());
    const rawD = segments[3];
    const n = segments.length;
    if (b === 'providercredentials') {
      if (method === 'GET' && n === 2) return send(res, 200, providers.map(listed));
      if (method === 'GET' && n === 3) {
        const p = provider(c);
        return p ? send(res, 200, listed(p)) : send(res, 404, { error: 'Provider not found' });
      }
      if (method === 'PUT' && n === 3) return update(segments[2], body, req, res);
      if (method === 'POST' && n === 4 && c === 'test') {
        const p = provider(d);
        if (!p) return send(res, 404, { error: 'Provider not found' });
        // As in Conduit, a failed connection test is a 200 whose body says so.
        const fails = failing.has(p.providerName.toLowerCase());
        return send(res, 200, {
          success: !fails,
          providerId: p.id,
          providerType: String(p.providerType),
          providerName: p.providerName,
          modelCount: fails ? 0 : 3,
          responseTime: new Date(now()).toISOString(),
          message: fails
            ? `Failed to list models: simulated failure (DELETE /_fail/${p.providerName.toLowerCase()} ends it)`
            : 'Connection successful',
        });
      }
      if (method === 'GET' && n === 5 && d === 'keys') {
        const key = keys.find((k) => String(k.id) === e && String(k.providerId) === c);
        return key ? send(res, 200, maskedKey(key)) : send(res, 404, { error: 'Key credential not found' });
      }
    }
    // Conduit binds `[FromBody] string reason`: the body is a JSON string.
    if (b === 'provider-errors' && c === 'keys' && e === 'disable' && method === 'POST' && n === 5) {
      if (!isJson(req)) return send(res, 415);
      if (typeof body !== 'string' || body.trim() === '') return send(res, 400, { error: 'Reason is required for disabling a key' });
      const key = keys.find((k) => String(k.id) === d);
      if (!key) return send(res, 404, { error: `Key ${d ?? ''} not found` });
      key.isEnabled = false;
      log(`key ${key.keyName} disabled: ${body}`);
      return send(res, 200, { message: 'Key disabled successfully', keyId: key.id });
    }
    if (b === 'config' && c === 'caching' && e === 'clear' && method === 'POST' && n === 5 && rawD !== undefined) {
      clearedCaches.push(rawD);
      log(`cache ${rawD} cleared`);
      return send(res, 200, { message: `Cache '${rawD}' cleared successfully` });
    }
    return send(res, 404);
  }

  /**
   * PUT /api/ProviderCredentials/{id} as Conduit's controller does it: `baseUrl` is taken from the
   * body (absent means null) and a missing `isEnabled` means true.
   * @param {string | undefined} id
   * @param {unknown} body
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   */
  function update(id, body, req, res) {
    if (!isJson(req)) return send(res, 415);
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return validationProblem(res, 'request', 'The request field is required.');
    const fields = /** @type {Record<string, unknown>} */ (body);
    if (typeof fields['providerName'] !== 'string' || fields['providerName'] === '')
      return validationProblem(res, 'ProviderName', 'The ProviderName field is required.');
    if (fields['baseUrl'] !== undefined && fields['baseUrl'] !== null && typeof fields['baseUrl'] !== 'string')
      return validationProblem(res, '$.baseUrl', 'The JSON value could not be converted to System.String.');
    if (fields['isEnabled'] !== undefined && typeof fields['isEnabled'] !== 'boolean')
      return validationProblem(res, '$.isEnabled', 'The JSON value could not be converted to System.Boolean.');
    const p = provider(id);
    if (!p) return send(res, 404, { error: 'Provider not found' });
    const wasEnabled = p.isEnabled;
    p.providerName = fields['providerName'];
    p.baseUrl = typeof fields['baseUrl'] === 'string' ? fields['baseUrl'] : null;
    p.isEnabled = /** @type {boolean | undefined} */ (fields['isEnabled']) ?? true;
    p.updatedAt = new Date(now()).toISOString();
    if (wasEnabled !== p.isEnabled) log(`provider ${p.providerName} ${p.isEnabled ? 'enabled' : 'disabled'}`);
    return send(res, 204);
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   */
  async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://demo');
    const method = req.method ?? 'GET';
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const [first, second, third] = segments;

    if (first === 'health' && segments.length === 1) return send(res, 200, 'ok');
    if (method === 'GET' && url.pathname === '/metrics') {
      return res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(conduitMetrics());
    }
    if (method === 'GET' && first === 'exporters' && third === 'metrics' && segments.length === 3) {
      const render = second === undefined ? undefined : exporters[second];
      if (!render) return send(res, 404, { error: `no exporter "${second}"; there are: ${Object.keys(exporters).join(', ')}` });
      return res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(render());
    }
    if (first === '_fail') {
      if (segments.length === 1 && method === 'GET') return send(res, 200, failureState());
      const what = second?.toLowerCase();
      if (segments.length !== 2 || what === undefined) return send(res, 404, { error: 'use /_fail/<what>', ...failureState() });
      if (!failureNames().includes(what)) return send(res, 404, { error: `nothing named "${second}" can fail`, ...failureState() });
      if (method === 'POST') failing.add(what);
      else if (method === 'DELETE') failing.delete(what);
      else return send(res, 405, { error: 'POST /_fail/<what> starts a failure, DELETE ends it' });
      log(`${what} ${method === 'POST' ? 'fails' : 'is back to normal'}`);
      return send(res, 200, failureState());
    }
    if (first === '_notifications' && segments.length === 1) {
      if (method === 'GET') return send(res, 200, notifications);
      if (method === 'POST') {
        const body = await readBody(req, 256 * 1024);
        notifications.push({ receivedAt: new Date(now()).toISOString(), body });
        if (notifications.length > 200) notifications.shift();
        const text = body !== null && typeof body === 'object' && 'text' in body ? String(body.text) : JSON.stringify(body);
        log(`notification: ${text}`);
        return send(res, 200, { ok: true });
      }
      return send(res, 405);
    }
    if (first?.toLowerCase() === 'api') {
      const body = await readBody(req, 1024 * 1024);
      if (req.headers['x-api-key'] !== adminKey) return send(res, 401);
      return admin(method, segments, body, req, res);
    }
    return send(res, 404);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, /** @type {{ status?: number }} */ (err).status ?? 500, { error: String(err.message ?? err) });
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve(undefined));
  });
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());

  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    port: address.port,
    adminKey,
    providers,
    keys,
    failing,
    clearedCaches,
    notifications,
    close: () =>
      new Promise((resolve) => {
        clearInterval(timer);
        server.closeAllConnections();
        server.close(() => resolve(undefined));
      }),
  };
}

/**
 * Reads a positive integer from the environment.
 * @param {string} name
 * @param {number} fallback
 */
function positive(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const adminKey = process.env['CONDUIT_ADMIN_KEY'] || 'demo-admin-key';
  const demo = await startDemoConduit({
    port: positive('PORT', 8080),
    host: process.env['HOST'] || '0.0.0.0',
    adminKey,
    tickMs: positive('DEMO_TICK_MS', 1000),
    requestsPerTick: positive('DEMO_REQUESTS_PER_TICK', 10),
    log: (line) => console.log(`${new Date().toISOString()} ${line}`),
  });
  console.log(`demo Conduit on ${demo.url}: POST /_fail/<what> to make it fail (GET /_fail lists the names)`);
  const stop = () => void demo.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
