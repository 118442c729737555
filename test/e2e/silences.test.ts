/**
 * Per-action Alertmanager silences (`silence: 30m`), end to end against a REAL Alertmanager
 * (prometheus-alertmanager 0.25+) that delivers its alerts to the service's webhook and holds the silences:
 *
 *   run executing (test.slow)            -> a silence of the alert's labels is active, the alert suppressed
 *   run succeeded                        -> the silence stays until its endsAt
 *   dry run                              -> no silence
 *   run failed (after retries, timeout)  -> one silence for all its attempts, expired when it fails: the alert pages again
 *   verification verified / unverified   -> kept / expired (a real Prometheus answers `verify`)
 *   nothing listening, a redirect, none  -> the run executes anyway; its timeline says the silence could not be created
 *
 * Every test has its own database, key prefix, Alertmanager and service. Skipped only when no Alertmanager
 * binary is installed (apt-get install prometheus-alertmanager); the verification test also needs Prometheus.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import {
  alertmanagerSkipReason,
  freePort,
  startAlertmanager,
  type PostableAlert,
  type RunningAlertmanager,
} from '../support/alertmanager.js';
import { deliver, getRun, settled, type RunBody } from '../support/api.js';
import {
  alertMessage,
  eventually,
  isolation,
  REDIS_URL,
  startService,
  TOKENS,
  WEBHOOK_TOKEN,
  type TestService,
} from '../support/harness.js';
import { prometheusSkipReason, startPrometheus, type RunningPrometheus } from '../support/prometheus.js';

const SOON_MS = 15_000;
const THIRTY_MINUTES = 30 * 60_000;
const PUBLIC_URL = 'https://remediator.example.com';

/** A silence as GET /api/v2/silences answers it. */
interface AmSilence {
  id: string;
  status: { state: 'active' | 'pending' | 'expired' };
  matchers: Array<{ name: string; value: string; isRegex: boolean; isEqual: boolean }>;
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

/** An alert as GET /api/v2/alerts answers it (the fields used here). */
interface AmAlert {
  labels: Record<string, string>;
  status: { state: string; silencedBy: string[] };
}

interface Setup {
  svc: TestService;
  /** The real Alertmanager (absent when the test runs without one). */
  am: RunningAlertmanager | undefined;
}

/**
 * The service (ALERTMANAGER_URL from `alertmanagerUrl`, default the real Alertmanager's URL; PUBLIC_URL set) and,
 * unless `alertmanager: false`, a real Alertmanager delivering to the service's webhook. Stopped and dropped
 * when the test ends, whatever its outcome.
 */
async function setup(
  t: TestContext,
  opts: {
    label: string;
    matrix: string;
    env?: Record<string, string>;
    alertmanager?: boolean;
    /** ALERTMANAGER_URL from the real Alertmanager's URL; null: unset. */
    alertmanagerUrl?: ((url: string) => string) | null;
  },
): Promise<Setup> {
  const iso = isolation(opts.label);
  const held: { am?: RunningAlertmanager; svc?: TestService } = {};
  t.after(async () => {
    // Alertmanager first, so nothing is delivered to a service that is closing.
    await held.am?.close().catch(() => {});
    await held.svc?.close().catch(() => {});
    await iso.drop();
  });
  const amPort = await freePort();
  const amUrl = `http://127.0.0.1:${amPort}`;
  const alertmanagerUrl = opts.alertmanagerUrl === null ? undefined : opts.alertmanagerUrl ? opts.alertmanagerUrl(amUrl) : amUrl;
  held.svc = await startService({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: opts.matrix,
    env: {
      ...(alertmanagerUrl ? { ALERTMANAGER_URL: alertmanagerUrl } : {}),
      TARGET_REDIS_URL: REDIS_URL,
      PUBLIC_URL,
      CHECK_TIMEOUT: '3s',
      ...opts.env,
    },
  });
  if (opts.alertmanager !== false) {
    held.am = await startAlertmanager({ webhookUrl: `${held.svc.url}/webhooks/alertmanager`, token: WEBHOOK_TOKEN, port: amPort });
  }
  return { svc: held.svc, am: held.am };
}

async function amSilences(am: RunningAlertmanager): Promise<AmSilence[]> {
  const res = await fetch(`${am.url}/api/v2/silences`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return (await res.json()) as AmSilence[];
}

/** The silences whose comment names the run. */
const silencesOfRun = async (am: RunningAlertmanager, runId: string) => (await amSilences(am)).filter((s) => s.comment.includes(runId));

/** Alertmanager's view of the alert with exactly these labels. */
async function amAlert(am: RunningAlertmanager, labels: Record<string, string>): Promise<AmAlert | undefined> {
  const held = (await am.alerts()) as AmAlert[];
  return held.find((a) => JSON.stringify(sortLabels(a.labels)) === JSON.stringify(sortLabels(labels)));
}

const sortLabels = (labels: Record<string, string>) => Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
const matchersOf = (labels: Record<string, string>) =>
  Object.entries(sortLabels(labels)).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }));

