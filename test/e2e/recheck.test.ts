/**
 * The re-check before acting, end to end: a REAL Alertmanager (prometheus-alertmanager 0.25+)
 * delivers to the service's webhook with `send_resolved: false`, so the service never hears of a
 * resolution by webhook, and the service asks that same Alertmanager (`ALERTMANAGER_URL`) whether
 * a firing-phase run's alert still fires just before the run executes (here: after its approval).
 *
 *   alert resolved in Alertmanager only   -> approval -> cancelled (alert_resolved), not executed,
 *                                            the episode recorded resolved for every later run
 *   alert still firing                    -> approval -> executed; run page and notice say it fires
 *   Alertmanager gone                     -> approval -> retried for CHECK_TIMEOUT, then onCheckError
 *   HA pair, first member a closed port   -> the live member answers
 *
 * Executions are counted by the test remediation `test.count` in Redis (`executionsKey`).
 * Every test has its own database and key prefix, its own Alertmanager and its own service.
 *
 * Skipped only when no Alertmanager binary is installed (and ALERTMANAGER_BIN is not set):
 * `apt-get install prometheus-alertmanager`.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import request from 'supertest';
import {
  alertmanagerSkipReason,
  freePort,
  type PostableAlert,
  type RunningAlertmanager,
  startAlertmanager,
} from '../support/alertmanager.js';
import { approve, deliver, getRun, settled, type RunBody } from '../support/api.js';
import {
  alertMessage,
  eventually,
  isolation,
  REDIS_URL,
  startService,
  TOKENS,
  WEBHOOK_TOKEN,
  type ServiceOptions,
  type TestService,
} from '../support/harness.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';
import { executionsKey } from '../support/test-remediations.js';
import type { Run, RunEvent } from '../../src/schemas/runs.js';

const CHECK_TIMEOUT_MS = 2000;
/** Upper bound for anything that should happen "at once" (a worker picking up a job, a delivery). */
const SOON_MS = 15_000;

/** An alert as GET /api/v2/alerts answers it (the fields used here). */
interface AmAlert {
  fingerprint: string;
  startsAt: string;
  labels: Record<string, string>;
  status: { state: string };
}

interface Stack {
  iso: ReturnType<typeof isolation>;
  am: RunningAlertmanager;
  /** The service now running; `restart` replaces it. */
  svc: TestService;
  sink: NotifySink | undefined;
  redis: Redis;
  /** Stops the service and starts another one on the same database, key prefix and Alertmanager. */
  restart(matrix: string): Promise<TestService>;
}

/**
 * Alertmanager (receiver with send_resolved false, pointing at the service's webhook) and the service
 * (ALERTMANAGER_URL pointing at that Alertmanager), on a database and key prefix of the test's own.
 * Everything is stopped and dropped when the test ends, whatever its outcome.
 */
async function stack(
  t: TestContext,
  opts: {
    label: string;
    matrix: string;
    env?: Record<string, string>;
    /** ALERTMANAGER_URL from the real Alertmanager's URL; default that URL alone. */
    alertmanagerUrl?: (url: string) => string;
    notify?: boolean;
  },
): Promise<Stack> {
  const iso = isolation(opts.label);
  const held: { am?: RunningAlertmanager; svc?: TestService; sink?: NotifySink; redis?: Redis } = {};
  t.after(async () => {
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<unknown> | undefined) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    // Alertmanager first, so nothing is delivered to a service that is closing.
    await step(() => held.am?.close());
    await step(() => held.svc?.close());
    await step(() => held.sink?.close());
    await step(async () => held.redis?.disconnect());
    await step(() => iso.drop());
    if (errors.length) throw errors[0];
  });

  if (opts.notify) held.sink = await startNotifySink();
  held.redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await held.redis.connect();
  // The service needs Alertmanager's URL and Alertmanager the service's: the port is chosen first.
  const amPort = await freePort();
  const amUrl = `http://127.0.0.1:${amPort}`;
  const serviceOptions = (matrix: string): ServiceOptions => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix,
    env: {
      ALERTMANAGER_URL: opts.alertmanagerUrl ? opts.alertmanagerUrl(amUrl) : amUrl,
      TARGET_REDIS_URL: REDIS_URL,
      ...(held.sink ? { NOTIFY_WEBHOOK_URL: held.sink.url } : {}),
      ...opts.env,
    },
  });
  held.svc = await startService(serviceOptions(opts.matrix));
  held.am = await startAlertmanager({
    webhookUrl: `${held.svc.url}/webhooks/alertmanager`,
    token: WEBHOOK_TOKEN,
    port: amPort,
    sendResolved: false,
  });
  const result: Stack = {
    iso,
    am: held.am,
    svc: held.svc,
    sink: held.sink,
    redis: held.redis,
    async restart(matrix) {
      const old = held.svc;
      held.svc = undefined;
      await old?.close();
      held.svc = await startService(serviceOptions(matrix));
      result.svc = held.svc;
      return held.svc;
    },
  };
  return result;
}

