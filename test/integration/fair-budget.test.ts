/**
 * A fair global budget, end to end on the real service: `limits.global.reserve` keeps the last slots
 * for critical rules, notices neither count nor are stopped, and a run that failed without touching its
 * target gives back what it took (budget, rate limit, cooldown). With the shipped matrix: 30
 * certificate alerts with random names leave the budget to a provider outage.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { Redis } from 'ioredis';
import { defineRemediation, RemediationError, type RemediationErrorCode } from '../../remediations/types.js';
import { deliver, getRun, type DeliveredRun, type RunBody } from '../support/api.js';
import { startConduitAdmin } from '../support/conduit-admin.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService, type TestService } from '../support/harness.js';
import { startKubeApiServer } from '../support/kube-api-server.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';
import { executionsKey } from '../support/test-remediations.js';

const SHIPPED = readFileSync(fileURLToPath(new URL('../../config/response-matrix.yaml', import.meta.url)), 'utf8');
const FINAL = new Set(['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run']);

/**
 * Fails its nth execution of a run with the nth code of `fail` (comma separated; `target_error` retryable),
 * succeeds once they are used up. It does nothing else: whatever the code says, the target is untouched.
 */
const outcomes = defineRemediation({
  name: 'test.outcome',
  summary: 'Test remediation: fails with the codes it is given, then succeeds',
  runbookStep: 'none',
  params: Type.Object({ key: Type.String(), fail: Type.String() }, { additionalProperties: false }),
  requires: 'targetRedis',
  target: (p) => `test/${p.key}`,
  plan: (p) => `fail with ${p.fail || 'nothing'} for ${p.key}`,
  async execute(p, ctx) {
    const redis = ctx.targets.targetRedis!;
    const n = await redis.incr(`${ctx.targets.settings.queuePrefix}:test:outcome:${ctx.runId}`);
    const code = p.fail.split(',').filter(Boolean)[n - 1] as RemediationErrorCode | undefined;
    if (code) throw new RemediationError(code, `${code} on execution ${n} for ${p.key}`, { retryable: code === 'target_error' });
    return { execution: n };
  },
});

interface Setup {
  svc: TestService;
  sink: NotifySink;
  redis: Redis;
  prefix: string;
}

async function setup(t: TestContext, label: string, matrix: string, env: Record<string, string> = {}): Promise<Setup> {
  const sink = await startNotifySink();
  t.after(() => sink.close());
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.disconnect());
  const iso = isolation(label);
  const svc = await startService(t, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: { TARGET_REDIS_URL: REDIS_URL, NOTIFY_WEBHOOK_URL: sink.url, ...env },
    extraRemediations: [outcomes],
  });
  t.after(() => iso.drop());
  return { svc, sink, redis, prefix: iso.prefix };
}

const final = (svc: TestService, id: string, timeoutMs = 20_000): Promise<RunBody> =>
  eventually(
    async () => {
      const run = await getRun(svc, id);
      return FINAL.has(run.status) ? run : undefined;
    },
    timeoutMs,
    `run ${id} final`,
  );
const allFinal = (svc: TestService, runs: DeliveredRun[]) => Promise.all(runs.map((r) => final(svc, r.id, 30_000)));
const outcome = (run: { status: string; reason?: string | null }) => (run.reason ? `${run.status}:${run.reason}` : run.status);
const tally = (runs: RunBody[]) => {
  const counts: Record<string, number> = {};
  for (const r of runs) counts[outcome(r)] = (counts[outcome(r)] ?? 0) + 1;
  return counts;
};
/** The runs in the global budget's window now. */
const inBudget = (s: Setup) => s.redis.zcard(`${s.prefix}:gates:global`);

