/**
 * Target scopes (`allow`) end to end: the real service with the shipped matrix and the Kubernetes API
 * stand-in, which records every request. Alert labels that point outside Conduit's namespaces fail
 * their runs `out_of_scope` before anything is asked of Kubernetes; inside, the same alerts act.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { approve, deliver, getRun, settled, type DeliveredRun, type RunBody } from '../support/api.js';
import { alertMessage, eventually, isolation, startService, type TestService } from '../support/harness.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';

const SHIPPED = readFileSync(fileURLToPath(new URL('../../config/response-matrix.yaml', import.meta.url)), 'utf8');
const FINAL = new Set(['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run']);
const NAMESPACES = '^(?:conduit|conduit-staging)$';
const POD = 'conduit-api-7d4b9c6f5-x2x9z';

/** The objects an alert could point at, in Conduit's namespace and in kube-system alike: a request would find them. */
function seed(kube: KubeApiServer): void {
  for (const namespace of ['conduit', 'kube-system']) {
    kube.put({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'conduit-api', namespace },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'conduit-api' } },
        template: { metadata: { labels: { app: 'conduit-api' } }, spec: { containers: [{ name: 'api', image: 'conduit:1.2.3' }] } },
      },
    });
    const owner = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'conduit-api-7d4b9c6f5', uid: `rs-${namespace}`, controller: true }];
    kube.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: POD, namespace, ownerReferences: owner },
      spec: { containers: [{ name: 'api' }] },
    });
    kube.put({
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: 'conduit-tls', namespace },
      spec: { secretName: 'conduit-tls' },
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', lastTransitionTime: '2025-01-01T00:00:00Z' }] },
    });
  }
}

interface Setup {
  svc: TestService;
  kube: KubeApiServer;
  sink: NotifySink;
  databaseUrl: string;
}

async function setup(t: TestContext, label: string, matrix = SHIPPED): Promise<Setup> {
  const kube = await startKubeApiServer();
  t.after(() => kube.close());
  seed(kube);
  const sink = await startNotifySink();
  t.after(() => sink.close());
  const iso = isolation(label);
  const svc = await startService(t, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: { KUBECONFIG: await kube.writeKubeconfig(), NOTIFY_WEBHOOK_URL: sink.url },
  });
  t.after(() => iso.drop());
  return { svc, kube, sink, databaseUrl: iso.databaseUrl };
}

const final = (svc: TestService, id: string): Promise<RunBody> =>
  eventually(
    async () => {
      const run = await getRun(svc, id);
      return FINAL.has(run.status) ? run : undefined;
    },
    15_000,
    `run ${id} final`,
  );

const outcome = (run: { status: string; reason?: string | null }) => (run.reason ? `${run.status}:${run.reason}` : run.status);
const byRemediation = (runs: DeliveredRun[], name: string) => runs.filter((r) => r.remediation === name);

const highErrorRate = (namespace: string) =>
  alertMessage([{ labels: { alertname: 'HighErrorRate', namespace, deployment: 'conduit-api', severity: 'high', service: 'conduit' } }]);
const memoryHigh = (namespace: string, pod = POD) =>
  alertMessage([
    {
      labels: { alertname: 'ConduitHighMemoryUsage', namespace, pod, container: 'api', deployment: 'conduit-api', severity: 'medium' },
    },
  ]);
const certificateExpiring = (namespace: string, certificate = 'conduit-tls') =>
  alertMessage([{ labels: { alertname: 'CertificateExpiringSoon', namespace, name: certificate, certificate, severity: 'low' } }]);
const poolExhausted = (namespace: string) =>
  alertMessage([{ labels: { alertname: 'DatabaseConnectionPoolExhausted', database: 'conduit', namespace, deployment: 'conduit-api' } }]);

/** A run failed out_of_scope at intake, naming the param, its value and the pattern, with nothing between. */
function outOfScope(run: RunBody, param: string, value: string, pattern: string, at: 'intake' | 'execution' = 'intake'): void {
  const what = `${run.remediation} ${run.action}`;
  assert.equal(outcome(run), 'failed:out_of_scope', what);
  assert.equal(run.error, `${param} ${JSON.stringify(value)} is outside the action's scope: allow.${param} is ${pattern}`, what);
  const failed = run.events.find((e) => e.type === 'failed');
  assert.ok(failed, `${what}: ${JSON.stringify(run.events)}`);
  const detail = failed.detail as Record<string, unknown>;
  assert.deepEqual({ param: detail['param'], value: detail['value'], pattern: detail['pattern'] }, { param, value, pattern }, what);
  if (at === 'execution') assert.equal(detail['at'], 'execution', what);
  assert.ok(!run.events.some((e) => e.type === 'started'), `${what} never started`);
}

