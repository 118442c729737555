/**
 * The closed loop end to end: `check.query` asks a REAL Prometheus right before a run acts whether the
 * condition still holds, and `verify` asks it after success whether the remediation helped. Prometheus
 * (1 s scrape and evaluation interval, its own TSDB, a free loopback port) scrapes a test exporter whose
 * `test_errors{key}` gauge each test sets; the whole service runs with its real BullMQ worker and sweeper
 * against the local PostgreSQL and Redis, each suite with its own database and QUEUE_PREFIX.
 *
 * Skipped only when no Prometheus binary is installed (and PROMETHEUS_BIN is not set): `apt-get install prometheus`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createCatalogue, remediations } from '../../remediations/catalogue.js';
import { parseMatrix } from '../../src/matrix/load.js';
import { createPrometheusClient } from '../../src/prometheus/client.js';
import { promqlString } from '../../src/prometheus/promql.js';
import { approve, deliver, getRun, reject, settled, type Api, type DeliveredRun, type RunBody } from '../support/api.js';
import { startConduitAdmin, type ConduitAdmin } from '../support/conduit-admin.js';
import { startExporter, type RunningExporter } from '../support/exporter.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService, TOKENS, type TestService } from '../support/harness.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';
import { prometheusSkipReason, type RunningPrometheus, startPrometheus } from '../support/prometheus.js';
import { executionsKey, testRemediations } from '../support/test-remediations.js';

const SKIP = prometheusSkipReason();

/** The error-rate series of one target, as the exporter serves it. */
const errorsOf = (key: string) => `test_errors{key="${promqlString(key)}"}`;

/**
 * An exporter, a Prometheus scraping it and a notify sink, started by a `before` hook of the calling suite
 * (register it before `startService`, whose options read `prom.url` and `sink.url`); `close` stops them.
 */
function closedLoopFixtures() {
  let exporter: RunningExporter | undefined;
  let prom: RunningPrometheus | undefined;
  let sink: NotifySink | undefined;
  before(async () => {
    exporter = await startExporter();
    sink = await startNotifySink();
    exporter.set('test_up', {}, 1);
    prom = await startPrometheus({ scrapeTargets: [exporter.hostPort] });
    await prom.waitForSample('test_up', () => true, 20_000);
  });
  const need = <T>(value: T | undefined, what: string): T => {
    assert.ok(value, `${what} not started`);
    return value;
  };
  return {
    get exporter() {
      return need(exporter, 'exporter');
    },
    get prom() {
      return need(prom, 'Prometheus');
    },
    get sink() {
      return need(sink, 'notify sink');
    },
    /** Sets the error rate of `key` and waits until Prometheus has scraped that value. */
    async setErrors(key: string, value: number): Promise<void> {
      need(exporter, 'exporter').set('test_errors', { key }, value);
      await need(prom, 'Prometheus').waitForSample(errorsOf(key), (s) => s.value === value, 15_000);
    },
    /** Removes the series of `key` and waits until Prometheus has marked it stale (no data). */
    async removeErrors(key: string): Promise<void> {
      need(exporter, 'exporter').remove('test_errors', { key });
      await need(prom, 'Prometheus').waitForSample(`absent(${errorsOf(key)})`, () => true, 15_000);
    },
    async close(): Promise<void> {
      await prom?.close();
      await exporter?.close();
      await sink?.close();
    },
  };
}

const TERMINAL = ['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run'];

/** Waits until the run has reached a final status and returns it with its timeline. */
const final = (svc: Api, id: string, timeoutMs = 15_000) =>
  eventually(
    async () => {
      const run = await getRun(svc, id);
      return TERMINAL.includes(run.status) ? run : undefined;
    },
    timeoutMs,
    `run ${id} final`,
  );

/** Waits until the run's verification is `verification`. */
const verification = (svc: Api, id: string, state: 'pending' | 'verified' | 'unverified', timeoutMs = 15_000) =>
  eventually(
    async () => {
      const run = await getRun(svc, id);
      return run.verification === state ? run : undefined;
    },
    timeoutMs,
    `run ${id} ${state}`,
  );

/** Waits until the run's timeline has at least `count` events of `type`. */
const hasEvent = (svc: Api, id: string, type: string, count = 1, timeoutMs = 10_000) =>
  eventually(
    async () => {
      const run = await getRun(svc, id);
      return events(run, type).length >= count ? run : undefined;
    },
    timeoutMs,
    `${count} ${type} event(s) of run ${id}`,
  );

const events = (run: RunBody, type: string) => run.events.filter((e) => e.type === type);
const detailOf = (run: RunBody, type: string): Record<string, unknown> => {
  const found = events(run, type);
  assert.ok(found.length > 0, `run ${run.id} has a ${type} event (it has: ${run.events.map((e) => e.type).join(', ')})`);
  return found[found.length - 1]!.detail as Record<string, unknown>;
};
const keyOf = (run: RunBody) => String((run.params as Record<string, unknown>)['key']);
const at = (run: RunBody, type: string) => Date.parse(run.events.find((e) => e.type === type)!.at);

