/**
 * Reverts end to end: the real service, PostgreSQL, Redis and BullMQ worker, with the Conduit Admin
 * API and Kubernetes API stand-ins as targets. A revert is a run of its own (phase `revert`), created
 * on demand (`POST /api/runs/:id/revert`), after `revertAfter`, or when a verification ends unverified.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import request from 'supertest';
import { createCatalogue } from '../../remediations/catalogue.js';
import { ConfigError } from '../../src/errors.js';
import { parseMatrix } from '../../src/matrix/load.js';
import { approve, deliver, getRun, settled, type Api, type RunBody } from '../support/api.js';
import { startConduitAdmin, type ConduitAdmin } from '../support/conduit-admin.js';
import { alertMessage, eventually, isolation, startService, TOKENS, type TestService } from '../support/harness.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.js';

const MATRIX = `
rules:
  - name: provider
    matchers: ['alertname="ProviderDown"']
    actions:
      - id: disable
        remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
        cooldown: 0
  - name: provider-timed
    matchers: ['alertname="ProviderTimed"']
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
        cooldown: 0
        revertAfter: 1s
  - name: provider-gated-revert
    matchers: ['alertname="ProviderGatedRevert"']
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
        cooldown: 0
        revertApproval: required
  - name: scale
    matchers: ['alertname="Busy"']
    actions:
      - remediation: kubernetes.scale-deployment
        params: { namespace: conduit, deployment: '{{ labels.deployment }}', by: 2, max: 10 }
        cooldown: 0
        verify:
          query: 'up{job="never-there"} == 1'
          within: 1s
          every: 200ms
        onUnverified: revert
`;

interface Setup {
  svc: TestService;
  conduit: ConduitAdmin;
  kube: KubeApiServer;
}

/** The service with the stand-ins as targets; all gone when `t` ends. `PROMETHEUS_URL` is unset, so a verification cannot succeed. */
async function setup(t: TestContext, label: string): Promise<Setup> {
  const conduit = await startConduitAdmin();
  t.after(() => conduit.close());
  const kube = await startKubeApiServer();
  t.after(() => kube.close());
  const iso = isolation(label);
  const svc = await startService(t, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: {
      CONDUIT_ADMIN_URL: conduit.url,
      CONDUIT_ADMIN_KEY: conduit.apiKey,
      KUBECONFIG: await kube.writeKubeconfig(),
      SWEEP_INTERVAL: '100ms',
    },
  });
  t.after(() => iso.drop());
  return { svc, conduit, kube };
}

const revert = (svc: Api, id: string, token = TOKENS.approver) =>
  request(svc.url).post(`/api/runs/${id}/revert`).set('Authorization', `Bearer ${token}`).send({});

const enabled = (conduit: ConduitAdmin, name: string) => conduit.providers.find((p) => p.providerName === name)!.isEnabled;

async function disabled(s: Setup, alertname: string, provider: string): Promise<RunBody> {
  const [run] = await deliver(s.svc, alertMessage([{ labels: { alertname, provider } }]));
  const done = await settled(s.svc, run!.id, 'succeeded');
  assert.equal(enabled(s.conduit, provider), false);
  return done;
}

