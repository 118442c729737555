import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import request from 'supertest';
import { startConduitAdmin, type ConduitAdmin } from '../support/conduit-admin.js';
import { settled, webhook } from '../support/api.js';
import { answersWithCode } from '../support/assertions.js';
import { alertMessage, eventually, isolation, startService, TOKENS } from '../support/harness.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';

const FIXTURES = new URL('../fixtures/alertmanager/', import.meta.url);
const firing = JSON.parse(readFileSync(new URL('firing-provider-down.json', FIXTURES), 'utf8'));

const MATRIX = `
defaults: { approvalTimeout: 30m, cooldown: 0s }
rules:
  - name: provider-down
    matchers: ['alertname="ConduitProviderDown"', 'severity=~"critical|high"']
    severity: critical
    responseTime: 5m
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
      - remediation: notify.webhook
        params: { text: 'Provider {{ labels.provider }} disabled: {{ annotations.summary }}' }
`;

describe('the alert path: webhook -> matrix -> run -> queue -> remediation', (s) => {
  const iso = isolation('path');
  let conduit: ConduitAdmin;
  let sink: NotifySink;
  let db: pg.Pool;

  before(async () => {
    conduit = await startConduitAdmin();
    sink = await startNotifySink();
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
  });
  // Started once Conduit's fake and the sink answer, closed before they are.
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { CONDUIT_ADMIN_URL: conduit.url, CONDUIT_ADMIN_KEY: conduit.apiKey, NOTIFY_WEBHOOK_URL: sink.url },
  }));
  after(async () => {
    await db.end();
    await conduit.close();
    await sink.close();
    await iso.drop();
  });

  const hook = () => webhook(svc);
  const runsCount = async () => Number((await db.query('SELECT count(*) AS n FROM runs')).rows[0].n);

  it('disables the provider named by the firing fixture, keeping its baseUrl, and notifies on-call', async () => {
    const res = await hook().send(firing).expect(200);
    assert.equal(res.body.received, 1);
    assert.equal(res.body.runs.length, 2);
    const disable = res.body.runs.find((r: { remediation: string }) => r.remediation === 'conduit.disable-provider');
    assert.equal(disable.status, 'queued');
    assert.equal(disable.duplicate, false);

    const run = await settled(svc, disable.id, 'succeeded', 10_000);
    const puts = conduit.requests.filter((r) => r.method === 'PUT');
    assert.equal(puts.length, 1);
    assert.deepEqual(puts[0]!.body, { id: 1, providerName: 'openai', baseUrl: 'https://api.openai.com/v1', isEnabled: false });
    const openai = conduit.providers.find((p) => p.providerName === 'openai')!;
    assert.equal(openai.isEnabled, false);
    assert.equal(openai.baseUrl, 'https://api.openai.com/v1');

    assert.equal(run.target, 'conduit/provider/openai');
    assert.deepEqual(run.params, { provider: 'openai' });
    assert.equal(run.attempts, 1);
    assert.equal(run.alert.fingerprint, '54e69878f8d451e8');
    assert.equal(run.alert.startsAt, '2026-11-27T13:31:39.202045328Z');
    assert.deepEqual(
      run.events.map((e: { type: string }) => e.type),
      ['created', 'queued', 'started', 'succeeded'],
    );
    assert.match(run.plan!, /openai/);

    await eventually(async () => sink.messages.length === 1, 5000, 'the notification');
    assert.equal(sink.messages[0]!.text, 'Provider openai disabled: Provider openai down');
  });

  it('answers a re-delivery with the existing runs, marked duplicate, and executes nothing again', async () => {
    const before = await runsCount();
    const res = await hook().send(firing).expect(200);
    assert.ok(res.body.runs.every((r: { duplicate: boolean }) => r.duplicate));
    assert.equal(await runsCount(), before);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(conduit.requests.filter((r) => r.method === 'PUT').length, 1);
  });

  it('creates one run per action from 50 concurrent deliveries of one message', async () => {
    const msg = alertMessage([{ labels: { alertname: 'ConduitProviderDown', provider: 'anthropic', severity: 'critical' } }]);
    const responses = await Promise.all(Array.from({ length: 50 }, () => hook().send(msg)));
    assert.ok(
      responses.every((r) => r.status === 200),
      `statuses: ${responses.map((r) => r.status).join(',')}`,
    );
    const all = responses.flatMap((r) => r.body.runs as Array<{ id: string; remediation: string; duplicate: boolean }>);
    const fresh = all.filter((r) => !r.duplicate);
    assert.equal(fresh.length, 2, 'exactly one new run per action');
    assert.equal(new Set(all.map((r) => r.id)).size, 2, 'every response names the same two runs');
    const { rows } = await db.query(`SELECT count(*) AS n FROM runs WHERE alert->'labels'->>'provider' = 'anthropic'`);
    assert.equal(Number(rows[0].n), 2);
    await eventually(
      async () => conduit.providers.find((p) => p.providerName === 'anthropic')?.isEnabled === false,
      10_000,
      'anthropic disabled',
    );
  });

  it('counts an alert that matches no rule, by alertname, and still answers 200; a resolution of a rule without onResolved matched', async () => {
    const before = await runsCount();
    const res = await hook()
      .send(alertMessage([{ labels: { alertname: 'SomethingElse' } }]))
      .expect(200);
    assert.deepEqual(res.body, { received: 1, runs: [] });
    assert.equal(await runsCount(), before);
    const resolved = await hook()
      .send(alertMessage([{ labels: { alertname: 'ConduitProviderDown', severity: 'critical', provider: 'x' }, status: 'resolved' }]))
      .expect(200);
    assert.deepEqual(resolved.body.runs, []);
    const metrics = (await request(svc.url).get('/metrics').expect(200)).text;
    assert.match(metrics, /remediator_alerts_unmatched_total\{alertname="SomethingElse"\} 1/);
    assert.doesNotMatch(metrics, /remediator_alerts_unmatched_total\{alertname="ConduitProviderDown"\}/);
  });

  it('refuses bad bodies with 400 naming the field, and stores nothing', async () => {
    const before = await runsCount();
    const cases: Array<[unknown, RegExp]> = [
      [{ ...firing, version: '3' }, /version/],
      [(({ alerts: _a, ...rest }) => rest)(firing), /alerts/],
      [{ ...firing, alerts: 'nope' }, /alerts/],
      [{ ...firing, alerts: [{ ...firing.alerts[0], labels: { provider: 5 } }] }, /labels/],
      [{ ...firing, alerts: [{ ...firing.alerts[0], status: 'weird' }] }, /status/],
      [{ ...firing, alerts: [{ ...firing.alerts[0], fingerprint: undefined }] }, /fingerprint/],
    ];
    for (const [body, field] of cases) {
      const res = await hook()
        .send(body as object)
        .expect(400);
      assert.match(res.body.message, field);
      assert.equal(res.body.statusCode, 400);
      assert.ok(res.body.code);
      assert.equal(res.body.error, 'Bad Request');
    }
    const notJson = await hook().set('Content-Type', 'application/json').send('{"version": "4", oops').expect(400);
    assert.equal(notJson.body.statusCode, 400);
    assert.equal(await runsCount(), before);
  });

  it('accepts fields added by newer Alertmanager versions', async () => {
    const msg = alertMessage([{ labels: { alertname: 'ConduitProviderDown', provider: 'groq', severity: 'high' } }]);
    const res = await hook()
      .send({
        ...msg,
        notification_reason: 'new_alerts',
        routeLabels: { team: 'sre' },
        alerts: msg.alerts.map((a) => ({ ...a, extra: 1 })),
      })
      .expect(200);
    assert.equal(res.body.runs.length, 2);
  });

  it('refuses a missing or wrong token with 401 and an oversized body with 413', async () => {
    const before = await runsCount();
    await request(svc.url).post('/webhooks/alertmanager').send(firing).expect(401);
    const wrong = await request(svc.url).post('/webhooks/alertmanager').set('Authorization', 'Bearer nope').send(firing).expect(401);
    answersWithCode(wrong, 401, 'UNAUTHORIZED');
    const huge = { ...firing, padding: 'x'.repeat(5 * 1024 * 1024 + 10) };
    const res = await hook().send(huge);
    assert.equal(res.status, 413);
    assert.equal(await runsCount(), before);
  });

  it('lists runs newest first with filters and cursor paging, for viewers only', async () => {
    await request(svc.url).get('/api/runs').expect(401);
    await request(svc.url).get('/api/runs').set('Authorization', 'Bearer unknown-token-000000').expect(401);
    const auth = `Bearer ${TOKENS.viewer}`;
    const page1 = await request(svc.url).get('/api/runs?limit=2').set('Authorization', auth).expect(200);
    assert.equal(page1.body.runs.length, 2);
    assert.ok(page1.body.nextCursor);
    const page2 = await request(svc.url).get(`/api/runs?limit=2&cursor=${page1.body.nextCursor}`).set('Authorization', auth).expect(200);
    const ids = [...page1.body.runs, ...page2.body.runs].map((r: { id: string }) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'pages do not overlap');
    const created = [...page1.body.runs, ...page2.body.runs].map((r: { createdAt: string }) => Date.parse(r.createdAt));
    assert.deepEqual(
      [...created].sort((a, b) => b - a),
      created,
      'newest first',
    );
    const filtered = await request(svc.url).get('/api/runs?remediation=notify.webhook&limit=100').set('Authorization', auth).expect(200);
    assert.ok(filtered.body.runs.length >= 1);
    assert.ok(filtered.body.runs.every((r: { remediation: string }) => r.remediation === 'notify.webhook'));
    await request(svc.url).get('/api/runs?status=bogus').set('Authorization', auth).expect(400);
    await request(svc.url).get('/api/runs?limit=0').set('Authorization', auth).expect(400);
    await request(svc.url).get('/api/runs/00000000-0000-4000-8000-000000000000').set('Authorization', auth).expect(404);
  });

  it('exports the metrics SPEC names', async () => {
    const res = await request(svc.url).get('/metrics').expect(200);
    for (const name of [
      'remediator_alerts_received_total',
      'remediator_runs_total',
      'remediator_run_duration_seconds_bucket',
      'remediator_approvals_pending',
      'remediator_queue_jobs',
      'remediator_paused',
      'remediator_process_cpu_seconds_total',
    ]) {
      assert.ok(res.text.includes(name), `${name} missing`);
    }
    assert.match(res.text, /remediator_runs_total\{rule="provider-down",remediation="conduit.disable-provider",status="succeeded"\} [1-9]/);
  });

  it(
    'exports names that pass promtool check metrics',
    { skip: spawnSync('sh', ['-c', 'command -v promtool']).status === 0 ? false : 'promtool not installed' },
    async () => {
      const res = await request(svc.url).get('/metrics').expect(200);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: res.text, encoding: 'utf8', timeout: 30_000 });
      assert.equal(check.status, 0, check.stdout + check.stderr);
    },
  );

  it('is live and ready while Redis and PostgreSQL answer', async () => {
    await request(svc.url).get('/health/live').expect(200);
    const ready = await request(svc.url).get('/health/ready').expect(200);
    assert.deepEqual(ready.body.checks, { postgres: 'ok', redis: 'ok' });
  });
});