/** The value of one sample of the service's /metrics (0 when the series is not there). */
async function metric(svc: Api, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await request(svc.url).get('/metrics').expect(200)).text;
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const got = line
      .slice(name.length + 1, line.lastIndexOf('}'))
      .split(',')
      .sort();
    if (JSON.stringify(got) === JSON.stringify(wanted)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const ENV = { TARGET_REDIS_URL: REDIS_URL, SWEEP_INTERVAL: '200ms' };

describe('closed-loop queries in the matrix', () => {
  const catalogue = createCatalogue([...remediations, ...testRemediations]);
  const action = (lines: string) => `
rules:
  - name: errors
    matchers: ['alertname="Errors"']
    actions:
      - id: scale
        remediation: test.count
        params: { key: '{{ labels.key }}' }
${lines}`;

  it('a label outside a string literal of a query is a load error naming the line and field', () => {
    assert.throws(
      () => parseMatrix(action("        check: { query: 'test_errors{key={{ labels.key }}} > 0.05' }"), 'm.yaml', catalogue),
      /m\.yaml:9:\d+: rules\[0\]\.actions\[0\]\.check\.query: .*outside any string literal/,
    );
    assert.throws(
      () =>
        parseMatrix(
          action("        verify: { query: 'vector({{ labels.key }})', within: 10s }\n        onUnverified: none"),
          'm.yaml',
          catalogue,
        ),
      /rules\[0\]\.actions\[0\]\.verify\.query: .*outside any string literal/,
    );
  });

  it('`when: verified` needs a verify on its predecessor; `revert` is not available yet', () => {
    const dependent = "      - remediation: test.count\n        after: scale\n        when: verified\n        params: { key: 'x' }";
    assert.throws(() => parseMatrix(action(dependent), 'm.yaml', catalogue), /actions\[1\]\.when: "verified" needs a verify on "scale"/);
    assert.throws(
      () =>
        parseMatrix(
          action('        verify: { query: \'test_errors{key="{{ labels.key }}"} < 0.05\', within: 10s }\n        onUnverified: revert'),
          'm.yaml',
          catalogue,
        ),
      /onUnverified: test\.count has no inverse to revert with/,
    );
    const ok = parseMatrix(
      action(`        check: { query: 'test_errors{key="{{ labels.key }}"} > 0.05' }
        verify: { query: 'test_errors{key="{{ labels.key }}"} < 0.05', within: 10s }
${dependent}`),
      'm.yaml',
      catalogue,
    );
    assert.equal(ok.rules[0]!.actions[0]!.verify?.everyMs, 30_000, 'every defaults to 30s');
    assert.equal(ok.rules[0]!.actions[0]!.onUnverified, 'escalate', 'onUnverified defaults to escalate');
  });
});

describe('check.query: the condition asked of Prometheus right before acting', { skip: SKIP }, (s) => {
  const iso = isolation('closed_check');
  const fx = closedLoopFixtures();
  const matrix = `
defaults: { cooldown: 0 }
rules:
  - name: errors
    matchers: ['alertname="Errors"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        check:
          query: 'test_errors{key="{{ labels.key }}"} > 0.05'
  - name: gated
    matchers: ['alertname="Gated"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        check:
          query: 'test_errors{key="{{ labels.key }}"} > 0.05'
`;
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: { ...ENV, PROMETHEUS_URL: fx.prom.url },
  }));
  const redis = new Redis(REDIS_URL);
  after(async () => {
    redis.disconnect();
    await fx.close();
    await iso.drop();
  });
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);
  const fire = async (key: string, startsAt?: string, alertname = 'Errors'): Promise<DeliveredRun> => {
    const runs = await deliver(svc, alertMessage([{ labels: { alertname, key }, ...(startsAt ? { startsAt } : {}) }]));
    assert.equal(runs.length, 1);
    return runs[0]!;
  };

  it('a condition that still holds: the run executes, with the answer in its timeline', async () => {
    await fx.setErrors('n1', 0.2);
    const created = await fire('n1');
    assert.equal(created.status, 'queued');
    const run = await settled(svc, created.id, 'succeeded');
    const checked = detailOf(run, 'condition_checked');
    assert.equal(checked['result'], 'needed');
    assert.equal(checked['query'], 'test_errors{key="n1"} > 0.05');
    assert.equal(checked['series'], 1);
    assert.equal((checked['samples'] as Array<{ value: number }>)[0]!.value, 0.2);
    assert.equal(events(run, 'condition_checked').length, 1);
    assert.ok(at(run, 'condition_checked') <= at(run, 'succeeded'), 'checked before it executed');
    assert.equal(await executions(run.id), 1);
    assert.equal(run.verification, null, 'nothing to verify without verify');
  });

  it('a condition that has cleared: the run ends suppressed condition_cleared and is never executed', async () => {
    await fx.setErrors('c1', 0.01);
    const created = await fire('c1');
    const run = await final(svc, created.id);
    assert.deepEqual([run.status, run.reason], ['suppressed', 'condition_cleared']);
    const checked = detailOf(run, 'condition_checked');
    assert.deepEqual([checked['result'], checked['series']], ['cleared', 0]);
    assert.equal(events(run, 'succeeded').length, 0);
    assert.equal(await executions(run.id), 0);
  });

  it('a label value with quotes and `"}` cannot change the query: it selects exactly its own series', async () => {
    // Substituted as it is, this value would close the matcher and add `or vector(1)`: always "needed".
    const hostile = 'a"} or vector(1) or test_errors{x="';
    const client = createPrometheusClient({ url: fx.prom.url });
    const unescaped = await client.query(`test_errors{key="${hostile}"} > 0.05`);
    assert.ok(unescaped.samples.length > 0, 'the control: unescaped, the value turns the query into one that always answers');
    // Substituted as it is, this one would not even parse; escaped, it is just a value.
    const broken = 'a"} or vector(1) or {x="';

    for (const key of [hostile, broken]) {
      const created = await fire(key);
      const run = await final(svc, created.id);
      assert.deepEqual([run.status, run.reason], ['suppressed', 'condition_cleared'], `no series has key ${key}`);
      const checked = detailOf(run, 'condition_checked');
      assert.equal(checked['query'], `test_errors{key="${promqlString(key)}"} > 0.05`);
      assert.deepEqual([checked['result'], checked['series']], ['cleared', 0]);
      assert.equal(await executions(run.id), 0);
    }

    // Once a series with exactly that value exists, the check finds it, and only it.
    await fx.setErrors(hostile, 0.3);
    const created = await fire(hostile, '2026-11-27T14:00:00.000000000Z');
    const run = await settled(svc, created.id, 'succeeded');
    const checked = detailOf(run, 'condition_checked');
    assert.deepEqual([checked['result'], checked['series']], ['needed', 1]);
    assert.equal((checked['samples'] as Array<{ labels: Record<string, string> }>)[0]!.labels['key'], hostile);
    assert.equal(await executions(run.id), 1);
  });

  it('the check is made after an approval, not when the run was created: a condition that cleared meanwhile stops it', async () => {
    await fx.setErrors('a1', 0.2);
    const created = await fire('a1', undefined, 'Gated');
    assert.equal(created.status, 'pending_approval');
    await sleep(500);
    assert.equal(events(await getRun(svc, created.id), 'condition_checked').length, 0, 'not checked while it waits');
    await fx.setErrors('a1', 0.01);
    await approve(svc, created.id).expect(200);
    const run = await final(svc, created.id);
    assert.deepEqual([run.status, run.reason], ['suppressed', 'condition_cleared']);
    assert.ok(at(run, 'condition_checked') >= at(run, 'approved'), 'checked after the approval');
    assert.equal(await executions(run.id), 0);
  });

  it('remediator_checks_total counts each check by result, as the timelines record them', async () => {
    const before = {
      needed: await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'needed' }),
      cleared: await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'cleared' }),
    };
    await fx.setErrors('m1', 0.5);
    await fx.setErrors('m2', 0);
    await settled(svc, (await fire('m1')).id, 'succeeded');
    await settled(svc, (await fire('m2')).id, 'suppressed');
    const now = {
      needed: await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'needed' }),
      cleared: await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'cleared' }),
      unavailable: await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'unavailable' }),
    };
    assert.deepEqual({ needed: now.needed - before.needed, cleared: now.cleared - before.cleared }, { needed: 1, cleared: 1 });
    const { rows } = await svc.services.pool.query<{ result: string; n: string }>(
      `SELECT detail->>'result' AS result, count(*) AS n FROM run_events WHERE type = 'condition_checked' GROUP BY 1`,
    );
    const recorded = Object.fromEntries(rows.map((r) => [r.result, Number(r.n)]));
    assert.deepEqual(now, { needed: recorded['needed'] ?? 0, cleared: recorded['cleared'] ?? 0, unavailable: 0 });
  });
});