describe('target scopes of the shipped matrix', () => {
  it('kube-system: scale, restart, set-resources, delete-pod and renewal fail out_of_scope, and Kubernetes gets no request', async (t) => {
    const { svc, kube, sink } = await setup(t, 'scope_a');
    const scale = await deliver(svc, highErrorRate('kube-system'));
    const memory = await deliver(svc, memoryHigh('kube-system'));
    const renew = await deliver(svc, certificateExpiring('kube-system'));
    const pool = await deliver(svc, poolExhausted('kube-system'));

    // Refused at intake, before approval: nobody is one approval away from kube-system.
    const [scaleRun] = byRemediation(scale, 'kubernetes.scale-deployment');
    assert.equal(scaleRun!.status, 'failed');
    outOfScope(await getRun(svc, scaleRun!.id), 'namespace', 'kube-system', NAMESPACES);
    await approve(svc, scaleRun!.id).expect(409);
    for (const name of ['kubernetes.set-resources', 'kubernetes.delete-pod']) {
      const [run] = byRemediation(memory, name);
      assert.equal(run!.status, 'failed', name);
      outOfScope(await getRun(svc, run!.id), 'namespace', 'kube-system', NAMESPACES);
    }
    const [renewRun] = byRemediation(renew, 'cert-manager.renew-certificate');
    outOfScope(await final(svc, renewRun!.id), 'namespace', 'kube-system', NAMESPACES);
    // A restart that waits for the kill is checked when it moves on: the kill failed (no target database), so the
    // restart for a failed kill goes on, and is refused then.
    const [, , restartOnFailure] = pool;
    assert.equal(restartOnFailure!.remediation, 'kubernetes.rollout-restart');
    assert.equal(restartOnFailure!.status, 'waiting');
    outOfScope(await final(svc, restartOnFailure!.id), 'namespace', 'kube-system', NAMESPACES);

    // Everything else of these alerts ends too: the notices that follow a failure go out, the others are skipped.
    for (const run of [...scale, ...memory, ...renew, ...pool]) await final(svc, run.id);
    const renewFailed = await final(svc, renew[2]!.id);
    assert.equal(outcome(renewFailed), 'succeeded', 'the notice of the failed renewal');
    assert.match(
      String((renewFailed.params as Record<string, unknown>)['text']),
      /triggering its renewal failed: namespace "kube-system" is outside the action's scope/,
    );
    await eventually(async () => sink.messages.some((m) => m.text.includes('triggering its renewal failed')) || undefined);
    assert.deepEqual(kube.requests, [], 'no request reached the Kubernetes API');
    assert.equal((kube.get('deployments', 'kube-system', 'conduit-api')!['spec'] as { replicas: number }).replicas, 2);
    assert.ok(kube.get('pods', 'kube-system', POD), 'the pod is still there');
  });

  it("Conduit's own objects: out of scope pods and certificates of the conduit namespace are refused too", async (t) => {
    const { svc, kube } = await setup(t, 'scope_b');
    const memory = await deliver(svc, memoryHigh('conduit', 'postgres-0'));
    const [deletePod] = byRemediation(memory, 'kubernetes.delete-pod');
    outOfScope(await getRun(svc, deletePod!.id), 'pod', 'postgres-0', '^(?:conduit-api-[a-z0-9]{1,10}-[a-z0-9]{5})$');
    const [setResources] = byRemediation(memory, 'kubernetes.set-resources');
    assert.equal(setResources!.status, 'pending_approval', 'the deployment is in scope');
    const renew = await deliver(svc, certificateExpiring('conduit', 'ingress-nginx-admission'));
    outOfScope(await final(svc, renew[0]!.id), 'certificate', 'ingress-nginx-admission', '^(?:conduit(?:-[a-z0-9]+)*-tls)$');
    assert.deepEqual(kube.requests, []);
  });

  it('inside the scope the same alerts act: renewal on its own, scale and delete-pod once approved', async (t) => {
    const { svc, kube } = await setup(t, 'scope_c');
    const renew = await deliver(svc, certificateExpiring('conduit'));
    const renewed = await settled(svc, renew[0]!.id, 'succeeded', 15_000);
    assert.match(
      String((renewed.result as Record<string, unknown> | null)?.['summary']),
      /^Triggered re-issuance of certificate conduit\/conduit-tls/,
    );
    const certificateWrites = kube.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/certificates/conduit-tls/status'));
    assert.equal(certificateWrites.length, 1);
    assert.ok(
      kube.requests.every((r) => r.path.includes('/namespaces/conduit/')),
      'only the conduit namespace was asked',
    );

    const [scale] = byRemediation(await deliver(svc, highErrorRate('conduit-staging')), 'kubernetes.scale-deployment');
    assert.equal(scale!.status, 'pending_approval', 'conduit-staging is in scope');
    const [scaleHere] = byRemediation(await deliver(svc, highErrorRate('conduit')), 'kubernetes.scale-deployment');
    assert.equal(scaleHere!.status, 'pending_approval');
    await approve(svc, scaleHere!.id).expect(200);
    const scaled = await settled(svc, scaleHere!.id, 'succeeded', 15_000);
    assert.match(String((scaled.result as Record<string, unknown> | null)?.['summary']), /conduit\/conduit-api/);
    assert.equal((kube.get('deployments', 'conduit', 'conduit-api')!['spec'] as { replicas: number }).replicas, 4);

    const [deletePod] = byRemediation(await deliver(svc, memoryHigh('conduit')), 'kubernetes.delete-pod');
    assert.equal(deletePod!.status, 'pending_approval');
    await approve(svc, deletePod!.id).expect(200);
    const deleted = await final(svc, deletePod!.id);
    assert.equal(outcome(deleted), 'succeeded', JSON.stringify(deleted.events));
    assert.equal(kube.get('pods', 'conduit', POD), undefined, 'the API pod was deleted');
    assert.ok(kube.get('pods', 'kube-system', POD), 'its namesake in kube-system was not');
  });
});

