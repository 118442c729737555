import type {
  AppsV1Api,
  AutoscalingV2Api,
  ConfigurationOptions,
  CoreV1Api,
  CustomObjectsApi,
  HttpLibrary,
  KubeConfig,
  ObservableMiddleware,
  PatchStrategy,
} from '@kubernetes/client-node';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { RemediationError, throwIfAborted, type ExecutionContext } from '../types.js';
import { KubeNetworkError, KubeRedirectError, noRedirectHttpLibrary } from './http.js';

/** Shows up in `managedFields`, so `kubectl get -o yaml` tells who changed a field. */
export const FIELD_MANAGER = 'conduit-remediator';

/** The object a call is about, so every error names it the way an operator would look it up. */
export interface ObjectRef {
  kind: string;
  namespace: string;
  name: string;
}

export const describeRef = (ref: ObjectRef): string => `${ref.kind} ${ref.namespace}/${ref.name}`;

/** The patch content types kubectl sends (client-node's PatchStrategy values). */
export const MERGE_PATCH = 'application/merge-patch+json' as PatchStrategy;
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json' as PatchStrategy;

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: Promise<ClientNode> | undefined;
/**
 * The client library is loaded on the first Kubernetes run, not at start: it is large, and a
 * service that never needs to touch the cluster should not carry it.
 */
export const loadClientNode = (): Promise<ClientNode> => (clientNode ??= import('@kubernetes/client-node'));

let httpLibrary: HttpLibrary | undefined;

export interface Kube {
  apps: AppsV1Api;
  core: CoreV1Api;
  autoscaling: AutoscalingV2Api;
  custom: CustomObjectsApi;
  /**
   * Runs one API call bounded by the run's signal and `ctx.timeoutMs`, with the given Content-Type
   * (client-node 1.x would otherwise send every PATCH as `application/json-patch+json`), over an
   * HTTP layer that never follows a redirect, and turns its failure into a RemediationError about
   * `ref`. Every call goes through here: `call` must pass the options it is given.
   */
  request<T>(ref: ObjectRef, call: (options: ConfigurationOptions) => Promise<T>, contentType?: PatchStrategy): Promise<T>;
}

export async function kubeClients(ctx: ExecutionContext): Promise<Kube> {
  const source = ctx.targets.kubernetes;
  if (!source)
    throw new RemediationError('target_not_configured', 'Kubernetes is not configured (KUBECONFIG or in-cluster service account)');
  const k8s = await loadClientNode();
  let kc: KubeConfig;
  try {
    kc = 'lazy' in source ? await source.load() : source;
  } catch (err) {
    throw new RemediationError('target_not_configured', `the Kubernetes configuration could not be loaded: ${(err as Error).message}`);
  }
  return {
    apps: kc.makeApiClient(k8s.AppsV1Api),
    core: kc.makeApiClient(k8s.CoreV1Api),
    autoscaling: kc.makeApiClient(k8s.AutoscalingV2Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    request: (ref, call, contentType) => request(k8s, ctx, ref, call, contentType),
  };
}

async function request<T>(
  k8s: ClientNode,
  ctx: ExecutionContext,
  ref: ObjectRef,
  call: (options: ConfigurationOptions) => Promise<T>,
  contentType?: PatchStrategy,
): Promise<T> {
  throwIfAborted(ctx.signal);
  const timeout = AbortSignal.timeout(ctx.timeoutMs);
  const signal = AbortSignal.any([ctx.signal, timeout]);
  const base: ConfigurationOptions = {
    httpApi: (httpLibrary ??= noRedirectHttpLibrary(k8s)),
    middleware: [signalMiddleware(k8s, signal)],
    middlewareMergeStrategy: 'append',
  };
  try {
    return await call(contentType === undefined ? base : k8s.setHeaderOptions('Content-Type', contentType, base));
  } catch (err) {
    if (ctx.signal.aborted)
      throw new RemediationError('aborted', `aborted while calling Kubernetes for ${describeRef(ref)}`, { retryable: true, cause: err });
    if (timeout.aborted)
      throw new RemediationError('timeout', `Kubernetes did not answer within ${ctx.timeoutMs} ms for ${describeRef(ref)}`, {
        retryable: true,
        cause: err,
      });
    throw toRemediationError(err, ref, k8s.ApiException);
  }
}

/** client-node 1.x hands the request's signal to its HTTP library; a middleware is the one place to set it per call. */
function signalMiddleware(k8s: ClientNode, signal: AbortSignal): ObservableMiddleware {
  return {
    pre: (req) => {
      req.setSignal(signal);
      return new k8s.Observable(Promise.resolve(req));
    },
    post: (res) => new k8s.Observable(Promise.resolve(res)),
  };
}

/** The `message` of the Status object the API server answers errors with, when there is one. */
function statusMessage(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.trim() || undefined;
    }
  }
  const message = (parsed as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : undefined;
}