describe('check.query and verify while Prometheus is down', { skip: SKIP }, (s) => {
  const iso = isolation('closed_down');
  const fx = closedLoopFixtures();
  const matrix = `
defaults: { cooldown: 0 }
rules:
  - name: skip
    matchers: ['alertname="Skip"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        check: { query: 'test_errors{key="{{ labels.key }}"} > 0.05' }
  - name: proceed
    matchers: ['alertname="Proceed"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        check: { query: 'test_errors{key="{{ labels.key }}"} > 0.05' }
        onCheckError: proceed
        verify: { query: 'test_errors{key="{{ labels.key }}"} < 0.05', within: 3s, every: 1s }
`;
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: { ...ENV, PROMETHEUS_URL: fx.prom.url, CHECK_TIMEOUT: '2s', NOTIFY_WEBHOOK_URL: fx.sink.url },
  }));
  const redis = new Redis(REDIS_URL);
  after(async () => {
    redis.disconnect();
    await fx.close();
    await iso.drop();
  });
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);
  const fire = async (alertname: string, key: string) => (await deliver(svc, alertMessage([{ labels: { alertname, key } }])))[0]!;

  it('onCheckError skip (the default): retried for CHECK_TIMEOUT, then skipped check_unavailable, not executed', async () => {
    await fx.setErrors('d1', 0.2);
    await fx.prom.stop();
    const created = await fire('Skip', 'd1');
    const run = await final(svc, created.id, 15_000);
    assert.deepEqual([run.status, run.reason], ['skipped', 'check_unavailable']);
    const failures = events(run, 'condition_check_failed');
    assert.ok(failures.length >= 2, `retried (${failures.length} attempts)`);
    assert.equal((failures[failures.length - 1]!.detail as Record<string, unknown>)['then'], 'skip');
    assert.ok(((failures[0]!.detail as Record<string, unknown>)['errors'] as string[]).length > 0, 'each failure says why');
    // Measured by the check itself from its first attempt (the first failure is recorded only once that attempt failed).
    const tried = (failures[failures.length - 1]!.detail as Record<string, unknown>)['gaveUpAfterMs'] as number;
    assert.ok(tried >= 2_000 && tried < 6_000, `gave up after about CHECK_TIMEOUT (2s): ${tried} ms`);
    assert.ok(at(run, 'skipped') - Date.parse(failures[0]!.at) < 6_000, 'skipped as soon as it gave up');
    assert.equal(events(run, 'condition_checked').length, 0);
    assert.equal(await executions(run.id), 0);
  });

  it('onCheckError proceed: executes after CHECK_TIMEOUT; a verification Prometheus never answers ends unverified', async () => {
    await fx.prom.stop();
    const created = await fire('Proceed', 'd2');
    const run = await settled(svc, created.id, 'succeeded', 15_000);
    const failures = events(run, 'condition_check_failed');
    assert.equal((failures[failures.length - 1]!.detail as Record<string, unknown>)['then'], 'proceed');
    assert.equal(await executions(run.id), 1);

    // No answer is no proof: the verification ends unverified at `within`, and on-call hears why.
    const ended = await verification(svc, run.id, 'unverified', 10_000);
    assert.ok(events(ended, 'verification_check_failed').length >= 1);
    assert.equal(events(ended, 'verified').length, 0);
    assert.ok((detailOf(ended, 'unverified')['errors'] as string[]).length > 0);
    const notice = await eventually(
      async () => fx.sink.messages.find((m) => m.text.includes(run.id) && m.text.includes('unverified')),
      5_000,
      'the unverified notice',
    );
    assert.match(notice.text, /Last answer: no answer \(/);
  });

  it('remediator_checks_total counts the unavailable checks; remediator_verifications_total the unverified one', async () => {
    assert.equal(await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'unavailable' }), 2);
    assert.equal(await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'needed' }), 0);
    assert.equal(await metric(svc, 'remediator_verifications_total', { remediation: 'test.count', result: 'unverified' }), 1);
    assert.equal(await metric(svc, 'remediator_verifications_total', { remediation: 'test.count', result: 'verified' }), 0);
  });
});