/** Every run of `rule`, oldest first. */
async function runsOf(svc: TestService, rule: string): Promise<Run[]> {
  const res = await request(svc.url)
    .get(`/api/runs?rule=${encodeURIComponent(rule)}&limit=100`)
    .set('Authorization', `Bearer ${TOKENS.viewer}`)
    .expect(200);
  return [...(res.body as { runs: Run[] }).runs].reverse();
}

/** Waits until `rule` has `count` runs, all `pending_approval`, and returns them by their action's `key` param. */
async function pendingRuns(svc: TestService, rule: string, count: number): Promise<Map<string, Run>> {
  const runs = await eventually(
    async () => {
      const all = await runsOf(svc, rule);
      return all.length === count && all.every((r) => r.status === 'pending_approval') ? all : undefined;
    },
    SOON_MS,
    `${count} runs of ${rule} pending approval (Alertmanager delivering the alert)`,
  );
  return new Map(runs.map((r) => [keyOf(r), r]));
}

/** How often test.count executed `runId`. */
async function executions(s: Stack, runId: string): Promise<number> {
  return Number((await s.redis.get(executionsKey(s.iso.prefix, 'count', runId))) ?? 0);
}

/** The `key` param every action of these matrices has. */
const keyOf = (run: Run) => String((run.params as Record<string, unknown>)['key']);
/** A timeline event with its detail readable by field. */
type Event = Omit<RunEvent, 'detail'> & { detail: Record<string, unknown> };
const typesOf = (run: RunBody) => run.events.map((e) => e.type);
const eventsOf = (run: RunBody, type: string): Event[] => run.events.filter((e) => e.type === type);
const only = (run: RunBody, type: string): Event => {
  const found = eventsOf(run, type);
  assert.equal(found.length, 1, `one ${type} event in ${typesOf(run).join(',')}`);
  return found[0]!;
};
const CHECK_EVENTS = ['alert_checked', 'alert_check_failed'];

/** Waits until Alertmanager no longer lists an alert with these labels (it resolved it). */
async function resolvedInAlertmanager(am: RunningAlertmanager, labels: Record<string, string>): Promise<void> {
  await eventually(
    async () => {
      const held = (await am.alerts()) as AmAlert[];
      return !held.some((a) => Object.entries(labels).every(([k, v]) => a.labels[k] === v));
    },
    SOON_MS,
    `Alertmanager to stop listing ${JSON.stringify(labels)}`,
  );
}

