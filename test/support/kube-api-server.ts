import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { isObject, jsonPatch, mergePatch, PatchError, strategicMergePatch, type Json, type JsonObject } from './kube-patch.js';

/**
 * An in-memory stand-in of the Kubernetes API server on 127.0.0.1. It is strict where clients go
 * wrong (verbs, patch content types, subresources, resourceVersion preconditions) and serves enough
 * discovery for `kubectl` itself to run against it.
 *
 * With `KUBE_STANDIN_RECORD=<file>` in the environment, every request it answers for a resource is
 * appended to that file as one JSON line (`RecordedAccess`): the API group, resource (a subresource as
 * `resource/subresource`) and verb as the API server's authorizer sees them, with the status it
 * answered. The deployment test compares that set with the RBAC Role it ships.
 */

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  shortNames: string[];
  subresources: Array<'status' | 'scale'>;
  /** Custom resources do not take strategic merge patches (415), built-in types do. */
  builtin: boolean;
}

const RESOURCES: ResourceType[] = [
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', shortNames: ['po'], subresources: ['status'], builtin: true },
  {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    shortNames: ['deploy'],
    subresources: ['status', 'scale'],
    builtin: true,
  },
  {
    group: 'autoscaling',
    version: 'v2',
    plural: 'horizontalpodautoscalers',
    singular: 'horizontalpodautoscaler',
    kind: 'HorizontalPodAutoscaler',
    shortNames: ['hpa'],
    subresources: ['status'],
    builtin: true,
  },
  {
    group: 'cert-manager.io',
    version: 'v1',
    plural: 'certificates',
    singular: 'certificate',
    kind: 'Certificate',
    shortNames: ['cert', 'certs'],
    subresources: ['status'],
    builtin: false,
  },
];

const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  /** Parsed JSON body, the raw text when it is not JSON, `undefined` when empty. */
  body: unknown;
}

/** One answered request, in the terms of an RBAC rule (`KUBE_STANDIN_RECORD`). */
export interface RecordedAccess {
  apiGroup: string;
  /** The plural, or `plural/subresource`. */
  resource: string;
  /** get, list, watch, create, update, patch, delete, deletecollection. */
  verb: string;
  namespace: string;
  name?: string;
  /** The status code the stand-in answered with. */
  status: number;
  userAgent?: string;
}

/**
 * The RBAC attributes of a request, mapped from its method as the API server's request-info resolver
 * does; `undefined` for paths that name no resource the stand-in serves (discovery, unknown types).
 */
export function accessOf(
  method: string,
  path: string,
  query: URLSearchParams,
): Pick<RecordedAccess, 'apiGroup' | 'resource' | 'verb' | 'namespace' | 'name'> | undefined {
  const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  const t = m && RESOURCES.find((r) => r.group === (m[2] ?? '') && r.version === (m[1] ?? m[3]) && r.plural === m[5]);
  if (!m || !t) return undefined;
  const [name, sub] = [m[6] && decodeURIComponent(m[6]), m[7]];
  const watch = ['true', '1'].includes(query.get('watch') ?? '');
  const verbs: Record<string, string | undefined> = {
    GET: watch ? 'watch' : name ? 'get' : 'list',
    HEAD: name ? 'get' : 'list',
    POST: 'create',
    PUT: 'update',
    PATCH: 'patch',
    DELETE: name ? 'delete' : 'deletecollection',
  };
  const verb = verbs[method];
  if (verb === undefined) return undefined;
  return {
    apiGroup: t.group,
    resource: sub ? `${t.plural}/${sub}` : t.plural,
    verb,
    namespace: decodeURIComponent(m[4] ?? ''),
    ...(name ? { name } : {}),
  };
}

export interface Fault {
  method?: string;
  /** Matched against the end of the request path. */
  pathEndsWith?: string;
  /** Status code to answer with (a Status object); omit with `hangMs` to only delay. */
  status?: number;
  /** Hold the response this long before answering (for timeout tests). */
  hangMs?: number;
  /** Answer a redirect (`status`, 307 by default) to this base URL followed by the request's path and query. */
  redirectTo?: string;
  times?: number;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
  ) {
    super(message);
  }
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

const groupVersion = (t: ResourceType) => (t.group ? `${t.group}/${t.version}` : t.version);
const qualified = (t: ResourceType) => (t.group ? `${t.plural}.${t.group}` : t.plural);
const mime = (req: IncomingMessage) => req.headers['content-type']?.split(';')[0]?.trim();