const VERIFY_CHAIN = (name: string, within: string, onUnverified: string, extra = '') => `
  - name: ${name.toLowerCase()}
    matchers: ['alertname="${name}"']
    actions:
      - id: scale
        remediation: test.count
        params: { key: '{{ labels.key }}' }
        check:
          query: 'test_errors{key="{{ labels.key }}"} > 0.05'
        verify:
          query: 'test_errors{key="{{ labels.key }}"} < 0.05'
          within: ${within}
          every: 1s
        onUnverified: ${onUnverified}${extra}
      - remediation: test.count
        after: scale
        when: verified
        params: { key: '{{ labels.key }}-verified' }
      - remediation: test.count
        after: scale
        when: unverified
        params: { key: '{{ labels.key }}-next' }`;

describe('verify: proof after success that the remediation helped', { skip: SKIP }, (s) => {
  const iso = isolation('closed_verify');
  const fx = closedLoopFixtures();
  const matrix = `
defaults: { cooldown: 0 }
rules:${VERIFY_CHAIN('Errors', '8s', 'escalate')}${VERIFY_CHAIN('Quiet', '3s', 'none')}${VERIFY_CHAIN('Gone', '3s', 'escalate')}${VERIFY_CHAIN(
    'Gated',
    '3s',
    'escalate',
    '\n        approval: required',
  )}
`;
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: { ...ENV, PROMETHEUS_URL: fx.prom.url, NOTIFY_WEBHOOK_URL: fx.sink.url },
  }));
  const redis = new Redis(REDIS_URL);
  after(async () => {
    redis.disconnect();
    await fx.close();
    await iso.drop();
  });
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);
  const fire = async (alertname: string, key: string, startsAt?: string) => {
    const runs = await deliver(svc, alertMessage([{ labels: { alertname, key }, ...(startsAt ? { startsAt } : {}) }]));
    assert.equal(runs.length, 3);
    return runs;
  };
  /** Notices quoting `query`, as on-call reads it: escaped for Slack mrkdwn. */
  const notices = (query: string) => {
    const shown = query.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    return fx.sink.messages.filter((m) => m.text.includes(shown));
  };

  it('the exporter recovers: verified once, the `verified` dependent runs and the `unverified` one is skipped', async () => {
    await fx.setErrors('v1', 0.2);
    const [scale, onVerified, onUnverified] = await fire('Errors', 'v1');
    assert.deepEqual([scale!.status, onVerified!.status, onUnverified!.status], ['queued', 'waiting', 'waiting']);
    const succeeded = await settled(svc, scale!.id, 'succeeded');
    assert.equal(succeeded.verification, 'pending');
    assert.deepEqual(detailOf(succeeded, 'verification_pending'), {
      query: 'test_errors{key="v1"} < 0.05',
      withinMs: 8000,
      everyMs: 1000,
    });
    assert.equal(detailOf(succeeded, 'condition_checked')['result'], 'needed');

    // Still failing: evaluated and left pending; the dependents wait for the verification, not for the success.
    const checked = await hasEvent(svc, scale!.id, 'verification_checked');
    assert.equal(checked.verification, 'pending');
    assert.equal(detailOf(checked, 'verification_checked')['series'], 0);
    for (const dep of [onVerified!, onUnverified!]) assert.equal((await getRun(svc, dep.id)).status, 'waiting');

    await fx.setErrors('v1', 0.01);
    const verified = await verification(svc, scale!.id, 'verified', 10_000);
    assert.equal(events(verified, 'verified').length, 1);
    assert.equal(detailOf(verified, 'verified')['series'], 1);
    assert.ok(at(verified, 'verified') - at(verified, 'verification_pending') < 8000, 'within `within`');
    assert.equal(events(verified, 'unverified').length, 0);
    assert.equal(events(verified, 'escalation_armed').length, 0);

    const [v, u] = await Promise.all([final(svc, onVerified!.id), final(svc, onUnverified!.id)]);
    assert.deepEqual([v.status, keyOf(v)], ['succeeded', 'v1-verified']);
    assert.equal(detailOf(v, 'predecessor_finished')['verification'], 'verified');
    assert.equal(await executions(v.id), 1);
    assert.deepEqual([u.status, u.reason], ['skipped', 'predecessor_verified']);
    assert.equal(await executions(u.id), 0);
    assert.equal(await executions(scale!.id), 1);

    // Ended: no more evaluations, and it stays verified.
    const loop = (run: RunBody) => run.events.map((e) => e.type).filter((t) => t.startsWith('verification_') || t.endsWith('verified'));
    await sleep(1_500);
    const later = await getRun(svc, scale!.id);
    assert.equal(later.verification, 'verified');
    assert.deepEqual(loop(later), loop(verified));
    assert.equal(notices('test_errors{key="v1"} < 0.05').length, 0, 'no notice for a verified run');
  });

  it('the exporter does not recover: unverified after `within`, on-call notified, the next episode needs approval', async () => {
    const query = 'test_errors{key="u1"} < 0.05';
    await fx.setErrors('u1', 0.2);
    const [scale, onVerified, onUnverified] = await fire('Errors', 'u1');
    await settled(svc, scale!.id, 'succeeded');
    const ended = await verification(svc, scale!.id, 'unverified', 15_000);
    const took = at(ended, 'unverified') - at(ended, 'verification_pending');
    assert.ok(took >= 7_900 && took < 11_000, `unverified at about within (8s): ${took} ms`);
    assert.ok(events(ended, 'verification_checked').length >= 3, 'evaluated every second meanwhile');
    assert.equal(events(ended, 'verified').length, 0);
    assert.equal(events(ended, 'unverified').length, 1);
    assert.deepEqual(detailOf(ended, 'unverified')['withinMs'], 8000);
    // Armed right after the verification is stored: the read that saw `unverified` may precede it.
    const armed = await eventually(
      async () => {
        const r = await getRun(svc, scale!.id);
        return events(r, 'escalation_armed').length > 0 ? r : undefined;
      },
      5_000,
      'escalation_armed',
    );
    assert.deepEqual(detailOf(armed, 'escalation_armed'), { reason: 'unverified' });
    assert.equal(ended.status, 'succeeded', 'the run itself stays succeeded');

    const notice = await eventually(async () => notices(query)[0], 5_000, 'the unverified notice');
    assert.match(notice.text, /unverified/);
    assert.ok(notice.text.includes(scale!.id), 'the notice names the run');

    const [v, u] = await Promise.all([final(svc, onVerified!.id), final(svc, onUnverified!.id)]);
    assert.deepEqual([u.status, keyOf(u)], ['succeeded', 'u1-next']);
    assert.equal(detailOf(u, 'predecessor_finished')['verification'], 'unverified');
    assert.equal(await executions(u.id), 1);
    assert.deepEqual([v.status, v.reason], ['skipped', 'predecessor_unverified']);
    assert.equal(await executions(v.id), 0);

    // The remediation did not help on this target: its next run there waits for a human.
    const next = await fire('Errors', 'u1', '2026-11-27T14:00:00.000000000Z');
    assert.equal(next[0]!.status, 'pending_approval');
    const pending = await getRun(svc, next[0]!.id);
    assert.deepEqual([pending.status, pending.reason, pending.target], ['pending_approval', 'escalated', 'test/u1']);
    await reject(svc, next[0]!.id).expect(200);
    assert.equal(await executions(next[0]!.id), 0);
  });

  it('onUnverified none: unverified without a notice or an escalation', async () => {
    const query = 'test_errors{key="q1"} < 0.05';
    await fx.setErrors('q1', 0.2);
    const [scale, , onUnverified] = await fire('Quiet', 'q1');
    await settled(svc, scale!.id, 'succeeded');
    const ended = await verification(svc, scale!.id, 'unverified', 10_000);
    assert.equal(events(ended, 'escalation_armed').length, 0);
    assert.equal((await final(svc, onUnverified!.id)).status, 'succeeded', '`when: unverified` still goes on');
    await sleep(500);
    assert.deepEqual(notices(query), [], 'no notice');

    // Not escalated: the next episode's run is queued at once (its check then finds the condition cleared).
    await fx.setErrors('q1', 0.01);
    const next = await fire('Quiet', 'q1', '2026-11-27T14:00:00.000000000Z');
    assert.equal(next[0]!.status, 'queued');
    const run = await final(svc, next[0]!.id);
    assert.deepEqual([run.status, run.reason], ['suppressed', 'condition_cleared']);
  });

  it('no data is never verified: the series vanishing after success ends unverified', async () => {
    await fx.setErrors('g1', 0.2);
    const [scale, onVerified, onUnverified] = await fire('Gone', 'g1');
    await settled(svc, scale!.id, 'succeeded');
    await fx.removeErrors('g1');
    const ended = await verification(svc, scale!.id, 'unverified', 10_000);
    assert.equal(events(ended, 'verified').length, 0);
    assert.equal(detailOf(ended, 'unverified')['series'], 0);
    const notice = await eventually(async () => notices('test_errors{key="g1"} < 0.05')[0], 5_000, 'the unverified notice');
    assert.match(notice.text, /Last answer: no series matched/);
    const [v, u] = await Promise.all([final(svc, onVerified!.id), final(svc, onUnverified!.id)]);
    assert.deepEqual([v.reason, u.status], ['predecessor_unverified', 'succeeded']);
  });

  it('a predecessor that ends without a verification (suppressed, rejected) skips its `when: verified | unverified` dependents', async () => {
    await fx.setErrors('t1', 0.01);
    const suppressed = await fire('Errors', 't1');
    assert.deepEqual((await final(svc, suppressed[0]!.id)).reason, 'condition_cleared');
    const gated = await fire('Gated', 't2');
    assert.equal(gated[0]!.status, 'pending_approval');
    await reject(svc, gated[0]!.id).expect(200);
    for (const [runs, status] of [
      [suppressed, 'suppressed'],
      [gated, 'rejected'],
    ] as const) {
      for (const dep of runs.slice(1)) {
        const run = await final(svc, dep.id, 5_000);
        assert.deepEqual([run.status, run.reason], ['skipped', `predecessor_${status}`]);
        assert.equal(await executions(run.id), 0);
      }
    }
  });

  it('remediator_verifications_total counts each ended verification by result, as the runs record them', async () => {
    const { rows } = await svc.services.pool.query<{ verification: string; n: string }>(
      `SELECT verification, count(*) AS n FROM runs WHERE verification IS NOT NULL GROUP BY 1`,
    );
    const recorded = Object.fromEntries(rows.map((r) => [r.verification, Number(r.n)]));
    assert.deepEqual(recorded, { verified: 1, unverified: 3 });
    assert.equal(await metric(svc, 'remediator_verifications_total', { remediation: 'test.count', result: 'verified' }), 1);
    assert.equal(await metric(svc, 'remediator_verifications_total', { remediation: 'test.count', result: 'unverified' }), 3);
    assert.ok((await metric(svc, 'remediator_checks_total', { remediation: 'test.count', result: 'needed' })) >= 4);
  });
});

