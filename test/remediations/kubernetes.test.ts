import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Value } from '@sinclair/typebox/value';
import { RemediationError, type ExecutionContext, type Remediation, type RevertStep } from '../../remediations/types.js';
import { createCatalogue } from '../../remediations/catalogue.js';
import { prepareParams } from '../../src/matrix/match.js';
import scaleDeployment from '../../remediations/kubernetes/scale-deployment.js';
import patchHpa from '../../remediations/kubernetes/patch-hpa.js';
import rolloutRestart from '../../remediations/kubernetes/rollout-restart.js';
import setResources from '../../remediations/kubernetes/set-resources.js';
import deletePod from '../../remediations/kubernetes/delete-pod.js';
import renewCertificate from '../../remediations/cert-manager/renew-certificate.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.js';
import type { JsonObject } from '../support/kube-patch.js';
import { executionContext } from '../support/context.js';

const NOW = new Date('2025-03-04T05:06:07.890Z');
const T = { timeout: 15_000 };

async function standIn(t: TestContext, opts: { token?: string | undefined } = { token: 'stand-in-token' }): Promise<KubeApiServer> {
  const server = await startKubeApiServer(opts.token === undefined ? {} : { token: opts.token });
  t.after(() => server.close());
  server.put(deployment('conduit-api'));
  return server;
}

const ctxFor = (s: KubeApiServer, opts: { signal?: AbortSignal; timeoutMs?: number } = {}) =>
  executionContext({ kubernetes: s.kubeConfig() }, { now: () => NOW, ...opts });
const writes = (s: KubeApiServer) => s.requests.filter((r) => r.method !== 'GET');