export interface KubeApiServer {
  url: string;
  requests: RecordedRequest[];
  /** Stores an object as given (apiVersion, kind, metadata.namespace and name required), filling server-set metadata. */
  put(obj: JsonObject): JsonObject;
  get(plural: string, namespace: string, name: string): JsonObject | undefined;
  inject(fault: Fault): void;
  kubeConfig(): KubeConfig;
  /** Writes a kubeconfig file pointing at the stand-in and returns its path; removed on close. */
  writeKubeconfig(): Promise<string>;
  close(): Promise<void>;
}

export async function startKubeApiServer(opts: { token?: string } = {}): Promise<KubeApiServer> {
  const objects = new Map<string, JsonObject>();
  const requests: RecordedRequest[] = [];
  const faults: Fault[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const tempDirs: string[] = [];
  let revision = 1000;
  const recordFile = process.env['KUBE_STANDIN_RECORD'] || undefined;
  const key = (t: ResourceType, ns: string, name: string) => `${t.plural}/${ns}/${name}`;
  const typeOf = (obj: JsonObject) => RESOURCES.find((t) => groupVersion(t) === obj['apiVersion'] && t.kind === obj['kind']);

  function store(t: ResourceType, obj: JsonObject, previous?: JsonObject): JsonObject {
    const meta = obj['metadata'] as JsonObject;
    const prevMeta = (previous?.['metadata'] ?? {}) as JsonObject;
    const specChanged = JSON.stringify(previous?.['spec']) !== JSON.stringify(obj['spec']);
    const prevGeneration = typeof prevMeta['generation'] === 'number' ? prevMeta['generation'] : 0;
    obj['metadata'] = {
      ...meta,
      uid: prevMeta['uid'] ?? meta['uid'] ?? randomUUID(),
      creationTimestamp: prevMeta['creationTimestamp'] ?? meta['creationTimestamp'] ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      resourceVersion: String(++revision),
      generation: specChanged || !previous ? prevGeneration + 1 : prevGeneration,
    };
    objects.set(key(t, String(meta['namespace']), String(meta['name'])), obj);
    return obj;
  }

  function put(obj: JsonObject): JsonObject {
    const t = typeOf(obj);
    if (!t) throw new Error(`stand-in does not serve ${String(obj['apiVersion'])} ${String(obj['kind'])}`);
    const meta = obj['metadata'] as JsonObject;
    return store(t, structuredClone(obj), objects.get(key(t, String(meta['namespace']), String(meta['name']))));
  }

  function scaleOf(deployment: JsonObject): JsonObject {
    const meta = deployment['metadata'] as JsonObject;
    const spec = deployment['spec'] as JsonObject;
    const labels = ((spec['selector'] as JsonObject | undefined)?.['matchLabels'] ?? {}) as JsonObject;
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: {
        name: meta['name'] ?? null,
        namespace: meta['namespace'] ?? null,
        uid: meta['uid'] ?? null,
        resourceVersion: meta['resourceVersion'] ?? null,
        creationTimestamp: meta['creationTimestamp'] ?? null,
      },
      spec: { replicas: spec['replicas'] ?? 1 },
      status: {
        replicas: ((deployment['status'] ?? {}) as JsonObject)['replicas'] ?? 0,
        selector: Object.entries(labels)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(','),
      },
    };
  }

  function applyPatch(contentType: string | undefined, t: ResourceType, current: JsonObject, body: unknown): JsonObject {
    try {
      if (contentType === 'application/merge-patch+json') return mergePatch(current, body as Json) as JsonObject;
      if (contentType === 'application/json-patch+json') return jsonPatch(current, body as Json) as JsonObject;
      if (contentType === 'application/strategic-merge-patch+json' && t.builtin)
        return strategicMergePatch(current, body as Json) as JsonObject;
    } catch (err) {
      if (err instanceof PatchError) throw new ApiError(422, 'Invalid', err.message);
      throw err;
    }
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${(t.builtin ? PATCH_TYPES : PATCH_TYPES.slice(0, 2)).join(', ')}`,
    );
  }

  /** Writes `next` in place of `current` through the main resource or a subresource, as the real server scopes each. */
  function write(t: ResourceType, sub: string | undefined, current: JsonObject, next: JsonObject): JsonObject {
    const meta = current['metadata'] as JsonObject;
    const nextMeta = (next['metadata'] ?? {}) as JsonObject;
    if (nextMeta['resourceVersion'] !== undefined && nextMeta['resourceVersion'] !== meta['resourceVersion']) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualified(t)} "${String(meta['name'])}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    if (nextMeta['name'] !== undefined && nextMeta['name'] !== meta['name'])
      throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    let result: JsonObject;
    if (sub === 'scale') {
      const replicas = (next['spec'] as JsonObject | undefined)?.['replicas'];
      if (typeof replicas !== 'number' || replicas < 0)
        throw new ApiError(422, 'Invalid', `Scale.autoscaling "${String(meta['name'])}" is invalid: spec.replicas: Invalid value`);
      result = { ...current, spec: { ...(current['spec'] as JsonObject), replicas } };
    } else if (sub === 'status') {
      result = { ...current, status: next['status'] ?? null };
    } else {
      const { status: _ignored, ...rest } = next;
      result = {
        ...rest,
        metadata: { ...nextMeta, name: meta['name'] ?? null, namespace: meta['namespace'] ?? null },
        ...(current['status'] === undefined ? {} : { status: current['status'] }),
      };
    }
    validate(t, result);
    const stored = store(t, result, current);
    return sub === 'scale' ? scaleOf(stored) : stored;
  }

  function validate(t: ResourceType, obj: JsonObject): void {
    const spec = (obj['spec'] ?? {}) as JsonObject;
    if (
      t.kind === 'HorizontalPodAutoscaler' &&
      typeof spec['minReplicas'] === 'number' &&
      typeof spec['maxReplicas'] === 'number' &&
      spec['minReplicas'] > spec['maxReplicas']
    ) {
      throw new ApiError(
        422,
        'Invalid',
        `HorizontalPodAutoscaler.autoscaling "${String((obj['metadata'] as JsonObject)['name'])}" is invalid: spec.maxReplicas: Invalid value: ${spec['maxReplicas']}: must be greater than or equal to \`minReplicas\``,
      );
    }
  }

  function handleObject(
    req: IncomingMessage,
    body: unknown,
    t: ResourceType,
    ns: string,
    name: string,
    sub: string | undefined,
  ): [number, Json] {
    if (sub !== undefined && !t.subresources.includes(sub as 'status' | 'scale')) throw new ApiError(404, 'NotFound', '404 page not found');
    const allowed = sub === undefined ? ['GET', 'PUT', 'PATCH', 'DELETE'] : ['GET', 'PUT', 'PATCH'];
    if (!allowed.includes(req.method ?? ''))
      throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    const current = objects.get(key(t, ns, name));
    if (!current) throw new ApiError(404, 'NotFound', `${qualified(t)} "${name}" not found`, { name, group: t.group, kind: t.plural });
    const view = sub === 'scale' ? scaleOf(current) : current;
    if (req.method === 'GET') return [200, view];
    if (req.method === 'DELETE') {
      const uid = isObject(body) && isObject(body['preconditions']) ? body['preconditions']['uid'] : undefined;
      if (uid !== undefined && uid !== (current['metadata'] as JsonObject)['uid']) {
        throw new ApiError(
          409,
          'Conflict',
          `Precondition failed: UID in precondition: ${String(uid)}, UID in object meta: ${String((current['metadata'] as JsonObject)['uid'])}`,
        );
      }
      objects.delete(key(t, ns, name));
      return [200, current];
    }
    if (!isObject(body) && req.method === 'PUT') throw new ApiError(400, 'BadRequest', 'the body of a PUT must be an object');
    const next = req.method === 'PUT' ? (body as JsonObject) : applyPatch(mime(req), t, view, body);
    return [200, write(t, sub, current, next)];
  }

  function route(req: IncomingMessage, path: string, body: unknown): [number, Json] {
    const discovered = discovery(path, port);
    if (discovered) {
      if (req.method !== 'GET')
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return [200, discovered];
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
    const t = m && RESOURCES.find((r) => r.group === (m[2] ?? '') && r.version === (m[1] ?? m[3]) && r.plural === m[5]);
    if (!m || !t) throw new ApiError(404, 'NotFound', '404 page not found');
    const [ns, name, sub] = [decodeURIComponent(m[4] ?? ''), m[6] && decodeURIComponent(m[6]), m[7]];
    if (name) return handleObject(req, body, t, ns, name, sub);
    if (req.method !== 'GET')
      throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    const items = [...objects.entries()].filter(([k]) => k.startsWith(`${t.plural}/${ns}/`)).map(([, v]) => v);
    return [200, { kind: `${t.kind}List`, apiVersion: groupVersion(t), metadata: { resourceVersion: String(revision) }, items }];
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = text;
      }
      requests.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, contentType: mime(req), body });
      const matches = (f: Fault) =>
        (f.times ?? 1) > 0 && (!f.method || f.method === req.method) && (!f.pathEndsWith || url.pathname.endsWith(f.pathEndsWith));
      const record = (status: number) => {
        const access = recordFile && accessOf(req.method ?? '', url.pathname, url.searchParams);
        if (!recordFile || !access) return;
        const line: RecordedAccess = { ...access, status, ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}) };
        appendFileSync(recordFile, `${JSON.stringify(line)}\n`);
      };
      const send = (code: number, payload: Json) => {
        record(code);
        res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      };
      const fail = (err: ApiError) =>
        send(err.code, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: err.message,
          reason: err.reason,
          ...(err.details ? { details: err.details } : {}),
          code: err.code,
        });
      const answer = () => {
        try {
          if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`)
            throw new ApiError(401, 'Unauthorized', 'Unauthorized');
          const redirect = faults.find((f) => f.redirectTo !== undefined && matches(f));
          if (redirect?.redirectTo !== undefined) {
            redirect.times = (redirect.times ?? 1) - 1;
            record(redirect.status ?? 307);
            res.writeHead(redirect.status ?? 307, { location: `${redirect.redirectTo}${req.url ?? '/'}` }).end();
            return;
          }
          const fault = faults.find((f) => f.status !== undefined && f.redirectTo === undefined && matches(f));
          if (fault?.status !== undefined) {
            fault.times = (fault.times ?? 1) - 1;
            throw new ApiError(fault.status, REASONS[fault.status] ?? 'Unknown', `injected failure ${fault.status}`);
          }
          if (
            body !== undefined &&
            (req.method === 'PUT' || req.method === 'DELETE' || req.method === 'POST') &&
            mime(req) !== 'application/json'
          ) {
            throw new ApiError(
              415,
              'UnsupportedMediaType',
              `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`,
            );
          }
          if (typeof body === 'string') throw new ApiError(400, 'BadRequest', 'the body of the request is not valid JSON');
          send(...route(req, url.pathname, body));
        } catch (err) {
          fail(err instanceof ApiError ? err : new ApiError(500, 'InternalError', String(err)));
        }
      };
      const delay = faults.find((f) => f.hangMs !== undefined && matches(f));
      if (!delay) return answer();
      if (delay.status === undefined) delay.times = (delay.times ?? 1) - 1;
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, delay.hangMs);
      timers.add(timer);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  const kubeconfigText = () =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // client-node 1.x refuses plain http unless TLS verification is explicitly off.
      clusters: [{ name: 'stand-in', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'stand-in', user: opts.token === undefined ? {} : { token: opts.token } }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'stand-in', namespace: 'default' } }],
      'current-context': 'stand-in',
    });

  return {
    url,
    requests,
    put,
    get: (plural, namespace, name) => {
      const t = RESOURCES.find((r) => r.plural === plural);
      const obj = t && objects.get(key(t, namespace, name));
      return obj && structuredClone(obj);
    },
    inject: (fault) => faults.push({ ...fault }),
    kubeConfig: () => {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigText());
      return kc;
    },
    writeKubeconfig: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kube-stand-in-'));
      tempDirs.push(dir);
      await writeFile(join(dir, 'kubeconfig'), kubeconfigText(), { mode: 0o600 });
      return join(dir, 'kubeconfig');
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
    },
  };
}

/** The discovery documents kubectl reads before it touches a resource (legacy, non-aggregated discovery). */
function discovery(path: string, port: number): Json | undefined {
  if (path === '/version') return { major: '1', minor: '32', gitVersion: 'v1.32.0-stand-in', platform: 'linux/amd64' };
  if (path === '/api')
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }],
    };
  const groups = [...new Set(RESOURCES.filter((t) => t.group).map(groupVersion))];
  if (path === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map((gv) => {
        const [name, version] = gv.split('/') as [string, string];
        return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
      }),
    };
  }
  const gv = path === '/api/v1' ? 'v1' : path.startsWith('/apis/') ? path.slice('/apis/'.length) : undefined;
  const types = RESOURCES.filter((t) => groupVersion(t) === gv);
  if (types.length === 0) return undefined;
  const resources: Json[] = types.flatMap((t): Json[] => [
    {
      name: t.plural,
      singularName: t.singular,
      namespaced: true,
      kind: t.kind,
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'],
      shortNames: t.shortNames,
    },
    ...t.subresources.map((s): Json =>
      s === 'scale'
        ? {
            name: `${t.plural}/scale`,
            singularName: '',
            namespaced: true,
            group: 'autoscaling',
            version: 'v1',
            kind: 'Scale',
            verbs: ['get', 'patch', 'update'],
          }
        : { name: `${t.plural}/status`, singularName: '', namespaced: true, kind: t.kind, verbs: ['get', 'patch', 'update'] },
    ),
  ]);
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv ?? null, resources };
}