describe('verify across restarts and replicas', { skip: SKIP }, () => {
  const iso = isolation('closed_replicas');
  const fx = closedLoopFixtures();
  const matrix = `
defaults: { cooldown: 0 }
rules:${VERIFY_CHAIN('Errors', '20s', 'escalate')}
`;
  const redis = new Redis(REDIS_URL);
  after(async () => {
    redis.disconnect();
    await fx.close();
    await iso.drop();
  });
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);
  const options = (env: Record<string, string> = {}) => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: { ...ENV, PROMETHEUS_URL: fx.prom.url, NOTIFY_WEBHOOK_URL: fx.sink.url, ...env },
  });

  it('a pending verification survives a restart: the new process verifies it, once', async (t) => {
    await fx.setErrors('r1', 0.2);
    const first = await startService(t, options());
    const [scale, onVerified] = await deliver(first, alertMessage([{ labels: { alertname: 'Errors', key: 'r1' } }]));
    await settled(first, scale!.id, 'succeeded');
    const pending = await hasEvent(first, scale!.id, 'verification_checked');
    assert.equal(pending.verification, 'pending');
    await first.close();

    // Recovered while no process runs.
    await fx.setErrors('r1', 0.01);
    const second = await startService(t, options());
    const verified = await verification(second, scale!.id, 'verified', 10_000);
    assert.equal(events(verified, 'verification_pending').length, 1);
    assert.equal(events(verified, 'verified').length, 1);
    assert.equal(events(verified, 'unverified').length, 0);
    const dependent = await final(second, onVerified!.id);
    assert.deepEqual([dependent.status, keyOf(dependent)], ['succeeded', 'r1-verified']);
    assert.equal(await executions(dependent.id), 1);
    assert.equal(await executions(scale!.id), 1);
    assert.equal(await metric(second, 'remediator_verifications_total', { remediation: 'test.count', result: 'verified' }), 1);
  });

  it('two replicas sweeping at once end each verification exactly once (6 episodes)', async (t) => {
    // A short sweep interval makes both replicas' sweepers race for every due verification.
    const replicas: TestService[] = [
      await startService(t, options({ SWEEP_INTERVAL: '20ms' })),
      await startService(t, options({ SWEEP_INTERVAL: '20ms' })),
    ];
    const keys = Array.from({ length: 6 }, (_, i) => `p${i}`);
    await Promise.all(keys.map((key) => fx.setErrors(key, 0.2)));
    const deliveries = await Promise.all(
      keys.map((key, i) => deliver(replicas[i % 2]!, alertMessage([{ labels: { alertname: 'Errors', key } }]))),
    );
    for (const [scale] of deliveries) {
      await settled(replicas[0]!, scale!.id, 'succeeded');
      await hasEvent(replicas[1]!, scale!.id, 'verification_checked');
    }
    await Promise.all(keys.map((key) => fx.setErrors(key, 0.01)));
    for (const [scale, onVerified, onUnverified] of deliveries) {
      const verified = await verification(replicas[1]!, scale!.id, 'verified', 10_000);
      assert.equal(events(verified, 'verified').length, 1, `${scale!.id} verified exactly once`);
      const [v, u] = await Promise.all([final(replicas[0]!, onVerified!.id), final(replicas[0]!, onUnverified!.id)]);
      assert.equal(v.status, 'succeeded');
      assert.equal(events(v, 'predecessor_finished').length, 1, 'moved on exactly once');
      assert.equal(await executions(v.id), 1, 'executed exactly once');
      assert.deepEqual([u.status, u.reason], ['skipped', 'predecessor_verified']);
      assert.equal(events(u, 'skipped').length, 1);
    }
    // Counters are per process: summed over the replicas, one per verification.
    let total = 0;
    for (const replica of replicas) {
      total += await metric(replica, 'remediator_verifications_total', { remediation: 'test.count', result: 'verified' });
    }
    assert.equal(total, keys.length);
  });
});