type Event = { at: string; type: string; detail: Record<string, unknown> };
const typesOf = (run: RunBody) => run.events.map((e) => e.type);
const eventsOf = (run: RunBody, type: string) => run.events.filter((e) => e.type === type) as Event[];
const only = (run: RunBody, type: string): Event => {
  const found = eventsOf(run, type);
  assert.equal(found.length, 1, `one ${type} event in ${typesOf(run).join(',')}`);
  return found[0]!;
};
const SILENCE_EVENTS = ['silenced', 'silence_failed', 'silence_expired', 'silence_expire_failed'];

/** Waits until the rule has `count` runs and returns them by their `key` param. */
async function runsByKey(svc: TestService, rule: string, count: number): Promise<Map<string, RunBody>> {
  const runs = await eventually(
    async () => {
      const res = await fetch(`${svc.url}/api/runs?rule=${encodeURIComponent(rule)}`, {
        headers: { authorization: `Bearer ${TOKENS.viewer}` },
      });
      const body = (await res.json()) as { runs: RunBody[] };
      return body.runs.length === count ? body.runs : undefined;
    },
    SOON_MS,
    `${count} runs of ${rule} (Alertmanager delivering the alert)`,
  );
  return new Map(runs.map((r) => [String((r.params as Record<string, unknown>)['key']), r]));
}

/** Asserts the run's one silence as its timeline records it and returns that event's detail. */
function silencedEvent(run: RunBody, alertmanager: string): { silenceId: string; endsAt: string } {
  const detail = only(run, 'silenced').detail;
  assert.equal(typeof detail['silenceId'], 'string');
  assert.equal(detail['alertmanager'], alertmanager);
  assert.equal(detail['durationMs'], THIRTY_MINUTES);
  assert.equal(Date.parse(String(detail['endsAt'])) - Date.parse(String(detail['startsAt'])), THIRTY_MINUTES);
  return { silenceId: String(detail['silenceId']), endsAt: String(detail['endsAt']) };
}