describe('a fair global budget', () => {
  const MATRIX = `
defaults: { cooldown: 0s }
limits:
  global: { max: 30, per: 1h, reserve: { critical: 10 } }
rules:
  - name: chatter
    matchers: ['alertname="Chatter"']
    severity: low
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
  - name: chatter-notice
    matchers: ['alertname="ChatterNotice"']
    severity: low
    actions:
      - remediation: notify.webhook
        params: { text: 'chatter {{ labels.key }}' }
  - name: outage
    matchers: ['alertname="Outage"']
    severity: critical
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
      - remediation: notify.webhook
        params: { text: 'outage {{ labels.key }}' }
`;
  const chatter = (keys: string[]) => alertMessage(keys.map((key) => ({ labels: { alertname: 'Chatter', key } })));

  it('executes a critical alert after 30 low-severity ones; a further low one is suppressed; notices never count nor stop', async (t) => {
    const s = await setup(t, 'fair_a', MATRIX);
    const { svc, sink, redis } = s;
    const low = await deliver(svc, chatter(Array.from({ length: 30 }, (_, i) => `low-${i}`)));
    assert.equal(low.length, 30);
    assert.ok(
      low.every((r) => r.status === 'queued'),
      'none is stopped at intake: the budget is taken when they execute',
    );
    const lows = await allFinal(svc, low);
    // Low rules fill 20 of 30: the last 10 are critical's.
    assert.deepEqual(tally(lows), { succeeded: 20, 'suppressed:global_budget': 10 });
    assert.equal(await inBudget(s), 20);
    const executed = await Promise.all(lows.map(async (r) => Number((await redis.get(executionsKey(s.prefix, 'count', r.id))) ?? 0)));
    assert.equal(
      executed.reduce((a, b) => a + b, 0),
      20,
      'the suppressed ones never ran',
    );

    const [act, notice] = await deliver(svc, alertMessage([{ labels: { alertname: 'Outage', key: 'outage-1' } }]));
    assert.equal(act!.status, 'queued', 'the critical run is not stopped at intake');
    assert.equal(outcome(await final(svc, act!.id)), 'succeeded');
    assert.equal(outcome(await final(svc, notice!.id)), 'succeeded');
    assert.equal(await redis.get(executionsKey(s.prefix, 'count', act!.id)), '1');
    assert.equal(await inBudget(s), 21, 'the notice took no slot');

    const [another] = await deliver(svc, chatter(['low-late']));
    assert.equal(another!.status, 'suppressed');
    assert.equal(another!.remediation, 'test.count');
    const late = await getRun(svc, another!.id);
    assert.equal(late.reason, 'global_budget');
    const detail = late.events.at(-1)!.detail as { retryInMs: number };
    assert.ok(detail.retryInMs > 3_500_000 && detail.retryInMs <= 3_600_000, `until the oldest low run leaves: ${detail.retryInMs}`);

    // Notices of a low rule: sent whatever the budget, and counted nowhere.
    const notices = await deliver(svc, alertMessage(['n1', 'n2', 'n3'].map((key) => ({ labels: { alertname: 'ChatterNotice', key } }))));
    assert.deepEqual((await allFinal(svc, notices)).map(outcome), ['succeeded', 'succeeded', 'succeeded']);
    assert.equal(await inBudget(s), 21);

    // Critical runs fill the rest, up to 30; the 31st is stopped, but its notice still goes out.
    const outages = await deliver(
      svc,
      alertMessage(Array.from({ length: 9 }, (_, i) => ({ labels: { alertname: 'Outage', key: `outage-${i + 2}` } }))),
    );
    const outageRuns = await allFinal(svc, outages);
    assert.deepEqual(tally(outageRuns), { succeeded: 18 });
    assert.equal(await inBudget(s), 30);
    const [over, overNotice] = await deliver(svc, alertMessage([{ labels: { alertname: 'Outage', key: 'outage-11' } }]));
    assert.equal(outcome(await final(svc, over!.id)), 'suppressed:global_budget');
    assert.equal(outcome(await final(svc, overNotice!.id)), 'succeeded', 'a notice is never stopped by the budget');
    await eventually(async () => sink.received('outage outage-11') || undefined, 5000, 'the last outage notice');
  });
});