export function toRemediationError(err: unknown, ref: ObjectRef, ApiException: ClientNode['ApiException']): RemediationError {
  if (err instanceof RemediationError) return err;
  const what = describeRef(ref);
  if (err instanceof KubeRedirectError) {
    // Not retried: the same URL answers the same redirect, and the kubeconfig's server is what needs fixing.
    return new RemediationError(
      'target_error',
      `Kubernetes API answered HTTP ${err.status} redirecting the call for ${what} to ${err.location}; ` +
        'redirects are not followed (they would carry the credentials to another host): check the server in the kubeconfig',
      { detail: { status: err.status, location: err.location }, cause: err },
    );
  }
  if (!(err instanceof ApiException)) {
    // A network failure (refused, reset, DNS, TLS): the API server may be back soon. Anything else
    // failed before a request went out (a kubeconfig the client rejects): retrying will not help.
    const network = err instanceof KubeNetworkError || (err as Error | undefined)?.name === 'FetchError';
    const message = `${network ? 'Kubernetes API unreachable' : 'could not call Kubernetes'} for ${what}: ${(err as Error | undefined)?.message ?? String(err)}`;
    return new RemediationError('target_error', message, { retryable: network, cause: err });
  }
  const code: number = err.code;
  const server = statusMessage(err.body);
  const detail = { status: code, ...(server === undefined ? {} : { message: server }) };
  const suffix = server === undefined ? '' : `: ${server}`;
  if (code === 404) return new RemediationError('not_found', `${what} not found${suffix}`, { detail, cause: err });
  if (code === 401 || code === 403)
    return new RemediationError('unauthorized', `not allowed to change ${what} (HTTP ${code})${suffix}`, { detail, cause: err });
  if (code === 409)
    return new RemediationError('conflict', `${what} was modified concurrently${suffix}`, { retryable: true, detail, cause: err });
  if (code === 400 || code === 422)
    return new RemediationError('invalid_params', `Kubernetes rejected the change to ${what}${suffix}`, { detail, cause: err });
  const retryable = code === 429 || code >= 500;
  return new RemediationError('target_error', `Kubernetes answered HTTP ${code} for ${what}${suffix}`, { retryable, detail, cause: err });
}

const CONFLICT_ATTEMPTS = 3;

/**
 * Re-runs a read-modify-write step when the write meets a 409: another writer (the HPA, a
 * deployment controller, kubectl) got there first, and the step must see their change before
 * deciding again. After the last attempt the conflict is left for the run's own retry.
 */
export async function retryOnConflict<T>(ctx: ExecutionContext, step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!(err instanceof RemediationError) || err.code !== 'conflict' || attempt >= CONFLICT_ATTEMPTS) throw err;
      ctx.log.warn({ runId: ctx.runId, attempt, error: err.message }, 'kubernetes write conflict, retrying');
      await sleep(50 * attempt, ctx.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  }).then(() => throwIfAborted(signal));
}

/**
 * `execute` may be called with params that never went through the engine's validation (a test, a
 * replay): checking again here keeps an unchecked name out of an API path.
 */
export function checkParams<S extends TSchema>(schema: S, params: unknown): asserts params is Static<S> {
  if (Value.Check(schema, params)) return;
  const problems = [...Value.Errors(schema, params)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`);
  throw new RemediationError('invalid_params', `invalid params: ${problems.join('; ')}`, { detail: { problems } });
}

/** RFC 3339 in UTC, to the second: what `kubectl rollout restart` writes (Go's time.RFC3339). */
export const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