/** Sum of the samples of `name` whose label set contains every pair of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) total += Number(m[3]);
  }
  return total;
}
const serviceMetrics = async (svc: TestService) => (await request(svc.url).get('/metrics').expect(200)).text;

const approvalAction = (key: string, extra = '') => `
      - remediation: test.count
        params: { key: ${key} }
        approval: required${extra}`;

describe('the re-check with Alertmanager before a firing run acts', { skip: alertmanagerSkipReason() }, () => {
  it(
    'an alert resolved in Alertmanager, whose resolution never reached the webhook, cancels the approved run and its episode',
    { timeout: 90_000 },
    async (t) => {
      const rule = 'recheck-resolved';
      const actions = approvalAction('resolved-first') + approvalAction('resolved-second');
      const matrix = (more = '') => `
rules:
  - name: ${rule}
    matchers: ['alertname="RecheckResolved"']
    actions:${actions}${more}
`;
      const s = await stack(t, { label: 'recheck_resolved', matrix: matrix() });
      const alert: PostableAlert = {
        labels: { alertname: 'RecheckResolved', service: 'conduit', severity: 'critical' },
        annotations: { summary: 'resolved before anyone approved' },
      };
      await s.am.postAlerts([alert]);
      const pending = await pendingRuns(s.svc, rule, 2);
      const first = pending.get('resolved-first')!;
      const second = pending.get('resolved-second')!;
      assert.equal((await getRun(s.svc, first.id)).alertFiring?.firing, true, 'the run page sees the alert firing at first');

      await s.am.resolveAlerts([alert]);
      await resolvedInAlertmanager(s.am, alert.labels);
      const page = await eventually(
        async () => {
          const run = await getRun(s.svc, first.id);
          return run.alertFiring?.firing === false ? run : undefined;
        },
        SOON_MS,
        'the run page to see the alert no longer firing',
      );
      assert.equal(page.alertFiring?.alertmanager, s.am.url);
      assert.equal(page.alertFiring?.state, null);
      assert.equal(page.alertFiring?.error, undefined);

      // Longer than group_interval (1s): Alertmanager had its chance to notify, and did not.
      await sleep(1500);
      const metrics = await serviceMetrics(s.svc);
      assert.equal(sample(metrics, 'remediator_alerts_received_total', { status: 'resolved' }), 0, 'no resolved notification received');
      assert.ok(sample(metrics, 'remediator_alerts_received_total', { status: 'firing' }) >= 1, 'the firing one was');
      for (const run of [first, second]) {
        assert.equal((await getRun(s.svc, run.id)).status, 'pending_approval', 'the service itself has not heard of the resolution');
      }

      const approved = await approve(s.svc, first.id, { comment: 'go' });
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      const cancelled = await settled(s.svc, first.id, 'cancelled', SOON_MS);
      assert.equal(cancelled.reason, 'alert_resolved');
      assert.equal(cancelled.approval.decidedBy, 'bob', 'it was approved, then cancelled');
      const checked = only(cancelled, 'alert_checked');
      assert.equal(checked.detail['firing'], false);
      assert.equal(checked.detail['alertmanager'], s.am.url);
      assert.deepEqual(eventsOf(cancelled, 'alert_check_failed'), []);
      const types = typesOf(cancelled);
      assert.ok(types.indexOf('approved') < types.indexOf('alert_checked'), `checked after the approval: ${types.join(',')}`);
      assert.ok(types.indexOf('alert_checked') < types.indexOf('cancelled'), `then cancelled: ${types.join(',')}`);
      assert.ok(!types.includes('started'), `never started: ${types.join(',')}`);
      assert.equal(cancelled.attempts, 0);
      assert.equal(await executions(s, first.id), 0, 'not executed');

      // The other action of the episode, still waiting for approval, goes with it: the episode is recorded resolved.
      const other = await settled(s.svc, second.id, 'cancelled', SOON_MS);
      assert.equal(other.reason, 'alert_resolved');
      assert.equal(other.approval.decidedBy, null);
      assert.deepEqual(
        other.events.filter((e) => CHECK_EVENTS.includes(e.type)),
        [],
        'cancelled by the record, not by asking',
      );
      assert.equal((await approve(s.svc, second.id)).status, 409, 'no approving it any more');
      assert.equal(await executions(s, second.id), 0);

      // A late re-delivery of the same episode (as an HA peer of Alertmanager might send it) to a
      // service whose matrix has gained two actions: the new runs are cancelled because the episode
      // is recorded resolved, before anyone asks Alertmanager.
      const svc2 = await s.restart(
        matrix(`
      - remediation: test.count
        params: { key: resolved-late-auto }${approvalAction('resolved-late-approval')}`),
      );
      const delivered = await deliver(
        svc2,
        alertMessage([
          {
            labels: alert.labels,
            annotations: alert.annotations ?? {},
            fingerprint: first.alert.fingerprint,
            startsAt: first.alert.startsAt,
          },
        ]),
      );
      assert.equal(delivered.length, 4, JSON.stringify(delivered));
      const byId = new Map(delivered.map((r) => [r.id, r]));
      assert.equal(byId.get(first.id)?.duplicate, true);
      assert.equal(byId.get(second.id)?.duplicate, true);
      const fresh = delivered.filter((r) => !r.duplicate);
      assert.equal(fresh.length, 2, JSON.stringify(delivered));
      for (const run of fresh) {
        const done = await settled(svc2, run.id, 'cancelled', SOON_MS);
        assert.equal(done.reason, 'alert_resolved', JSON.stringify(done));
        assert.deepEqual(
          done.events.filter((e) => CHECK_EVENTS.includes(e.type)),
          [],
          `${keyOf(done)}: cancelled by the record`,
        );
        assert.ok(!typesOf(done).includes('started'));
        assert.equal(await executions(s, run.id), 0, `${keyOf(done)} not executed`);
      }
      const late = await Promise.all(fresh.map((r) => getRun(svc2, r.id)));
      assert.deepEqual(late.map((r) => keyOf(r)).sort(), ['resolved-late-approval', 'resolved-late-auto']);
    },
  );

  it('an alert still firing is executed on approval; the run page and the approval notice say it fires', { timeout: 60_000 }, async (t) => {
    const rule = 'recheck-firing';
    const s = await stack(t, {
      label: 'recheck_firing',
      notify: true,
      matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="RecheckFiring"']
    actions:${approvalAction('firing')}
`,
    });
    await s.am.postAlerts([{ labels: { alertname: 'RecheckFiring', severity: 'critical' }, annotations: { summary: 'still down' } }]);
    const run = (await pendingRuns(s.svc, rule, 1)).get('firing')!;

    const page = await getRun(s.svc, run.id);
    assert.ok(page.alertFiring, `alertFiring on the run page: ${JSON.stringify(page)}`);
    assert.equal(page.alertFiring.firing, true);
    assert.equal(page.alertFiring.state, 'active');
    assert.equal(page.alertFiring.alertmanager, s.am.url);
    assert.equal(page.alertFiring.error, undefined);
    assert.ok(Math.abs(Date.parse(page.alertFiring.checkedAt) - Date.now()) < 60_000, `checkedAt ${page.alertFiring.checkedAt}`);

    const notice = await eventually(
      async () => s.sink!.messages.find((m) => m.text.includes(run.id) && m.text.includes('needs approval')),
      SOON_MS,
      'the approval notice',
    );
    assert.match(notice.text, /still firing/i, notice.text);
    assert.ok(notice.text.includes(s.am.url), `names the Alertmanager that answered: ${notice.text}`);
    assert.doesNotMatch(notice.text, /no longer firing|unknown/i, notice.text);
    assert.equal(await executions(s, run.id), 0, 'nothing executed before the approval');

    assert.equal((await approve(s.svc, run.id)).status, 200);
    const done = await settled(s.svc, run.id, 'succeeded', SOON_MS);
    const checked = only(done, 'alert_checked');
    assert.equal(checked.detail['firing'], true);
    assert.equal(checked.detail['state'], 'active');
    assert.equal(checked.detail['alertmanager'], s.am.url);
    assert.deepEqual(eventsOf(done, 'alert_check_failed'), []);
    const types = typesOf(done);
    assert.ok(
      types.indexOf('approved') < types.indexOf('alert_checked') && types.indexOf('alert_checked') < types.indexOf('started'),
      `approved, checked, then started: ${types.join(',')}`,
    );
    assert.equal(done.attempts, 1);
    assert.equal(await executions(s, run.id), 1, 'executed once');
  });

  it(
    'with Alertmanager gone, the check is retried for CHECK_TIMEOUT, then onCheckError decides; check.alertFiring false does not ask',
    { timeout: 60_000 },
    async (t) => {
      const rule = 'recheck-unavailable';
      const s = await stack(t, {
        label: 'recheck_unavailable',
        env: { CHECK_TIMEOUT: `${CHECK_TIMEOUT_MS}ms` },
        matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="RecheckUnavailable"']
    actions:${approvalAction('skip')}${approvalAction('proceed', '\n        onCheckError: proceed')}${approvalAction(
      'unchecked',
      '\n        check: { alertFiring: false }',
    )}
`,
      });
      await s.am.postAlerts([{ labels: { alertname: 'RecheckUnavailable', severity: 'critical' } }]);
      const pending = await pendingRuns(s.svc, rule, 3);
      assert.equal(pending.get('skip')!.gates.onCheckError ?? 'skip', 'skip');
      assert.equal(pending.get('proceed')!.gates.onCheckError, 'proceed');
      assert.equal(pending.get('unchecked')!.gates.alertFiring, false);

      await s.am.close();
      const page = await getRun(s.svc, pending.get('skip')!.id);
      assert.ok(page.alertFiring, 'alertFiring on the run page');
      assert.equal(page.alertFiring.firing, null);
      assert.equal(page.alertFiring.alertmanager, null);
      assert.ok(page.alertFiring.error?.includes(s.am.url), `the error names the Alertmanager: ${page.alertFiring.error}`);

      const approvedAt = new Map<string, number>();
      for (const [key, run] of pending) {
        approvedAt.set(key, Date.now());
        assert.equal((await approve(s.svc, run.id)).status, 200, key);
      }
      const bound = CHECK_TIMEOUT_MS + SOON_MS;
      const [skipped, proceeded, unchecked] = await Promise.all([
        settled(s.svc, pending.get('skip')!.id, 'skipped', bound),
        settled(s.svc, pending.get('proceed')!.id, 'succeeded', bound),
        settled(s.svc, pending.get('unchecked')!.id, 'succeeded', bound),
      ]);
      const elapsed = (run: RunBody, type: string) => Date.parse(only(run, type).at) - Date.parse(only(run, 'approved').at);

      // skip (the default): no answer within CHECK_TIMEOUT, not executed.
      assert.equal(skipped.reason, 'check_unavailable');
      const skipFailures = eventsOf(skipped, 'alert_check_failed');
      assert.ok(skipFailures.length >= 1, `alert_check_failed events: ${typesOf(skipped).join(',')}`);
      assert.deepEqual(eventsOf(skipped, 'alert_checked'), []);
      assert.equal(skipFailures.at(-1)!.detail['then'], 'skip');
      assert.ok(Number(skipFailures.at(-1)!.detail['gaveUpAfterMs']) >= CHECK_TIMEOUT_MS, JSON.stringify(skipFailures.at(-1)));
      assert.ok(JSON.stringify(skipFailures[0]!.detail['errors']).includes(s.am.url), JSON.stringify(skipFailures[0]));
      const skipTook = elapsed(skipped, 'skipped');
      assert.ok(skipTook >= CHECK_TIMEOUT_MS, `skipped ${skipTook} ms after the approval, CHECK_TIMEOUT ${CHECK_TIMEOUT_MS} ms`);
      assert.ok(skipTook < CHECK_TIMEOUT_MS + 5000, `and not much later: ${skipTook} ms`);
      assert.ok(Date.now() - approvedAt.get('skip')! >= CHECK_TIMEOUT_MS);
      assert.ok(!typesOf(skipped).includes('started'));
      assert.equal(await executions(s, skipped.id), 0, 'skip: not executed');

      // proceed: the same wait, then executed.
      const proceedFailures = eventsOf(proceeded, 'alert_check_failed');
      assert.ok(proceedFailures.length >= 1, typesOf(proceeded).join(','));
      assert.equal(proceedFailures.at(-1)!.detail['then'], 'proceed');
      assert.deepEqual(eventsOf(proceeded, 'alert_checked'), []);
      assert.ok(elapsed(proceeded, 'started') >= CHECK_TIMEOUT_MS, `started ${elapsed(proceeded, 'started')} ms after the approval`);
      assert.equal(await executions(s, proceeded.id), 1, 'proceed: executed once');

      // check.alertFiring false: executed at once, without asking.
      assert.deepEqual(
        unchecked.events.filter((e) => CHECK_EVENTS.includes(e.type)),
        [],
        typesOf(unchecked).join(','),
      );
      assert.ok(elapsed(unchecked, 'succeeded') < CHECK_TIMEOUT_MS, `not held by the check: ${elapsed(unchecked, 'succeeded')} ms`);
      assert.equal(await executions(s, unchecked.id), 1, 'unchecked: executed once');
    },
  );

  it('with an HA pair whose first member is a closed port, the live member answers the check', { timeout: 60_000 }, async (t) => {
    const rule = 'recheck-ha';
    const closed = `http://127.0.0.1:${await freePort()}`;
    const s = await stack(t, {
      label: 'recheck_ha',
      alertmanagerUrl: (live) => `${closed},${live}`,
      matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="RecheckHa"']
    actions:${approvalAction("'ha-{{ labels.instance }}'")}
`,
    });
    const stays: PostableAlert = { labels: { alertname: 'RecheckHa', instance: 'stays', severity: 'critical' } };
    const goes: PostableAlert = { labels: { alertname: 'RecheckHa', instance: 'goes', severity: 'critical' } };
    await s.am.postAlerts([stays, goes]);
    const pending = await pendingRuns(s.svc, rule, 2);
    const firing = pending.get('ha-stays')!;
    const resolving = pending.get('ha-goes')!;

    await s.am.resolveAlerts([goes]);
    await resolvedInAlertmanager(s.am, goes.labels);
    const page = await getRun(s.svc, firing.id);
    assert.equal(page.alertFiring?.firing, true, JSON.stringify(page.alertFiring));
    assert.equal(page.alertFiring?.alertmanager, s.am.url, 'answered by the live member');
    const gone = await getRun(s.svc, resolving.id);
    assert.equal(gone.alertFiring?.firing, false, JSON.stringify(gone.alertFiring));
    assert.equal(gone.alertFiring?.alertmanager, s.am.url);

    assert.equal((await approve(s.svc, firing.id)).status, 200);
    assert.equal((await approve(s.svc, resolving.id)).status, 200);
    const executed = await settled(s.svc, firing.id, 'succeeded', SOON_MS);
    const cancelled = await settled(s.svc, resolving.id, 'cancelled', SOON_MS);

    const yes = only(executed, 'alert_checked');
    assert.equal(yes.detail['firing'], true);
    assert.equal(yes.detail['alertmanager'], s.am.url);
    assert.equal(yes.detail['attempt'], 1, 'the first check answered');
    assert.deepEqual(eventsOf(executed, 'alert_check_failed'), [], 'the closed member is no failure while the other answers');
    assert.equal(await executions(s, firing.id), 1);

    const no = only(cancelled, 'alert_checked');
    assert.equal(no.detail['firing'], false);
    assert.equal(no.detail['alertmanager'], s.am.url);
    assert.deepEqual(eventsOf(cancelled, 'alert_check_failed'), []);
    assert.equal(cancelled.reason, 'alert_resolved');
    assert.equal(await executions(s, resolving.id), 0);
  });
});