describe('a run that did not touch its target gives back what it took', () => {
  const MATRIX = `
limits:
  global: { max: 4, per: 1h }
rules:
  - name: outcome
    matchers: ['alertname="Outcome"']
    severity: low
    actions:
      - remediation: test.outcome
        params: { key: '{{ labels.key }}', fail: '{{ labels.fail }}' }
        cooldown: 1h
        limit: { max: 3, per: 1h }
  - name: scoped
    matchers: ['alertname="Scoped"']
    actions:
      - remediation: test.outcome
        params: { key: '{{ labels.key }}', fail: '' }
        allow: { key: 'inside-.*' }
        cooldown: 1h
`;
  let episode = 0;
  /** A new episode of the alert (its own startsAt): not a duplicate of the last one. */
  const fire = (alertname: string, labels: Record<string, string>) =>
    alertMessage([{ labels: { alertname, ...labels }, startsAt: new Date(Date.UTC(2026, 10, 27, 12, 0, ++episode)).toISOString() }]);
  const once = async (svc: TestService, alertname: string, labels: Record<string, string>) => {
    const [run] = await deliver(svc, fire(alertname, labels));
    return final(svc, run!.id);
  };
  const types = (run: RunBody) => run.events.map((e) => e.type);

  it('invalid_params, not_found and target_not_configured give back budget, rate limit and cooldown; refused does not', async (t) => {
    const s = await setup(t, 'giveback_a', MATRIX);
    const { svc } = s;
    // Four failures on two targets, each within the other's cooldown and together over the action's rate limit of 3.
    for (const [key, code] of [
      ['a', 'not_found'],
      ['a', 'invalid_params'],
      ['b', 'target_not_configured'],
      ['b', 'not_found'],
    ] as const) {
      const failed = await once(svc, 'Outcome', { key, fail: code });
      assert.equal(outcome(failed), `failed:${code}`, `${key} ${code}`);
      assert.equal(failed.attempts, 1);
      assert.ok(types(failed).includes('counters_released'), JSON.stringify(failed.events));
      assert.deepEqual(failed.events.find((e) => e.type === 'counters_released')?.detail, { reason: code });
      assert.equal(await inBudget(s), 0, `${key} ${code}: the budget slot is back`);
    }
    assert.equal(
      outcome(await once(svc, 'Outcome', { key: 'a', fail: '' })),
      'succeeded',
      'no cooldown, rate limit or budget is left taken',
    );
    assert.equal(outcome(await once(svc, 'Outcome', { key: 'a', fail: '' })), 'suppressed:cooldown', 'its own cooldown holds');
    assert.equal(outcome(await once(svc, 'Outcome', { key: 'b', fail: '' })), 'succeeded');
    assert.equal(await inBudget(s), 2);

    // A failure that may have reached the target keeps what it took.
    const touched = await once(svc, 'Outcome', { key: 'c', fail: 'refused' });
    assert.equal(outcome(touched), 'failed:refused');
    assert.ok(!types(touched).includes('counters_released'));
    assert.equal(await inBudget(s), 3);
    assert.equal(outcome(await once(svc, 'Outcome', { key: 'c', fail: '' })), 'suppressed:cooldown');
    assert.equal(outcome(await once(svc, 'Outcome', { key: 'd', fail: '' })), 'suppressed:rate_limit', 'three executions of the action');
  });

  it('a not_found after an earlier attempt failed keeps what it took: that attempt may have reached the target', async (t) => {
    const s = await setup(t, 'giveback_b', MATRIX);
    const retried = await once(s.svc, 'Outcome', { key: 'retried', fail: 'target_error,not_found' });
    assert.equal(outcome(retried), 'failed:not_found');
    assert.equal(retried.attempts, 2);
    assert.ok(!types(retried).includes('counters_released'), JSON.stringify(retried.events));
    assert.equal(await inBudget(s), 1);
    assert.equal(outcome(await once(s.svc, 'Outcome', { key: 'retried', fail: '' })), 'suppressed:cooldown');
  });

  it('out_of_scope takes nothing: the next run on the same target inside the scope executes', async (t) => {
    const s = await setup(t, 'giveback_c', MATRIX);
    const outside = await once(s.svc, 'Scoped', { key: 'elsewhere' });
    assert.equal(outcome(outside), 'failed:out_of_scope');
    assert.equal(outside.target, 'test/elsewhere');
    assert.equal(await inBudget(s), 0);
    const inside = await once(s.svc, 'Scoped', { key: 'inside-1' });
    assert.equal(outcome(inside), 'succeeded');
    assert.equal(outcome(await once(s.svc, 'Scoped', { key: 'inside-1' })), 'suppressed:cooldown');
  });
});

describe('the shipped matrix under a burst of certificate alerts', () => {
  it('30 CertificateExpiringSoon with random names spend nothing: the ConduitProviderDown after them is executed and notified', async (t) => {
    const kube = await startKubeApiServer();
    t.after(() => kube.close());
    const conduit = await startConduitAdmin();
    t.after(() => conduit.close());
    const s = await setup(t, 'fair_shipped', SHIPPED, {
      KUBECONFIG: await kube.writeKubeconfig(),
      CONDUIT_ADMIN_URL: conduit.url,
      CONDUIT_ADMIN_KEY: conduit.apiKey,
    });
    // 20 names Conduit's certificates could have (none exists), 10 that no Conduit certificate has.
    const names = [
      ...Array.from({ length: 20 }, () => `conduit-${randomBytes(4).toString('hex')}-tls`),
      ...Array.from({ length: 10 }, () => `x${randomBytes(4).toString('hex')}`),
    ];
    const burst = await deliver(
      s.svc,
      alertMessage(
        names.map((certificate) => ({
          labels: { alertname: 'CertificateExpiringSoon', namespace: 'conduit', name: certificate, certificate, severity: 'low' },
        })),
      ),
    );
    const renewals = burst.filter((r) => r.remediation === 'cert-manager.renew-certificate');
    assert.equal(renewals.length, 30);
    assert.deepEqual(tally(await allFinal(s.svc, renewals)), { 'failed:not_found': 20, 'failed:out_of_scope': 10 });
    assert.equal(await inBudget(s), 0, 'every renewal gave its slot back, or never took one');
    assert.ok(
      kube.requests.every((r) => r.method === 'GET'),
      'nothing was written to Kubernetes',
    );
    // Each name of the scope was looked up; the others asked nothing.
    const asked = new Set(kube.requests.map((r) => r.path.split('/').at(-1)));
    assert.deepEqual([...asked].sort(), names.slice(0, 20).sort());

    const [disable, disabledNotice] = await deliver(
      s.svc,
      alertMessage([
        {
          labels: { alertname: 'ConduitProviderDown', provider: 'openai', severity: 'critical', service: 'conduit' },
          annotations: { summary: 'Provider openai down' },
        },
      ]),
    );
    assert.equal(disable!.remediation, 'conduit.disable-provider');
    assert.equal(outcome(await final(s.svc, disable!.id)), 'succeeded');
    const told = await final(s.svc, disabledNotice!.id);
    assert.equal(outcome(told), 'succeeded');
    assert.equal(conduit.providers.find((p) => p.providerName === 'openai')!.isEnabled, false);
    assert.equal(await inBudget(s), 1, 'the disable took one slot, its notice none');
  });
});