describe('target scopes at execution', () => {
  const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: renew
    matchers: ['alertname="Renew"']
    severity: low
    actions:
      - remediation: cert-manager.renew-certificate
        params: { namespace: '{{ labels.namespace }}', certificate: conduit-tls }
        allow: { namespace: 'conduit' }
        approval: required
`;

  it('checks the stored params right before executing, with the scope the run was created with, whatever the matrix says now', async (t) => {
    const { svc, kube, databaseUrl } = await setup(t, 'scope_d', MATRIX);
    const [inScope] = await deliver(svc, alertMessage([{ labels: { alertname: 'Renew', namespace: 'conduit', n: '1' } }]));
    const [tampered] = await deliver(svc, alertMessage([{ labels: { alertname: 'Renew', namespace: 'conduit', n: '2' } }]));
    assert.equal(inScope!.status, 'pending_approval');
    assert.equal(tampered!.status, 'pending_approval');
    assert.deepEqual((await getRun(svc, tampered!.id)).gates.allow, { namespace: '^(?:conduit)$' }, 'the run keeps its scope');

    // A matrix reloaded meanwhile allows any namespace; the run's params are changed behind the service's back.
    writeFileSync(svc.services.config.matrixPath, MATRIX.replace("allow: { namespace: 'conduit' }", "allow: { namespace: '.*' }"));
    assert.equal(svc.services.matrix.reload('test').ok, true);
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const updated = await db.query(`UPDATE runs SET params = params || '{"namespace": "kube-system"}' WHERE id = $1`, [tampered!.id]);
      assert.equal(updated.rowCount, 1);
    } finally {
      await db.end();
    }

    await approve(svc, tampered!.id).expect(200);
    outOfScope(await final(svc, tampered!.id), 'namespace', 'kube-system', '^(?:conduit)$', 'execution');
    assert.equal(kube.requests.length, 0, 'nothing was asked of Kubernetes');

    await approve(svc, inScope!.id).expect(200);
    await settled(svc, inScope!.id, 'succeeded', 15_000);
    assert.ok(kube.requests.length > 0);
    assert.ok(
      kube.requests.every((r) => r.path.includes('/namespaces/conduit/')),
      kube.requests.map((r) => r.path).join('\n'),
    );
  });
});