function deployment(name: string, extra: { replicas?: number; paused?: boolean; annotations?: JsonObject } = {}): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'conduit' },
    spec: {
      replicas: extra.replicas ?? 2,
      ...(extra.paused ? { paused: true } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
        spec: {
          containers: [
            { name: 'envoy', image: 'envoy:1.30', resources: { limits: { memory: '256Mi' } } },
            { name: 'api', image: 'conduit:1.2.3', resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { memory: '512Mi' } } },
          ],
        },
      },
    },
  };
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<RemediationError> {
  let caught: unknown;
  await promise.catch((err: unknown) => (caught = err));
  assert.ok(caught instanceof RemediationError, `expected a RemediationError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

function throwsInvalidParams(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    return err instanceof RemediationError && err.code === 'invalid_params';
  }
}

const spec = (s: KubeApiServer, plural: string, name: string) => (s.get(plural, 'conduit', name)?.['spec'] ?? {}) as Record<string, any>;

/** Someone else's change (kubectl, another controller): the stored object edited in place, no request of ours. */
function edit(s: KubeApiServer, plural: string, name: string, change: (obj: Record<string, any>) => void): void {
  const obj = s.get(plural, 'conduit', name)!;
  change(obj);
  s.put(obj);
}

const catalogue = createCatalogue();

/** The revert of a run, from its result as the run record stores it (JSON). */
const revertOf = (r: Remediation, params: Record<string, unknown>, result: Record<string, unknown>): RevertStep | null =>
  r.revert!(params as never, JSON.parse(JSON.stringify(result)) as Record<string, unknown>);

/** A revert step made ready as the engine makes a revert run: its remediation from the catalogue, its params prepared (schema, plan). */
function prepared(step: RevertStep | null) {
  assert.ok(step, 'the run has a revert');
  const inverse = catalogue.get(step.remediation);
  assert.ok(inverse, `${step.remediation} is in the catalogue`);
  const ready = prepareParams(inverse, step.params);
  assert.ok(ready.ok, ready.ok ? '' : ready.error);
  return { plan: ready.plan, execute: (ctx: ExecutionContext) => inverse.execute(ready.params, ctx) };
}

test('scale-deployment patches the scale subresource with a merge patch and reads back the new count', T, async (t) => {
  const s = await standIn(t);
  const result = await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 5, max: 10 }, ctxFor(s));
  assert.deepEqual(result, { from: 2, to: 5, changed: true, summary: 'Scaled deployment conduit/conduit-api from 2 to 5 replicas' });
  assert.equal(spec(s, 'deployments', 'conduit-api')['replicas'], 5);
  assert.deepEqual(
    s.requests.map((r) => [r.method, r.path, r.contentType, r.body]),
    [
      ['GET', '/apis/apps/v1/namespaces/conduit/deployments/conduit-api/scale', undefined, undefined],
      [
        'PATCH',
        '/apis/apps/v1/namespaces/conduit/deployments/conduit-api/scale',
        'application/merge-patch+json',
        { spec: { replicas: 5 } },
      ],
    ],
  );
});

test('scale-deployment clamps to max, and a relative scale-up never scales down', T, async (t) => {
  const s = await standIn(t);
  s.put(deployment('big', { replicas: 12 }));
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', by: 3, max: 4 }, ctxFor(s)), {
    from: 2,
    to: 4,
    changed: true,
    summary: 'Scaled deployment conduit/conduit-api from 2 to 4 replicas, clamped to max 4 (asked for 5)',
  });
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 50, max: 6 }, ctxFor(s)), {
    from: 4,
    to: 6,
    changed: true,
    summary: 'Scaled deployment conduit/conduit-api from 4 to 6 replicas, clamped to max 6 (asked for 50)',
  });
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', by: 1, max: 6 }, ctxFor(s)), {
    from: 6,
    to: 6,
    changed: false,
    summary: 'Deployment conduit/conduit-api already had 6 replicas, the max (asked for 7); nothing changed',
  });
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', by: -10, max: 6 }, ctxFor(s)), {
    from: 6,
    to: 0,
    changed: true,
    summary: 'Scaled deployment conduit/conduit-api from 6 to 0 replicas',
  });
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'big', by: 2, max: 10 }, ctxFor(s)), {
    from: 12,
    to: 12,
    changed: false,
    summary: 'Deployment conduit/big already had 12 replicas, above max 10 (asked for 14); nothing changed',
  });
  assert.equal(
    (await scaleDeployment.execute({ namespace: 'conduit', deployment: 'big', by: -1, max: 10 }, ctxFor(s))).summary,
    'Scaled deployment conduit/big from 12 to 10 replicas, clamped to max 10 (asked for 11)',
  );
  assert.equal(spec(s, 'deployments', 'conduit-api')['replicas'], 0);
  assert.equal(spec(s, 'deployments', 'big')['replicas'], 10);
});

test('scale-deployment sends no PATCH when the deployment already has that many replicas', T, async (t) => {
  const s = await standIn(t);
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 2, max: 10 }, ctxFor(s)), {
    from: 2,
    to: 2,
    changed: false,
    summary: 'Deployment conduit/conduit-api already had 2 replicas; nothing changed',
  });
  assert.deepEqual(writes(s), []);
});

test('plans name the exact object and change', () => {
  assert.match(
    scaleDeployment.plan({ namespace: 'conduit', deployment: 'conduit-api', replicas: 50, max: 10 }),
    /Deployment conduit\/conduit-api to 10 replicas.*deployments\/conduit-api\/scale/,
  );
  assert.match(
    scaleDeployment.plan({ namespace: 'conduit', deployment: 'conduit-api', by: 2, max: 10 }),
    /by \+2 replicas \(never above 10\)/,
  );
  assert.match(
    patchHpa.plan({ namespace: 'conduit', name: 'conduit-api-hpa', minReplicas: 5, maxReplicas: 30 }),
    /minReplicas=5, maxReplicas=30 on HorizontalPodAutoscaler conduit\/conduit-api-hpa/,
  );
  assert.match(
    rolloutRestart.plan({ namespace: 'conduit', deployment: 'conduit-api' }),
    /Rolling restart of Deployment conduit\/conduit-api.*kubectl\.kubernetes\.io\/restartedAt/,
  );
  assert.match(
    setResources.plan({
      namespace: 'conduit',
      deployment: 'conduit-api',
      container: 'api',
      limits: { memory: '4Gi' },
      requests: { memory: '2Gi' },
    }),
    /limits\.memory=4Gi, requests\.memory=2Gi on container "api" of Deployment conduit\/conduit-api/,
  );
  assert.match(deletePod.plan({ namespace: 'conduit', pod: 'postgres-0' }), /Delete Pod conduit\/postgres-0/);
  assert.match(
    renewCertificate.plan({ namespace: 'conduit', certificate: 'conduit-tls' }),
    /Certificate conduit\/conduit-tls.*Issuing.*ManuallyTriggered/,
  );
  assert.equal(
    scaleDeployment.target({ namespace: 'conduit', deployment: 'conduit-api', by: 1, max: 3 }),
    'kubernetes/conduit/deployment/conduit-api',
  );
});

test('invalid params fail with invalid_params before any request, and schema or plan rejects them too', T, async (t) => {
  const s = await standIn(t);
  const bad: Array<[Remediation, Record<string, unknown>]> = [
    [scaleDeployment, { namespace: 'conduit', deployment: 'Bad_Name', replicas: 3, max: 5 }],
    [scaleDeployment, { namespace: 'conduit', deployment: 'conduit-api', max: 5 }],
    [scaleDeployment, { namespace: 'conduit', deployment: 'conduit-api', replicas: 3, by: 1, max: 5 }],
    [scaleDeployment, { namespace: 'conduit', deployment: 'conduit-api', replicas: -1, max: 5 }],
    [patchHpa, { namespace: 'conduit', name: 'conduit-api-hpa' }],
    [patchHpa, { namespace: 'conduit', name: 'conduit-api-hpa', minReplicas: 9, maxReplicas: 3 }],
    [rolloutRestart, { namespace: 'Conduit', deployment: 'conduit-api' }],
    [setResources, { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: 'lots' } }],
    [
      setResources,
      { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '1Gi' }, requests: { memory: '2Gi' } },
    ],
    [setResources, { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '' } }],
    [setResources, { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { gpu: null } }],
    [setResources, { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '4Gi' }, ifLimits: {} }],
    // A precondition on a value the run does not set, or equal to the one it sets (the run could only ever find it done).
    [
      setResources,
      { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '4Gi' }, ifLimits: { cpu: '2' } },
    ],
    [
      setResources,
      { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '4Gi' }, ifRequests: { memory: '1Gi' } },
    ],
    [
      setResources,
      { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '4Gi' }, ifLimits: { memory: '4096Mi' } },
    ],
    [
      setResources,
      { namespace: 'conduit', deployment: 'conduit-api', container: 'api', requests: { cpu: null }, ifRequests: { cpu: null } },
    ],
    [deletePod, { namespace: 'conduit', pod: '../secrets/x' }],
    [renewCertificate, { namespace: 'conduit', certificate: 'Bad_Name' }],
  ];
  for (const [remediation, params] of bad) {
    await rejectsWith(remediation.execute(params, ctxFor(s)), 'invalid_params');
  }
  assert.equal(s.requests.length, 0);
  // What the schema cannot say well, plan() says: the engine prepares params with both before a run exists.
  for (const [remediation, params] of bad) {
    const rejected = !Value.Check(remediation.params, params) || throwsInvalidParams(() => remediation.plan(params));
    assert.ok(rejected, `${remediation.name} ${JSON.stringify(params)} is rejected by its schema or its plan`);
  }
  await rejectsWith(
    scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', max: 5 }, ctxFor(s)),
    'invalid_params',
    /exactly one of `replicas`.*or `by`/,
  );
});

test('a missing object is not_found naming it; auth and server failures map to their codes', T, async (t) => {
  const s = await standIn(t);
  await rejectsWith(
    scaleDeployment.execute({ namespace: 'conduit', deployment: 'ghost', replicas: 3, max: 5 }, ctxFor(s)),
    'not_found',
    /Deployment conduit\/ghost not found/,
  );
  await rejectsWith(
    patchHpa.execute({ namespace: 'conduit', name: 'ghost-hpa', minReplicas: 3 }, ctxFor(s)),
    'not_found',
    /HorizontalPodAutoscaler conduit\/ghost-hpa not found/,
  );
  await rejectsWith(
    renewCertificate.execute({ namespace: 'conduit', certificate: 'ghost-tls' }, ctxFor(s)),
    'not_found',
    /Certificate conduit\/ghost-tls not found/,
  );
  s.inject({ method: 'GET', status: 403 });
  await rejectsWith(
    rolloutRestart.execute({ namespace: 'conduit', deployment: 'conduit-api' }, ctxFor(s)),
    'unauthorized',
    /Deployment conduit\/conduit-api/,
  );
  s.inject({ method: 'GET', status: 503 });
  const unavailable = await rejectsWith(
    rolloutRestart.execute({ namespace: 'conduit', deployment: 'conduit-api' }, ctxFor(s)),
    'target_error',
  );
  assert.equal(unavailable.retryable, true);
  await rejectsWith(
    scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 3, max: 5 }, ctxWithToken(s, 'wrong-token')),
    'unauthorized',
    /HTTP 401/,
  );
  await rejectsWith(
    scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 3, max: 5 }, executionContext({})),
    'target_not_configured',
  );
});

function ctxWithToken(server: KubeApiServer, token: string) {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: server.url, skipTLSVerify: true }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return executionContext({ kubernetes: kc }, { now: () => NOW });
}

test('a 409 on the first write is retried after a fresh read; persistent conflicts stay retryable', T, async (t) => {
  const s = await standIn(t);
  s.inject({ method: 'PATCH', pathEndsWith: '/scale', status: 409 });
  assert.deepEqual(await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 4, max: 10 }, ctxFor(s)), {
    from: 2,
    to: 4,
    changed: true,
    summary: 'Scaled deployment conduit/conduit-api from 2 to 4 replicas',
  });
  assert.deepEqual(
    s.requests.map((r) => r.method),
    ['GET', 'PATCH', 'GET', 'PATCH'],
  );
  assert.equal(spec(s, 'deployments', 'conduit-api')['replicas'], 4);
  s.inject({ method: 'PATCH', status: 409, times: 3 });
  const conflict = await rejectsWith(rolloutRestart.execute({ namespace: 'conduit', deployment: 'conduit-api' }, ctxFor(s)), 'conflict');
  assert.equal(conflict.retryable, true);
});

test('the run timeout and abort signal bound every request', T, async (t) => {
  const s = await standIn(t);
  s.inject({ method: 'GET', hangMs: 5_000 });
  const started = Date.now();
  const timedOut = await rejectsWith(
    scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 3, max: 5 }, ctxFor(s, { timeoutMs: 150 })),
    'timeout',
  );
  assert.ok(Date.now() - started < 2_000, 'gave up near the timeout');
  assert.equal(timedOut.retryable, true);
  const aborted = new AbortController();
  aborted.abort('shutdown');
  const before = s.requests.length;
  await rejectsWith(deletePod.execute({ namespace: 'conduit', pod: 'conduit-api-1' }, ctxFor(s, { signal: aborted.signal })), 'aborted');
  assert.equal(s.requests.length, before);
});

test('a redirect from the API server is not followed: the other host gets no request, not even the first GET', T, async (t) => {
  const s = await standIn(t);
  // Another API server stand-in, which would answer every call, and records what reaches it.
  const other = await standIn(t);
  other.requests.length = 0;
  const before = structuredClone(s.get('deployments', 'conduit', 'conduit-api'));

  s.inject({ method: 'GET', redirectTo: other.url, status: 307 });
  const err = await rejectsWith(
    scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 3, max: 5 }, ctxFor(s)),
    'target_error',
    /Kubernetes API answered HTTP 307 redirecting the call for Deployment conduit\/conduit-api to http:\/\/127\.0\.0\.1:\d+\/apis\/apps\/v1\/namespaces\/conduit\/deployments\/conduit-api\/scale; redirects are not followed/,
  );
  assert.equal(err.retryable, false);
  assert.deepEqual(err.detail, { status: 307, location: `${other.url}/apis/apps/v1/namespaces/conduit/deployments/conduit-api/scale` });
  assert.ok(!err.message.includes('stand-in-token'));

  // A write redirected with 308, which keeps method and body: the PATCH goes nowhere.
  s.inject({ method: 'PATCH', redirectTo: `${other.url}/elsewhere?token=leak`, status: 308 });
  const patch = await rejectsWith(
    rolloutRestart.execute({ namespace: 'conduit', deployment: 'conduit-api' }, ctxFor(s)),
    'target_error',
    /HTTP 308 redirecting the call for Deployment conduit\/conduit-api to http:\/\/127\.0\.0\.1:\d+\/elsewhere;/,
  );
  assert.doesNotMatch(patch.message, /leak/);

  assert.deepEqual(other.requests, [], 'the redirect target received a request');
  assert.deepEqual(s.get('deployments', 'conduit', 'conduit-api'), before, 'the deployment is unchanged');
  // The redirects were one-off: the next call goes through as usual.
  assert.equal((await scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 3, max: 5 }, ctxFor(s))).to, 3);
});

test('an API server that refuses connections is a retryable target_error', T, async (t) => {
  const s = await standIn(t);
  const ctx = ctxFor(s);
  await s.close();
  const err = await rejectsWith(
    deletePod.execute({ namespace: 'conduit', pod: 'conduit-api-1' }, ctx),
    'target_error',
    /Kubernetes API unreachable for Pod conduit\/conduit-api-1: connect ECONNREFUSED/,
  );
  assert.equal(err.retryable, true);
});

test('patch-hpa merge-patches only what changes, is a no-op when set, refuses min above the current max', T, async (t) => {
  const s = await standIn(t);
  s.put({
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: 'conduit-api-hpa', namespace: 'conduit' },
    spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'conduit-api' }, minReplicas: 2, maxReplicas: 10 },
  });
  const params = { namespace: 'conduit', name: 'conduit-api-hpa', minReplicas: 5, maxReplicas: 30 };
  assert.deepEqual(await patchHpa.execute(params, ctxFor(s)), {
    from: { minReplicas: 2, maxReplicas: 10 },
    to: { minReplicas: 5, maxReplicas: 30 },
    changed: true,
    summary: 'Changed minReplicas from 2 to 5 and maxReplicas from 10 to 30 of HorizontalPodAutoscaler conduit/conduit-api-hpa',
  });
  assert.deepEqual(spec(s, 'horizontalpodautoscalers', 'conduit-api-hpa'), {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'conduit-api' },
    minReplicas: 5,
    maxReplicas: 30,
  });
  const [patch] = writes(s);
  assert.deepEqual(
    [patch?.path, patch?.contentType, patch?.body],
    [
      '/apis/autoscaling/v2/namespaces/conduit/horizontalpodautoscalers/conduit-api-hpa',
      'application/merge-patch+json',
      { spec: { minReplicas: 5, maxReplicas: 30 } },
    ],
  );
  const unchanged = await patchHpa.execute(params, ctxFor(s));
  assert.equal(unchanged['changed'], false);
  assert.equal(
    unchanged['summary'],
    'HorizontalPodAutoscaler conduit/conduit-api-hpa already had minReplicas 5 and maxReplicas 30; nothing changed',
  );
  const raised = await patchHpa.execute({ namespace: 'conduit', name: 'conduit-api-hpa', maxReplicas: 40 }, ctxFor(s));
  assert.equal(raised['summary'], 'Changed maxReplicas from 30 to 40 of HorizontalPodAutoscaler conduit/conduit-api-hpa');
  assert.deepEqual(writes(s)[1]?.body, { spec: { maxReplicas: 40 } });
  await rejectsWith(
    patchHpa.execute({ namespace: 'conduit', name: 'conduit-api-hpa', minReplicas: 50 }, ctxFor(s)),
    'invalid_params',
    /minReplicas 50 above maxReplicas 40/,
  );
  assert.equal(writes(s).length, 2);
});

test('rollout-restart sets restartedAt by strategic merge patch, refuses a paused deployment, skips a restart just made', T, async (t) => {
  const s = await standIn(t);
  s.put(deployment('paused', { paused: true }));
  s.put(deployment('fresh', { annotations: { 'kubectl.kubernetes.io/restartedAt': '2025-03-04T05:05:50Z' } }));
  assert.deepEqual(await rolloutRestart.execute({ namespace: 'conduit', deployment: 'conduit-api' }, ctxFor(s)), {
    restarted: true,
    restartedAt: '2025-03-04T05:06:07Z',
    summary: 'Started a rolling restart of deployment conduit/conduit-api (restartedAt 2025-03-04T05:06:07Z)',
  });
  const template = spec(s, 'deployments', 'conduit-api')['template'];
  assert.deepEqual(template.metadata, {
    labels: { app: 'conduit-api' },
    annotations: { 'kubectl.kubernetes.io/restartedAt': '2025-03-04T05:06:07Z' },
  });
  assert.equal(template.spec.containers.length, 2, 'the strategic merge kept the containers');
  assert.equal(writes(s)[0]?.contentType, 'application/strategic-merge-patch+json');
  await rejectsWith(
    rolloutRestart.execute({ namespace: 'conduit', deployment: 'paused' }, ctxFor(s)),
    'refused',
    /Deployment conduit\/paused is paused/,
  );
  assert.deepEqual(await rolloutRestart.execute({ namespace: 'conduit', deployment: 'fresh' }, ctxFor(s)), {
    restarted: false,
    restartedAt: '2025-03-04T05:05:50Z',
    summary: 'Deployment conduit/fresh was already restarted at 2025-03-04T05:05:50Z, less than 60s ago; no new restart was started',
  });
  assert.equal(writes(s).length, 1);
});

test('set-resources patches the one container, keeps the others and untouched values, no-ops on equal quantities', T, async (t) => {
  const s = await standIn(t);
  const params = {
    namespace: 'conduit',
    deployment: 'conduit-api',
    container: 'api',
    limits: { memory: '4Gi' },
    requests: { memory: '2Gi', cpu: '500m' },
  };
  const result = await setResources.execute(params, ctxFor(s));
  assert.equal(result['changed'], true);
  assert.equal(
    result['summary'],
    'Set limits.memory=4Gi (was 1Gi), requests.memory=2Gi (was 512Mi), requests.cpu=500m (was unset) ' +
      'on container "api" of deployment conduit/conduit-api',
  );
  const [envoy, api] = spec(s, 'deployments', 'conduit-api')['template'].spec.containers;
  assert.deepEqual(envoy, { name: 'envoy', image: 'envoy:1.30', resources: { limits: { memory: '256Mi' } } });
  assert.deepEqual(api, {
    name: 'api',
    image: 'conduit:1.2.3',
    resources: { limits: { cpu: '2', memory: '4Gi' }, requests: { memory: '2Gi', cpu: '500m' } },
  });
  assert.equal(writes(s)[0]?.contentType, 'application/strategic-merge-patch+json');
  const same = { ...params, limits: { memory: '4096Mi' }, requests: { memory: '2Gi', cpu: '0.5' } };
  const repeated = await setResources.execute(same, ctxFor(s));
  assert.equal(repeated['changed'], false);
  assert.equal(
    repeated['summary'],
    'Container "api" of deployment conduit/conduit-api already had limits.memory=4Gi, requests.memory=2Gi, requests.cpu=500m; nothing changed',
  );
  const partly = await setResources.execute({ ...params, limits: { memory: '8Gi' } }, ctxFor(s));
  assert.equal(
    partly['summary'],
    'Set limits.memory=8Gi (was 4Gi) on container "api" of deployment conduit/conduit-api, keeping requests.memory=2Gi, requests.cpu=500m',
  );
  assert.equal(writes(s).length, 2);
  await rejectsWith(
    setResources.execute({ ...params, container: 'worker' }, ctxFor(s)),
    'not_found',
    /Deployment conduit\/conduit-api has no container "worker" \(it has: envoy, api\)/,
  );
  await rejectsWith(
    setResources.execute({ ...params, limits: { cpu: '100m' }, requests: undefined }, ctxFor(s)),
    'invalid_params',
    /cpu request 500m would exceed its limit 100m/,
  );
  assert.equal(writes(s).length, 2);
});

test('set-resources with null unsets a resource by a strategic merge patch null, and a null already unset is a no-op', T, async (t) => {
  const s = await standIn(t);
  const params = { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { cpu: null }, requests: { cpu: null } };
  assert.match(setResources.plan(params), /limits\.cpu unset, requests\.cpu unset on container "api"/);
  const result = await setResources.execute(params, ctxFor(s));
  assert.deepEqual(result, {
    container: 'api',
    from: { limits: { cpu: '2', memory: '1Gi' }, requests: { memory: '512Mi' } },
    to: { limits: { memory: '1Gi' }, requests: { memory: '512Mi' } },
    changed: true,
    summary: 'Set limits.cpu unset (was 2) on container "api" of deployment conduit/conduit-api, keeping requests.cpu unset',
  });
  assert.deepEqual(writes(s)[0]?.body, {
    spec: {
      template: {
        spec: {
          '$setElementOrder/containers': [{ name: 'envoy' }, { name: 'api' }],
          containers: [{ name: 'api', resources: { limits: { cpu: null } } }],
        },
      },
    },
  });
  const api = spec(s, 'deployments', 'conduit-api')['template'].spec.containers[1];
  assert.deepEqual(api.resources, { limits: { memory: '1Gi' }, requests: { memory: '512Mi' } });
  assert.equal((await setResources.execute(params, ctxFor(s)))['changed'], false);
  assert.equal(writes(s).length, 1);
});

test(
  'scale-deployment: its revert restores the recorded count, refuses (changed_since) once someone else scaled, none for a no-op',
  T,
  async (t) => {
    const s = await standIn(t);
    const params = { namespace: 'conduit', deployment: 'conduit-api', replicas: 5, max: 10 };
    const result = await scaleDeployment.execute(params, ctxFor(s));
    const step = revertOf(scaleDeployment, params, result);
    assert.deepEqual(step, {
      remediation: 'kubernetes.scale-deployment',
      params: { namespace: 'conduit', deployment: 'conduit-api', replicas: 2, max: 2, ifReplicas: 5 },
    });
    const revert = prepared(step);
    assert.match(revert.plan, /to 2 replicas.*refused \(changed_since\) unless it still has 5$/);
    assert.deepEqual(await revert.execute(ctxFor(s)), {
      from: 5,
      to: 2,
      changed: true,
      summary: 'Scaled deployment conduit/conduit-api from 5 to 2 replicas',
    });
    assert.equal(spec(s, 'deployments', 'conduit-api')['replicas'], 2);
    assert.deepEqual(writes(s).at(-1)?.body, { spec: { replicas: 2 } });

    // Scaled up again, then by hand: the revert of that run leaves the hand-set count alone.
    const stale = prepared(revertOf(scaleDeployment, params, await scaleDeployment.execute(params, ctxFor(s))));
    edit(s, 'deployments', 'conduit-api', (d) => (d['spec'].replicas = 7));
    const before = writes(s).length;
    const err = await rejectsWith(stale.execute(ctxFor(s)), 'changed_since', /has 7 replicas now, not the 5 the reverted run left/);
    assert.equal(err.retryable, false);
    assert.deepEqual(err.detail, { replicas: 7, expected: 5 });
    assert.equal(writes(s).length, before, 'nothing written');
    assert.equal(spec(s, 'deployments', 'conduit-api')['replicas'], 7);

    const noop = await scaleDeployment.execute({ ...params, replicas: 7 }, ctxFor(s));
    assert.equal(noop['changed'], false);
    assert.equal(revertOf(scaleDeployment, { ...params, replicas: 7 }, noop), null);
  },
);

test(
  'patch-hpa: its revert restores the recorded bounds, refuses (changed_since) once someone else changed them, none for a no-op',
  T,
  async (t) => {
    const s = await standIn(t);
    const hpaSpec = {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'conduit-api' },
      minReplicas: 2,
      maxReplicas: 10,
    };
    s.put({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'conduit-api-hpa', namespace: 'conduit' },
      spec: hpaSpec,
    });
    const params = { namespace: 'conduit', name: 'conduit-api-hpa', minReplicas: 5, maxReplicas: 30 };
    const result = await patchHpa.execute(params, ctxFor(s));
    const step = revertOf(patchHpa, params, result);
    assert.deepEqual(step, {
      remediation: 'kubernetes.patch-hpa',
      params: { namespace: 'conduit', name: 'conduit-api-hpa', minReplicas: 2, maxReplicas: 10, ifMinReplicas: 5, ifMaxReplicas: 30 },
    });
    assert.deepEqual(await prepared(step).execute(ctxFor(s)), {
      from: { minReplicas: 5, maxReplicas: 30 },
      to: { minReplicas: 2, maxReplicas: 10 },
      changed: true,
      summary: 'Changed minReplicas from 5 to 2 and maxReplicas from 30 to 10 of HorizontalPodAutoscaler conduit/conduit-api-hpa',
    });
    assert.deepEqual(spec(s, 'horizontalpodautoscalers', 'conduit-api-hpa'), hpaSpec);
    assert.deepEqual(writes(s).at(-1)?.body, { spec: { minReplicas: 2, maxReplicas: 10 } });

    // Raised again, then its maximum raised further by hand: the revert of that run leaves both bounds alone.
    const stale = prepared(revertOf(patchHpa, params, await patchHpa.execute(params, ctxFor(s))));
    edit(s, 'horizontalpodautoscalers', 'conduit-api-hpa', (h) => (h['spec'].maxReplicas = 40));
    const before = writes(s).length;
    const err = await rejectsWith(
      stale.execute(ctxFor(s)),
      'changed_since',
      /has minReplicas 5 and maxReplicas 40 now, not as the reverted run left it/,
    );
    assert.equal(err.retryable, false);
    assert.equal(writes(s).length, before, 'nothing written');
    assert.deepEqual(spec(s, 'horizontalpodautoscalers', 'conduit-api-hpa'), { ...hpaSpec, minReplicas: 5, maxReplicas: 40 });

    const noop = await patchHpa.execute({ ...params, maxReplicas: 40 }, ctxFor(s));
    assert.equal(noop['changed'], false);
    assert.equal(revertOf(patchHpa, { ...params, maxReplicas: 40 }, noop), null);
  },
);

test(
  'set-resources: its revert restores the recorded values and unsets what was unset, refuses (changed_since) once someone else changed them, none for a no-op',
  T,
  async (t) => {
    const s = await standIn(t);
    const original = spec(s, 'deployments', 'conduit-api');
    const params = {
      namespace: 'conduit',
      deployment: 'conduit-api',
      container: 'api',
      limits: { memory: '4Gi' },
      requests: { memory: '2Gi', cpu: '0.5' },
    };
    const result = await setResources.execute(params, ctxFor(s));
    const step = revertOf(setResources, params, result);
    assert.deepEqual(step, {
      remediation: 'kubernetes.set-resources',
      params: {
        namespace: 'conduit',
        deployment: 'conduit-api',
        container: 'api',
        limits: { memory: '1Gi' },
        ifLimits: { memory: '4Gi' },
        requests: { memory: '512Mi', cpu: null },
        ifRequests: { memory: '2Gi', cpu: '0.5' },
      },
    });
    const revert = prepared(step);
    assert.match(
      revert.plan,
      /^Set limits\.memory=1Gi, requests\.cpu unset, requests\.memory=512Mi on container "api" of Deployment conduit\/conduit-api .*; refused \(changed_since\) unless it still has limits\.memory=4Gi, requests\.cpu=0\.5, requests\.memory=2Gi$/,
    );
    // The API server keeps quantities in canonical form: 0.5 reads back as 500m, the same amount.
    edit(s, 'deployments', 'conduit-api', (d) => (d['spec'].template.spec.containers[1].resources.requests.cpu = '500m'));
    const reverted = await revert.execute(ctxFor(s));
    assert.equal(reverted['changed'], true);
    assert.equal(
      reverted['summary'],
      'Set limits.memory=1Gi (was 4Gi), requests.cpu unset (was 500m), requests.memory=512Mi (was 2Gi) on container "api" of deployment conduit/conduit-api',
    );
    assert.deepEqual(spec(s, 'deployments', 'conduit-api'), original, 'the deployment is as it was, requests.cpu unset again');
    assert.deepEqual(writes(s).at(-1)?.body, {
      spec: {
        template: {
          spec: {
            '$setElementOrder/containers': [{ name: 'envoy' }, { name: 'api' }],
            containers: [{ name: 'api', resources: { limits: { memory: '1Gi' }, requests: { memory: '512Mi', cpu: null } } }],
          },
        },
      },
    });

    // Set again, then by hand a larger memory limit and no CPU request: the revert of that run leaves the container alone.
    const stale = prepared(revertOf(setResources, params, await setResources.execute(params, ctxFor(s))));
    edit(s, 'deployments', 'conduit-api', (d) => {
      const resources = d['spec'].template.spec.containers[1].resources;
      resources.limits.memory = '8Gi';
      delete resources.requests.cpu;
    });
    const changedByHand = spec(s, 'deployments', 'conduit-api');
    const before = writes(s).length;
    const err = await rejectsWith(
      stale.execute(ctxFor(s)),
      'changed_since',
      /^container "api" of deployment conduit\/conduit-api has limits\.memory=8Gi \(the reverted run left 4Gi\), requests\.cpu unset \(the reverted run left 0\.5\) now; leaving it as it is$/,
    );
    assert.equal(err.retryable, false);
    assert.deepEqual(err.detail, {
      container: 'api',
      from: { limits: { cpu: '2', memory: '8Gi' }, requests: { memory: '2Gi' } },
      expected: { limits: { memory: '4Gi' }, requests: { memory: '2Gi', cpu: '0.5' } },
    });
    assert.equal(writes(s).length, before, 'nothing written');
    assert.deepEqual(spec(s, 'deployments', 'conduit-api'), changedByHand);

    const noop = await setResources.execute({ ...params, limits: { memory: '8Gi' }, requests: { memory: '2Gi' } }, ctxFor(s));
    assert.equal(noop['changed'], false);
    assert.equal(revertOf(setResources, params, noop), null);
  },
);

test('set-resources: the revert of a run that gave a container its first request unsets it again', T, async (t) => {
  const s = await standIn(t);
  const params = { namespace: 'conduit', deployment: 'conduit-api', container: 'envoy', requests: { memory: '128Mi' } };
  const step = revertOf(setResources, params, await setResources.execute(params, ctxFor(s)));
  assert.deepEqual(step?.params, {
    namespace: 'conduit',
    deployment: 'conduit-api',
    container: 'envoy',
    requests: { memory: null },
    ifRequests: { memory: '128Mi' },
  });
  assert.equal((await prepared(step).execute(ctxFor(s)))['changed'], true);
  const envoy = spec(s, 'deployments', 'conduit-api')['template'].spec.containers[0];
  assert.deepEqual(envoy.resources.limits, { memory: '256Mi' });
  // The API server drops the emptied map (omitempty); the stand-in keeps it as {}. Either way: no request.
  assert.deepEqual({ ...envoy.resources.requests }, {});
});

test('rollout-restart, delete-pod and renew-certificate have no revert', () => {
  for (const r of [rolloutRestart, deletePod, renewCertificate]) assert.equal(r.revert, undefined, r.name);
});

test('delete-pod deletes an owned pod with a UID precondition, treats a gone pod as done, refuses an unowned one', T, async (t) => {
  const s = await standIn(t);
  const owner = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'postgres', uid: 'u-1', controller: true }];
  const uid = s.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'postgres-0', namespace: 'conduit', ownerReferences: owner },
    spec: { containers: [{ name: 'pg' }] },
  })['metadata'] as JsonObject;
  s.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'debug', namespace: 'conduit' }, spec: { containers: [{ name: 'sh' }] } });
  assert.deepEqual(await deletePod.execute({ namespace: 'conduit', pod: 'postgres-0' }, ctxFor(s)), {
    deleted: true,
    uid: uid['uid'],
    summary: 'Deleted pod conduit/postgres-0 (controlled by StatefulSet postgres)',
  });
  assert.equal(s.get('pods', 'conduit', 'postgres-0'), undefined);
  const [del] = writes(s);
  assert.deepEqual(
    [del?.method, del?.path, (del?.body as JsonObject)['preconditions']],
    ['DELETE', '/api/v1/namespaces/conduit/pods/postgres-0', { uid: uid['uid'] }],
  );
  assert.deepEqual(await deletePod.execute({ namespace: 'conduit', pod: 'postgres-0' }, ctxFor(s)), {
    deleted: false,
    summary: 'Pod conduit/postgres-0 was already gone; nothing deleted',
  });
  await rejectsWith(
    deletePod.execute({ namespace: 'conduit', pod: 'debug' }, ctxFor(s)),
    'refused',
    /Pod conduit\/debug has no controller/,
  );
  assert.ok(s.get('pods', 'conduit', 'debug'));
  assert.equal(writes(s).length, 1);
});

test('renew-certificate sets Issuing=True through the status subresource as cmctl does, once', T, async (t) => {
  const s = await standIn(t);
  const ready = { type: 'Ready', status: 'True', reason: 'Ready', message: 'up to date', lastTransitionTime: '2025-01-01T00:00:00Z' };
  s.put({
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: 'conduit-tls', namespace: 'conduit' },
    spec: { secretName: 'conduit-tls' },
    status: { conditions: [ready] },
  });
  s.inject({ method: 'PUT', status: 409 });
  assert.deepEqual(await renewCertificate.execute({ namespace: 'conduit', certificate: 'conduit-tls' }, ctxFor(s)), {
    triggered: true,
    issuingSince: '2025-03-04T05:06:07Z',
    summary: 'Triggered re-issuance of certificate conduit/conduit-tls: set its Issuing condition to True (reason ManuallyTriggered)',
  });
  const crt = s.get('certificates', 'conduit', 'conduit-tls')!;
  const issuing = {
    type: 'Issuing',
    status: 'True',
    reason: 'ManuallyTriggered',
    message: 'Certificate re-issuance manually triggered',
    lastTransitionTime: '2025-03-04T05:06:07Z',
    observedGeneration: 1,
  };
  assert.deepEqual(crt['status'], { conditions: [ready, issuing] });
  assert.deepEqual(crt['spec'], { secretName: 'conduit-tls' });
  assert.deepEqual(
    writes(s).map((r) => [r.method, r.path, r.contentType]),
    Array(2).fill(['PUT', '/apis/cert-manager.io/v1/namespaces/conduit/certificates/conduit-tls/status', 'application/json']),
  );
  assert.deepEqual(await renewCertificate.execute({ namespace: 'conduit', certificate: 'conduit-tls' }, ctxFor(s)), {
    triggered: false,
    issuingSince: '2025-03-04T05:06:07Z',
    summary: 'Certificate conduit/conduit-tls was already being issued (Issuing since 2025-03-04T05:06:07Z); nothing triggered',
  });
  assert.equal(writes(s).length, 2);
});

test('the stand-in refuses what a real API server refuses', T, async (t) => {
  const s = await standIn(t);
  const call = (method: string, path: string, contentType: string, body: unknown) =>
    fetch(`${s.url}${path}`, {
      method,
      headers: { authorization: 'Bearer stand-in-token', 'content-type': contentType },
      body: JSON.stringify(body),
    });
  const deploy = '/apis/apps/v1/namespaces/conduit/deployments/conduit-api';
  assert.equal((await call('PATCH', deploy, 'application/json', { spec: { replicas: 3 } })).status, 415);
  assert.equal((await call('POST', deploy, 'application/json', {})).status, 405);
  assert.equal((await call('DELETE', `${deploy}/scale`, 'application/json', {})).status, 405);
  s.put({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'c', namespace: 'conduit' }, spec: {} });
  assert.equal(
    (await call('PATCH', '/apis/cert-manager.io/v1/namespaces/conduit/certificates/c', 'application/strategic-merge-patch+json', {}))
      .status,
    415,
  );
  const missing = await call('PATCH', `${deploy}-x/scale`, 'application/merge-patch+json', {});
  assert.deepEqual([missing.status, ((await missing.json()) as JsonObject)['reason']], [404, 'NotFound']);
  assert.equal(spec(s, 'deployments', 'conduit-api')['replicas'], 2);
});

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { timeout: 10_000 }).status === 0;

test(
  'our writes match what kubectl sends for scale, rollout restart and set resources',
  { timeout: 90_000, skip: !hasKubectl && 'kubectl is not on PATH' },
  async (t) => {
    // kubectl keeps bearer tokens off plain http, so this pair of stand-ins asks for none.
    const theirs = await standIn(t, { token: undefined });
    const ours = await standIn(t, { token: undefined });
    const kubeconfig = await theirs.writeKubeconfig();
    const cacheDir = await mkdtemp(join(tmpdir(), 'kubectl-cache-'));
    t.after(() => rm(cacheDir, { recursive: true, force: true }));
    const kubectl = (...args: string[]) =>
      promisify(execFile)(
        'kubectl',
        ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, '--request-timeout=10s', '-n', 'conduit', ...args],
        { timeout: 30_000 },
      );
    const cases: Array<[string[], () => Promise<unknown>]> = [
      [
        ['scale', 'deployment', 'conduit-api', '--replicas=5'],
        () => scaleDeployment.execute({ namespace: 'conduit', deployment: 'conduit-api', replicas: 5, max: 10 }, ctxFor(ours)),
      ],
      [
        ['rollout', 'restart', 'deployment', 'conduit-api'],
        () => rolloutRestart.execute({ namespace: 'conduit', deployment: 'conduit-api' }, ctxFor(ours)),
      ],
      [
        ['set', 'resources', 'deployment', 'conduit-api', '-c=api', '--limits=memory=4Gi', '--requests=memory=2Gi'],
        () =>
          setResources.execute(
            { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '4Gi' }, requests: { memory: '2Gi' } },
            ctxFor(ours),
          ),
      ],
    ];
    const timestamp = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/;
    const shape = (s: KubeApiServer) =>
      writes(s).map((r) => [
        r.method,
        r.path,
        r.contentType,
        JSON.parse(JSON.stringify(r.body), (_k, v: unknown) => (typeof v === 'string' && timestamp.test(v) ? '<RFC3339>' : v)),
      ]);
    for (const [args, run] of cases) {
      theirs.requests.length = 0;
      ours.requests.length = 0;
      await kubectl(...args);
      await run();
      assert.equal(writes(theirs).length, 1, `kubectl ${args.join(' ')} wrote once`);
      assert.deepEqual(shape(ours), shape(theirs), `kubectl ${args.join(' ')}`);
    }
    const restartedAt = (s: KubeApiServer) =>
      spec(s, 'deployments', 'conduit-api')['template'].metadata.annotations['kubectl.kubernetes.io/restartedAt'];
    assert.match(restartedAt(theirs), timestamp);
    const normalized = (s: KubeApiServer) => ({
      ...spec(s, 'deployments', 'conduit-api'),
      template: { ...spec(s, 'deployments', 'conduit-api')['template'], metadata: { labels: { app: 'conduit-api' } } },
    });
    assert.deepEqual(normalized(ours), normalized(theirs), 'both end with the same deployment spec');
  },
);

test(
  "the stand-in merges a revert's strategic merge patch, nulls included, as kubectl's own merge code does",
  { timeout: 60_000, skip: !hasKubectl && 'kubectl is not on PATH' },
  async (t) => {
    const s = await standIn(t);
    const dir = await mkdtemp(join(tmpdir(), 'kubectl-local-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // Envoy gets its first request (its revert empties `requests`), api its first CPU request and a new memory limit.
    const runs = [
      { namespace: 'conduit', deployment: 'conduit-api', container: 'envoy', requests: { memory: '128Mi' } },
      { namespace: 'conduit', deployment: 'conduit-api', container: 'api', limits: { memory: '4Gi' }, requests: { cpu: '500m' } },
    ];
    for (const params of runs) {
      const step = revertOf(setResources, params, await setResources.execute(params, ctxFor(s)));
      const before = s.get('deployments', 'conduit', 'conduit-api')!;
      await prepared(step).execute(ctxFor(s));
      const patch = writes(s).at(-1)!;
      assert.equal(patch.contentType, 'application/strategic-merge-patch+json');
      await writeFile(join(dir, 'before.json'), JSON.stringify(before));
      const { stdout } = await promisify(execFile)(
        'kubectl',
        ['patch', '--local', '-f', join(dir, 'before.json'), '--type=strategic', '-p', JSON.stringify(patch.body), '-o', 'json'],
        { timeout: 30_000, env: { ...process.env, KUBECONFIG: join(dir, 'none') } },
      );
      const theirs = (JSON.parse(stdout) as JsonObject)['spec'];
      assert.notDeepEqual(before['spec'], theirs, 'kubectl merged the patch');
      assert.deepEqual(spec(s, 'deployments', 'conduit-api'), theirs, `revert of ${JSON.stringify(params)}`);
    }
  },
);