describe('silence: the alert is silenced in Alertmanager while its remediation works', { skip: alertmanagerSkipReason() }, () => {
  it(
    "a silence of the alert's labels is active while the run executes and stays after it succeeds; a dry run creates none",
    { timeout: 60_000 },
    async (t) => {
      const rule = 'silence-running';
      const s = await setup(t, {
        label: 'silence_running',
        matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="SilenceRunning"']
    actions:
      - remediation: test.slow
        params: { key: '{{ labels.instance }}-slow', firstMs: 4000 }
        silence: 30m
      - remediation: test.count
        params: { key: '{{ labels.instance }}-dry' }
        dryRun: true
        silence: 30m
`,
      });
      const am = s.am!;
      const labels = { alertname: 'SilenceRunning', instance: 'gw-1', severity: 'critical' };
      await am.postAlerts([{ labels, annotations: { summary: 'slow to fix' } }]);
      const runs = await runsByKey(s.svc, rule, 2);
      const slow = runs.get('gw-1-slow')!;
      const dry = runs.get('gw-1-dry')!;
      assert.equal(slow.gates.silenceMs, THIRTY_MINUTES);

      // While test.slow works (4 s): the run is running and Alertmanager holds its silence.
      const running = await eventually(
        async () => {
          const run = await getRun(s.svc, slow.id);
          return run.status === 'running' ? run : undefined;
        },
        SOON_MS,
        'the slow run running',
      );
      const event = silencedEvent(running, am.url);
      const types = typesOf(running);
      assert.ok(types.indexOf('alert_checked') < types.indexOf('silenced'), `silenced after the checks: ${types.join(',')}`);
      assert.ok(types.indexOf('silenced') < types.indexOf('started'), `just before it starts: ${types.join(',')}`);
      const during = await silencesOfRun(am, slow.id);
      assert.equal(during.length, 1, JSON.stringify(during));
      const silence = during[0]!;
      assert.equal(silence.id, event.silenceId);
      assert.equal(silence.status.state, 'active');
      assert.deepEqual(
        [...silence.matchers].sort((a, b) => (a.name < b.name ? -1 : 1)),
        matchersOf(labels),
        "the alert's labels, equal",
      );
      assert.equal(silence.createdBy, 'conduit-remediator');
      assert.ok(silence.comment.includes(`${PUBLIC_URL}/api/runs/${slow.id}`), silence.comment);
      assert.ok(silence.comment.includes(rule) && silence.comment.includes('test.slow'), silence.comment);
      assert.equal(Date.parse(silence.endsAt), Date.parse(event.endsAt), 'ends when the timeline says');
      const lasts = Date.parse(silence.endsAt) - Date.parse(silence.startsAt);
      assert.ok(lasts > THIRTY_MINUTES - 10_000 && lasts <= THIRTY_MINUTES, `lasts ${lasts} ms`);
      const suppressed = await amAlert(am, labels);
      assert.equal(suppressed?.status.state, 'suppressed', JSON.stringify(suppressed));
      assert.deepEqual(suppressed?.status.silencedBy, [silence.id]);

      // Succeeded: the silence is left to run out.
      const done = await settled(s.svc, slow.id, 'succeeded', SOON_MS);
      assert.deepEqual(eventsOf(done, 'silence_expired'), []);
      const after = await silencesOfRun(am, slow.id);
      assert.deepEqual(
        after.map((x) => [x.id, x.status.state]),
        [[silence.id, 'active']],
      );
      assert.equal((await amAlert(am, labels))?.status.state, 'suppressed');

      // The dry run of the same alert silenced nothing.
      const dryDone = await settled(s.svc, dry.id, 'dry_run', SOON_MS);
      assert.deepEqual(
        dryDone.events.filter((e) => SILENCE_EVENTS.includes(e.type)),
        [],
      );
      assert.deepEqual(await silencesOfRun(am, dry.id), []);
      assert.equal((await amSilences(am)).length, 1, 'one silence in all');
    },
  );

  it(
    'a failed run keeps one silence over its attempts and expires it when it fails, so the alert pages again; a dead HA member is passed over',
    { timeout: 60_000 },
    async (t) => {
      const rule = 'silence-failing';
      const closed = `http://127.0.0.1:${await freePort()}`;
      const s = await setup(t, {
        label: 'silence_failing',
        alertmanagerUrl: (live) => `${closed},${live}`,
        // Attempts 1s and 2s apart: time to see the silence between them.
        env: { JOB_ATTEMPTS: '3', JOB_BACKOFF: '1s' },
        matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="SilenceFailing"']
    actions:
      - remediation: test.fail
        params: { key: '{{ labels.instance }}', retryable: true }
        silence: 30m
`,
      });
      const am = s.am!;
      const labels = { alertname: 'SilenceFailing', instance: 'db-1', severity: 'critical' };
      await am.postAlerts([{ labels } satisfies PostableAlert]);
      const run = (await runsByKey(s.svc, rule, 1)).get('db-1')!;

      // Between attempts: the run is still being worked on, and its silence holds.
      const retrying = await eventually(
        async () => {
          const r = await getRun(s.svc, run.id);
          return r.events.some((e) => e.type === 'attempt_failed') && r.status !== 'failed' ? r : undefined;
        },
        SOON_MS,
        'a first attempt failed, the run not yet',
      );
      const { silenceId } = silencedEvent(retrying, am.url);
      const during = await silencesOfRun(am, run.id);
      assert.deepEqual(
        during.map((x) => [x.id, x.status.state]),
        [[silenceId, 'active']],
      );
      assert.equal((await amAlert(am, labels))?.status.state, 'suppressed');

      const failed = await settled(s.svc, run.id, 'failed', SOON_MS);
      assert.equal(failed.attempts, 3);
      assert.equal(eventsOf(failed, 'started').length, 3);
      silencedEvent(failed, am.url); // still one: the retries kept the first attempt's silence
      const expired = await eventually(
        async () => {
          const r = await getRun(s.svc, run.id);
          return r.events.some((e) => e.type === 'silence_expired') ? r : undefined;
        },
        SOON_MS,
        'silence_expired in the timeline',
      );
      const detail = only(expired, 'silence_expired').detail;
      assert.deepEqual(detail, { silenceId, alertmanager: am.url, reason: 'failed' });
      const types = typesOf(expired);
      assert.ok(types.lastIndexOf('failed') < types.indexOf('silence_expired'), types.join(','));

      const after = await silencesOfRun(am, run.id);
      assert.deepEqual(
        after.map((x) => [x.id, x.status.state]),
        [[silenceId, 'expired']],
      );
      const paging = await amAlert(am, labels);
      assert.equal(paging?.status.state, 'active', JSON.stringify(paging));
      assert.deepEqual(paging?.status.silencedBy, []);
    },
  );

  it('a remediation that times out fails, and its silence is expired', { timeout: 60_000 }, async (t) => {
    const rule = 'silence-timeout';
    const s = await setup(t, {
      label: 'silence_timeout',
      env: { JOB_ATTEMPTS: '1', REMEDIATION_TIMEOUT: '1s' },
      matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="SilenceTimeout"']
    actions:
      - remediation: test.slow
        params: { key: '{{ labels.instance }}', firstMs: 10000 }
        silence: 30m
`,
    });
    const am = s.am!;
    const labels = { alertname: 'SilenceTimeout', instance: 'q-1', severity: 'warning' };
    await am.postAlerts([{ labels }]);
    const run = (await runsByKey(s.svc, rule, 1)).get('q-1')!;
    const failed = await settled(s.svc, run.id, 'failed', SOON_MS);
    assert.equal(failed.reason, 'timeout');
    const { silenceId } = silencedEvent(failed, am.url);
    const expired = await eventually(
      async () => {
        const [x] = await silencesOfRun(am, run.id);
        return x?.status.state === 'expired' ? x : undefined;
      },
      SOON_MS,
      'the silence expired in Alertmanager',
    );
    assert.equal(expired.id, silenceId);
    assert.equal(only(await getRun(s.svc, run.id), 'silence_expired').detail['reason'], 'failed');
  });

  it(
    "verification: a verified run's silence stays, an unverified run's is expired",
    { timeout: 90_000, skip: prometheusSkipReason() },
    async (t) => {
      let prom: RunningPrometheus | undefined;
      t.after(() => prom?.close());
      prom = await startPrometheus({ scrapeTargets: [] });
      const rule = 'silence-verify';
      const s = await setup(t, {
        label: 'silence_verify',
        env: { PROMETHEUS_URL: prom.url },
        matrix: `
rules:
  - name: ${rule}
    matchers: ['alertname="SilenceVerify"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.instance }}-helped' }
        silence: 30m
        verify: { query: 'vector(1)', within: 10s, every: 500ms }
        onUnverified: none
      - remediation: test.count
        params: { key: '{{ labels.instance }}-not' }
        silence: 30m
        verify: { query: 'vector(1) < 0', within: 2s, every: 500ms }
        onUnverified: none
`,
      });
      const am = s.am!;
      await am.postAlerts([{ labels: { alertname: 'SilenceVerify', instance: 'v-1', severity: 'critical' } }]);
      const runs = await runsByKey(s.svc, rule, 2);
      const helped = runs.get('v-1-helped')!;
      const not = runs.get('v-1-not')!;

      const verified = await eventually(
        async () => {
          const r = await getRun(s.svc, helped.id);
          return r.verification === 'verified' ? r : undefined;
        },
        SOON_MS,
        'the first run verified',
      );
      const unverified = await eventually(
        async () => {
          const r = await getRun(s.svc, not.id);
          return r.verification === 'unverified' && r.events.some((e) => e.type === 'silence_expired') ? r : undefined;
        },
        SOON_MS,
        'the second run unverified, its silence expired',
      );
      const kept = silencedEvent(verified, am.url);
      assert.deepEqual(eventsOf(verified, 'silence_expired'), []);
      const gone = silencedEvent(unverified, am.url);
      assert.deepEqual(only(unverified, 'silence_expired').detail, {
        silenceId: gone.silenceId,
        alertmanager: am.url,
        reason: 'unverified',
      });
      const types = typesOf(unverified);
      assert.ok(types.indexOf('unverified') < types.indexOf('silence_expired'), types.join(','));

      const states = new Map((await amSilences(am)).map((x) => [x.id, x.status.state]));
      assert.equal(states.get(kept.silenceId), 'active', 'verified: left to run out');
      assert.equal(states.get(gone.silenceId), 'expired', 'unverified: expired');
    },
  );

  it(
    'with nothing listening at ALERTMANAGER_URL, the run executes and its timeline says the alert was not silenced',
    { timeout: 60_000 },
    async (t) => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const s = await setup(t, {
        label: 'silence_down',
        alertmanager: false,
        alertmanagerUrl: () => closed,
        matrix: `
rules:
  - name: silence-down
    matchers: ['alertname="SilenceDown"']
    actions:
      - remediation: test.count
        params: { key: down }
        check: { alertFiring: false }
        silence: 30m
`,
      });
      const [delivered] = await deliver(s.svc, alertMessage([{ labels: { alertname: 'SilenceDown', severity: 'critical' } }]));
      const done = await settled(s.svc, delivered!.id, 'succeeded', SOON_MS);
      assert.equal((done.result as Record<string, unknown>)['execution'], 1, 'executed once');
      const failed = only(done, 'silence_failed').detail;
      assert.deepEqual(failed, { errors: [`${closed}: ECONNREFUSED`], durationMs: THIRTY_MINUTES });
      assert.deepEqual(eventsOf(done, 'silenced'), []);
      const types = typesOf(done);
      assert.ok(types.indexOf('silence_failed') < types.indexOf('started'), types.join(','));
    },
  );

  it('a redirect is not followed: the silence is not created through it, and the run executes', { timeout: 60_000 }, async (t) => {
    let target = '';
    // The run page asks for the alert's state too (GET /api/v2/alerts): only the silence requests are counted.
    const asked: string[] = [];
    const redirector: Server = createServer((req, res) => {
      if (req.url?.includes('silence')) asked.push(`${req.method} ${req.url}`);
      res.writeHead(307, { location: `${target}${req.url ?? ''}` });
      res.end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => redirector.close(() => resolve())));
    const address = redirector.address();
    const redirectUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const s = await setup(t, {
      label: 'silence_redirect',
      alertmanagerUrl: () => redirectUrl,
      matrix: `
rules:
  - name: silence-redirect
    matchers: ['alertname="SilenceRedirect"']
    actions:
      - remediation: test.count
        params: { key: redirect }
        check: { alertFiring: false }
        silence: 30m
`,
    });
    target = s.am!.url;
    await s.am!.postAlerts([{ labels: { alertname: 'SilenceRedirect', severity: 'critical' } }]);
    const run = (await runsByKey(s.svc, 'silence-redirect', 1)).get('redirect')!;
    const done = await settled(s.svc, run.id, 'succeeded', SOON_MS);
    const errors = only(done, 'silence_failed').detail['errors'] as string[];
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.ok(errors[0]!.startsWith(`${redirectUrl}: `), errors[0]);
    assert.match(errors[0]!, /redirect/, 'refused as a redirect');
    assert.deepEqual(asked, ['POST /api/v2/silences'], 'asked the redirecting URL once');
    assert.deepEqual(await amSilences(s.am!), [], 'nothing reached Alertmanager through the redirect');
  });

  it('without ALERTMANAGER_URL, a run asking for a silence executes and records why it has none', { timeout: 60_000 }, async (t) => {
    const s = await setup(t, {
      label: 'silence_unset',
      alertmanager: false,
      alertmanagerUrl: null,
      matrix: `
rules:
  - name: silence-unset
    matchers: ['alertname="SilenceUnset"']
    actions:
      - remediation: test.count
        params: { key: unset }
        silence: 30m
`,
    });
    const [delivered] = await deliver(s.svc, alertMessage([{ labels: { alertname: 'SilenceUnset' } }]));
    const done = await settled(s.svc, delivered!.id, 'succeeded', SOON_MS);
    assert.deepEqual(only(done, 'silence_failed').detail, { errors: ['ALERTMANAGER_URL is not set'], durationMs: THIRTY_MINUTES });
  });
});