describe('reverts', () => {
  it('on demand: the revert run enables the provider again, linked both ways; a second revert is refused', async (t) => {
    const s = await setup(t, 'rev_manual');
    const original = await disabled(s, 'ProviderDown', 'openai');
    await revert(s.svc, original.id, TOKENS.viewer).expect(403);
    const res = await revert(s.svc, original.id).expect(200);
    const created = res.body as RunBody;
    assert.deepEqual(
      [created.phase, created.remediation, created.revertOf, created.action],
      ['revert', 'conduit.enable-provider', original.id, 'revert:firing:0'],
    );
    assert.deepEqual(created.params, { provider: '1', ifEnabled: false });
    const done = await settled(s.svc, created.id, 'succeeded');
    assert.equal(enabled(s.conduit, 'openai'), true);
    assert.equal((done.events[0]!.detail as Record<string, unknown>)['cause'], 'manual');
    assert.equal((done.events[0]!.detail as Record<string, unknown>)['by'], 'bob');
    const after = await getRun(s.svc, original.id);
    assert.equal(after.revertedBy, created.id);
    assert.ok(after.events.some((e) => e.type === 'revert_created' && (e.detail as Record<string, unknown>)['runId'] === created.id));

    const again = await revert(s.svc, original.id).expect(409);
    assert.match(again.body.message, /reverted already by run/);
    await revert(s.svc, created.id).expect(409);
    await revert(s.svc, '00000000-0000-4000-8000-000000000000').expect(404);
  });

  it('never undoes a change made since: the provider re-enabled by hand, the revert is skipped changed_since', async (t) => {
    const s = await setup(t, 'rev_changed');
    const original = await disabled(s, 'ProviderDown', 'anthropic');
    s.conduit.providers.find((p) => p.providerName === 'anthropic')!.isEnabled = true;
    const created = (await revert(s.svc, original.id).expect(200)).body as RunBody;
    const done = await eventually(
      async () => {
        const r = await getRun(s.svc, created.id);
        return r.status === 'skipped' ? r : undefined;
      },
      10_000,
      'the revert to be refused',
    );
    assert.equal(done.reason, 'changed_since');
    assert.match(done.error ?? '', /enabled now, not as the reverted run left it/);
    assert.equal(enabled(s.conduit, 'anthropic'), true, 'left as the person set it');
    assert.equal(s.conduit.requests.filter((r) => r.method === 'PUT').length, 1, 'only the original disable wrote to Conduit');
  });

  it('refuses a run that cannot be reverted: failed, changed nothing, no inverse', async (t) => {
    const s = await setup(t, 'rev_refuse');
    const [missing] = await deliver(s.svc, alertMessage([{ labels: { alertname: 'ProviderDown', provider: 'azure' } }]));
    await settled(s.svc, missing!.id, 'failed');
    assert.match((await revert(s.svc, missing!.id).expect(409)).body.message, /it is failed/);
    s.conduit.providers.find((p) => p.providerName === 'openai')!.isEnabled = false;
    const [noop] = await deliver(s.svc, alertMessage([{ labels: { alertname: 'ProviderDown', provider: 'openai' } }]));
    await settled(s.svc, noop!.id, 'succeeded');
    assert.match((await revert(s.svc, noop!.id).expect(409)).body.message, /changed nothing/);
  });

  it('revertAfter: undone once, automatically, after its delay', async (t) => {
    const s = await setup(t, 'rev_after');
    const original = await disabled(s, 'ProviderTimed', 'openai');
    const linked = await eventually(
      async () => {
        const r = await getRun(s.svc, original.id);
        return r.revertedBy ? r : undefined;
      },
      10_000,
      'the revert to be created',
    );
    const done = await settled(s.svc, linked.revertedBy!, 'succeeded');
    assert.equal((done.events[0]!.detail as Record<string, unknown>)['cause'], 'revert_after');
    assert.ok(Date.parse(done.createdAt) - Date.parse(original.updatedAt) >= 900, 'not before revertAfter');
    assert.equal(enabled(s.conduit, 'openai'), true);
    await new Promise((r) => setTimeout(r, 500));
    const { rows } = await s.svc.services.pool.query('SELECT count(*)::int AS n FROM runs WHERE revert_of = $1', [original.id]);
    assert.equal(rows[0].n, 1, 'exactly one revert');
    assert.equal((await getRun(s.svc, original.id)).revertDue, null);
  });

  it('revertAfter never undoes a change made meanwhile: re-enabled by hand, its revert is skipped changed_since', async (t) => {
    const s = await setup(t, 'rev_after_changed');
    const [run] = await deliver(s.svc, alertMessage([{ labels: { alertname: 'ProviderTimed', provider: 'anthropic' } }]));
    await settled(s.svc, run!.id, 'succeeded');
    s.conduit.providers.find((p) => p.providerName === 'anthropic')!.isEnabled = true;
    const linked = await eventually(
      async () => {
        const r = await getRun(s.svc, run!.id);
        return r.revertedBy ? r : undefined;
      },
      10_000,
      'the revert to be created',
    );
    const refused = await eventually(
      async () => {
        const r = await getRun(s.svc, linked.revertedBy!);
        return r.status === 'skipped' ? r : undefined;
      },
      10_000,
      'the revert to be refused',
    );
    assert.equal(refused.reason, 'changed_since');
    assert.equal(enabled(s.conduit, 'anthropic'), true);
  });

  it('revertApproval: required makes the revert wait for a human', async (t) => {
    const s = await setup(t, 'rev_gated');
    const original = await disabled(s, 'ProviderGatedRevert', 'openai');
    const created = (await revert(s.svc, original.id).expect(200)).body as RunBody;
    assert.equal(created.status, 'pending_approval');
    assert.equal(enabled(s.conduit, 'openai'), false);
    await approve(s.svc, created.id).expect(200);
    await settled(s.svc, created.id, 'succeeded');
    assert.equal(enabled(s.conduit, 'openai'), true);
  });

  it('onUnverified: revert scales the deployment back to its recorded count', async (t) => {
    const s = await setup(t, 'rev_unverified');
    s.kube.put({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'conduit-api', namespace: 'conduit' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'api' } },
        template: { metadata: { labels: { app: 'api' } }, spec: { containers: [] } },
      },
    });
    const replicas = () => (s.kube.get('deployments', 'conduit', 'conduit-api')!['spec'] as { replicas: number }).replicas;
    const [run] = await deliver(s.svc, alertMessage([{ labels: { alertname: 'Busy', deployment: 'conduit-api' } }]));
    await settled(s.svc, run!.id, 'succeeded');
    assert.equal(replicas(), 4);
    const unverified = await eventually(
      async () => {
        const r = await getRun(s.svc, run!.id);
        return r.verification === 'unverified' && r.revertedBy ? r : undefined;
      },
      10_000,
      'unverified, then reverted',
    );
    const back = await settled(s.svc, unverified.revertedBy!, 'succeeded');
    assert.deepEqual(back.params, { namespace: 'conduit', deployment: 'conduit-api', replicas: 2, max: 2, ifReplicas: 4 });
    assert.equal(replicas(), 2);
    assert.equal((back.events[0]!.detail as Record<string, unknown>)['cause'], 'unverified');
    const metrics = (await request(s.svc.url).get('/metrics').expect(200)).text;
    assert.match(metrics, /remediator_reverts_total\{remediation="kubernetes.scale-deployment"\} 1/);
    assert.match(metrics, /remediator_verifications_total\{remediation="kubernetes.scale-deployment",result="unverified"\} 1/);
  });

  it('revert settings on a remediation without an inverse stop the matrix from loading', () => {
    const catalogue = createCatalogue();
    const base = (extra: string) => `
rules:
  - name: pool
    matchers: ['alertname="Pool"']
    actions:
      - remediation: postgres.kill-idle-connections
        params: { database: conduit }
${extra}`;
    for (const [extra, field] of [
      ["        verify: { query: 'up == 1', within: 2m }\n        onUnverified: revert", 'onUnverified'],
      ['        revertAfter: 1h', 'revertAfter'],
      ['        revertApproval: auto', 'revertApproval'],
    ] as const) {
      assert.throws(
        () => parseMatrix(base(extra), 'm.yaml', catalogue),
        (err: unknown) => err instanceof ConfigError && err.message.includes(`.${field}: postgres.kill-idle-connections has no inverse`),
        extra,
      );
    }
  });
});