describe('unverified remediations revert, against Prometheus and the targets stand-ins', { skip: SKIP }, (s) => {
  const iso = isolation('closed_revert');
  const fx = closedLoopFixtures();
  let conduit: ConduitAdmin | undefined;
  let kube: KubeApiServer | undefined;
  let kubeconfig = '';
  before(async () => {
    conduit = await startConduitAdmin();
    kube = await startKubeApiServer();
    kubeconfig = await kube.writeKubeconfig();
  });
  const matrix = `
defaults: { cooldown: 0 }
rules:
  - name: provider-down
    matchers: ['alertname="ProviderDown"']
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
        check: { query: 'test_errors{key="{{ labels.provider }}"} > 0.05' }
        verify: { query: 'test_errors{key="gateway"} < 0.05', within: 3s, every: 500ms }
        onUnverified: revert
  - name: busy
    matchers: ['alertname="Busy"']
    actions:
      - remediation: kubernetes.scale-deployment
        params: { namespace: conduit, deployment: '{{ labels.deployment }}', by: 2, max: 10 }
        verify: { query: 'test_errors{key="{{ labels.deployment }}"} < 0.05', within: 3s, every: 500ms }
        onUnverified: revert
`;
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: {
      ...ENV,
      PROMETHEUS_URL: fx.prom.url,
      CONDUIT_ADMIN_URL: conduit!.url,
      CONDUIT_ADMIN_KEY: conduit!.apiKey,
      KUBECONFIG: kubeconfig,
    },
  }));
  after(async () => {
    await fx.close();
    await conduit?.close();
    await kube?.close();
    await iso.drop();
  });

  it('the simulation says what the check query answers now', async () => {
    await fx.setErrors('openai', 0.4);
    const res = await request(svc.url)
      .post('/api/simulate')
      .set('Authorization', `Bearer ${TOKENS.viewer}`)
      .send(alertMessage([{ labels: { alertname: 'ProviderDown', provider: 'openai' } }]))
      .expect(200);
    const [decision] = res.body.alerts[0].actions;
    assert.equal(decision.check.result, 'needed');
    assert.equal(decision.check.query, 'test_errors{key="openai"} > 0.05');
    assert.equal(decision.check.samples[0].value, 0.4);
    assert.equal(decision.verify.query, 'test_errors{key="gateway"} < 0.05');
  });

  it('a disable that did not bring the errors down is unverified, then enabled again by its revert', async () => {
    await fx.setErrors('openai', 0.4);
    await fx.setErrors('gateway', 0.3);
    const [run] = await deliver(svc, alertMessage([{ labels: { alertname: 'ProviderDown', provider: 'openai' } }]));
    await settled(svc, run!.id, 'succeeded');
    assert.equal(conduit!.providers.find((p) => p.providerName === 'openai')!.isEnabled, false);
    const unverified = await eventually(
      async () => {
        const r = await getRun(svc, run!.id);
        return r.verification === 'unverified' && r.revertedBy ? r : undefined;
      },
      15_000,
      'unverified and reverted',
    );
    const back = await settled(svc, unverified.revertedBy!, 'succeeded');
    assert.deepEqual([back.phase, back.remediation, back.revertOf], ['revert', 'conduit.enable-provider', run!.id]);
    assert.equal(conduit!.providers.find((p) => p.providerName === 'openai')!.isEnabled, true);
    // Read again now the revert has run: the revert run is stored before the original's revert_created
    // event, so the read that first saw revertedBy may have come between the two.
    const types = (await getRun(svc, run!.id)).events.map((e) => e.type);
    for (const type of ['condition_checked', 'succeeded', 'verification_pending', 'unverified', 'revert_created'])
      assert.ok(types.includes(type), `${type} in ${types.join(',')}`);
    assert.equal(await metric(svc, 'remediator_reverts_total', { remediation: 'conduit.disable-provider' }), 1);
    if (process.env['SHOW_TIMELINE']) {
      const rows = [unverified, back].flatMap((r) => r.events.map((e) => ({ run: `${r.phase} ${r.remediation}`, ...e })));
      rows.sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
      for (const e of rows) console.log(`${e.at.slice(11, 23)}  ${e.run.padEnd(34)} ${e.type.padEnd(22)} ${JSON.stringify(e.detail)}`);
    }
  });

  it('a scale-up that did not help is scaled back to the recorded count; one that helped is kept', async () => {
    const deployment = (name: string) =>
      kube!.put({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace: 'conduit' },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { containers: [] } },
        },
      });
    const replicas = (name: string) => (kube!.get('deployments', 'conduit', name)!['spec'] as { replicas: number }).replicas;
    deployment('api-a');
    deployment('api-b');
    await fx.setErrors('api-a', 0.3);
    await fx.setErrors('api-b', 0.01);
    const [a] = await deliver(svc, alertMessage([{ labels: { alertname: 'Busy', deployment: 'api-a' } }]));
    const [b] = await deliver(svc, alertMessage([{ labels: { alertname: 'Busy', deployment: 'api-b' } }]));
    await Promise.all([settled(svc, a!.id, 'succeeded'), settled(svc, b!.id, 'succeeded')]);
    assert.deepEqual([replicas('api-a'), replicas('api-b')], [5, 5]);
    const kept = await verification(svc, b!.id, 'verified');
    assert.equal(kept.revertedBy, null);
    const unverified = await eventually(
      async () => {
        const r = await getRun(svc, a!.id);
        return r.revertedBy ? r : undefined;
      },
      15_000,
      'the revert of api-a',
    );
    const back = await settled(svc, unverified.revertedBy!, 'succeeded');
    assert.deepEqual(back.params, { namespace: 'conduit', deployment: 'api-a', replicas: 3, max: 3, ifReplicas: 5 });
    assert.deepEqual([replicas('api-a'), replicas('api-b')], [3, 5]);
  });
});
