/**
 * End to end through a REAL Alertmanager (prometheus-alertmanager 0.25+):
 *
 *   alert posted to Alertmanager's API -> Alertmanager's webhook receiver (bearer token from a
 *   credentials file, send_resolved) -> this service -> runs -> queue -> worker -> Conduit Admin API
 *   stand-in and Slack stand-in.
 *
 * The service is pointed at directly (no proxy in between): what Alertmanager delivered is read
 * from the service's own metrics (`remediator_webhook_duration_seconds_count{code}`,
 * `remediator_alerts_received_total{status}`) and from Alertmanager's metrics.
 *
 * Skipped only when no Alertmanager binary is installed (and ALERTMANAGER_BIN is not set):
 * `apt-get install prometheus-alertmanager`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { alertmanagerSkipReason, type PostableAlert, type RunningAlertmanager, startAlertmanager } from '../support/alertmanager.js';
import { startConduitAdmin, type ConduitAdmin, type RecordedRequest } from '../support/conduit-admin.js';
import { API_TOKENS, eventually, isolation, startService, TOKENS, WEBHOOK_TOKEN, type TestService } from '../support/harness.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';
import type { Run } from '../../src/schemas/runs.js';

/** The provider-down rule of SPEC section 3, as written there. */
const MATRIX = `
defaults:
  approvalTimeout: 30m
  cooldown: 10m
limits:
  global: { max: 30, per: 1h }
rules:
  - name: provider-down
    matchers: ['alertname="ConduitProviderDown"', 'severity=~"critical|high"']
    severity: critical
    responseTime: 5m
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
        approval: auto
        cooldown: 30m
        limit: { max: 3, per: 1h }
      - remediation: notify.webhook
        params: { text: 'Provider {{ labels.provider }} disabled: {{ annotations.summary }}' }
    onResolved:
      - remediation: conduit.enable-provider
        params: { provider: '{{ labels.provider }}' }
        approval: required
`;

/** The name API_TOKENS gives a token (`name:role:token`), so the test does not hard-code it. */
function tokenName(token: string): string {
  const entry = API_TOKENS.split(',')
    .map((e) => e.split(':'))
    .find((parts) => parts[2] === token);
  assert.ok(entry?.[0], 'token not in API_TOKENS');
  return entry[0];
}

/** A run as the API answers it: the schema's own type. */
type ApiRun = Run;

/** What GET /api/v2/alerts answers, the fields used here. */
interface AmAlert {
  fingerprint: string;
  startsAt: string;
  endsAt: string;
  labels: Record<string, string>;
  status: { state: string };
}

/** Sum of the samples of `name` whose label set contains every pair of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) total += Number(m[3]);
  }
  return total;
}

const OPENAI: PostableAlert = {
  labels: { alertname: 'ConduitProviderDown', provider: 'openai', severity: 'critical' },
  annotations: { summary: 'Provider openai down' },
  generatorURL: 'http://prometheus:9090/graph?g0.expr=conduit_provider_up%3D%3D0',
};
const ANTHROPIC: PostableAlert = {
  labels: { alertname: 'ConduitProviderDown', provider: 'anthropic', severity: 'critical' },
  annotations: { summary: 'Provider anthropic down' },
  generatorURL: 'http://prometheus:9090/graph?g0.expr=conduit_provider_up%3D%3D0',
};

describe('end to end through a real Alertmanager', { skip: alertmanagerSkipReason() }, () => {
  const iso = isolation('e2e_am');
  let conduit: ConduitAdmin | undefined;
  let sink: NotifySink | undefined;
  let svc: TestService | undefined;
  let am: RunningAlertmanager | undefined;
  let db: pg.Pool | undefined;

  /** State shared by the steps, which run in order. */
  let firingDisable: ApiRun | undefined;
  let firingFingerprint = '';
  let firingStartsAt = '';

  const service = () => {
    assert.ok(svc, 'service not started');
    return svc;
  };
  const alertmanager = () => {
    assert.ok(am, 'Alertmanager not started');
    return am;
  };
  const admin = () => {
    assert.ok(conduit, 'Conduit stand-in not started');
    return conduit;
  };
  const slack = () => {
    assert.ok(sink, 'notify sink not started');
    return sink;
  };

  async function api<T>(method: 'GET' | 'POST', path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${service().url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, body: (await res.json()) as T };
  }
  const getRun = async (id: string): Promise<ApiRun> => {
    const res = await api<ApiRun>('GET', `/api/runs/${id}`, TOKENS.viewer);
    assert.equal(res.status, 200, `GET /api/runs/${id}`);
    return res.body;
  };
  /** Every run of the provider-down rule, oldest first. */
  const listRuns = async (): Promise<ApiRun[]> => {
    const res = await api<{ runs: ApiRun[] }>('GET', '/api/runs?rule=provider-down&limit=100', TOKENS.viewer);
    assert.equal(res.status, 200, 'GET /api/runs');
    return [...res.body.runs].reverse();
  };
  const runsOf = async (provider: string, phase?: 'firing' | 'resolved') =>
    (await listRuns()).filter((r) => r.alert.labels['provider'] === provider && (phase === undefined || r.phase === phase));
  const serviceMetrics = async (): Promise<string> => {
    const res = await fetch(`${service().url}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    return res.text();
  };
  const amMetrics = async (): Promise<string> => {
    const res = await fetch(`${alertmanager().url}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    return res.text();
  };
  /** Deliveries the service answered with `code`, as its webhook histogram counts them. */
  const deliveries = async (code: '200' | '503') => sample(await serviceMetrics(), 'remediator_webhook_duration_seconds_count', { code });
  const puts = (providerId: number): RecordedRequest[] =>
    admin().requests.filter((r) => r.method === 'PUT' && r.path.toLowerCase() === `/api/providercredentials/${providerId}`);

  /** eventually(), with Alertmanager's recent output in the failure message. */
  async function waitFor<T>(check: () => Promise<T | undefined | null | false>, timeoutMs: number, what: string): Promise<T> {
    try {
      return await eventually(check, timeoutMs, what);
    } catch (err) {
      const logs = am?.logs().split('\n').slice(-15).join('\n') ?? '(Alertmanager not started)';
      throw new Error(`${(err as Error).message}\n--- Alertmanager output (tail) ---\n${logs}`);
    }
  }

  before(async () => {
    conduit = await startConduitAdmin();
    sink = await startNotifySink();
    svc = await startService({
      databaseUrl: iso.databaseUrl,
      prefix: iso.prefix,
      matrix: MATRIX,
      env: { CONDUIT_ADMIN_URL: conduit.url, CONDUIT_ADMIN_KEY: conduit.apiKey, NOTIFY_WEBHOOK_URL: sink.url },
    });
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
    // group_interval 1s (the helper's default) and a 1s repeat_interval: an unchanged firing
    // group is delivered again every second or two, as repeat_interval does in production.
    am = await startAlertmanager({ webhookUrl: `${svc.url}/webhooks/alertmanager`, token: WEBHOOK_TOKEN, repeatInterval: '1s' });
  });

  after(async () => {
    const errors: unknown[] = [];
    const step = async (fn: (() => Promise<unknown>) | undefined) => {
      try {
        await fn?.();
      } catch (err) {
        errors.push(err);
      }
    };
    // Alertmanager first, so nothing is delivered to a service that is closing.
    await step(am && (() => am!.close()));
    await step(svc && (() => svc!.close()));
    await step(db && (() => db!.end()));
    await step(conduit && (() => conduit!.close()));
    await step(sink && (() => sink!.close()));
    await step(() => iso.drop());
    if (errors.length) throw errors[0];
  });

  it('a firing ConduitProviderDown disables the provider once, keeping its baseUrl, and notifies on-call', async () => {
    await alertmanager().postAlerts([OPENAI]);

    const [disable, notify] = await waitFor(
      async () => {
        const runs = await runsOf('openai', 'firing');
        const d = runs.find((r) => r.remediation === 'conduit.disable-provider');
        const n = runs.find((r) => r.remediation === 'notify.webhook');
        return d?.status === 'succeeded' && n?.status === 'succeeded' ? ([d, n] as const) : undefined;
      },
      15_000,
      'both firing runs of openai to succeed',
    );

    const firing = await runsOf('openai', 'firing');
    assert.deepEqual(firing.map((r) => r.remediation).sort(), ['conduit.disable-provider', 'notify.webhook'], 'one run per action');

    // The Conduit stand-in: exactly one PUT, with the whole object and isEnabled flipped.
    const put = puts(1);
    assert.equal(put.length, 1, 'exactly one PUT to provider 1');
    const body = put[0]!.body as Record<string, unknown>;
    assert.equal(body['isEnabled'], false);
    assert.equal(body['baseUrl'], 'https://api.openai.com/v1');
    assert.equal(body['providerName'], 'openai');
    const openai = admin().providers.find((p) => p.providerName === 'openai')!;
    assert.equal(openai.isEnabled, false);
    assert.equal(openai.baseUrl, 'https://api.openai.com/v1');
    assert.equal(admin().providers.find((p) => p.providerName === 'anthropic')!.isEnabled, true, 'nothing else touched');

    // The Slack stand-in.
    await waitFor(
      async () => slack().messages.some((m) => m.text === 'Provider openai disabled: Provider openai down'),
      5000,
      'the notification',
    );
    assert.equal(slack().messages.filter((m) => m.text.startsWith('Provider openai disabled')).length, 1);

    // The alert as Alertmanager holds it: same fingerprint, same startsAt.
    const held = (await alertmanager().alerts()) as AmAlert[];
    const amAlert = held.find((a) => a.labels['provider'] === 'openai' && a.labels['alertname'] === 'ConduitProviderDown');
    assert.ok(amAlert, `Alertmanager holds the alert: ${JSON.stringify(held)}`);
    assert.equal(amAlert.status.state, 'active');
    assert.match(amAlert.fingerprint, /^[0-9a-f]{16}$/);
    for (const run of [disable, notify]) {
      assert.equal(run.alert.fingerprint, amAlert.fingerprint, 'the run keeps the fingerprint Alertmanager computed');
      assert.equal(run.alert.status, 'firing');
      // Alertmanager's API prints milliseconds, its webhook Go's RFC 3339 with nanoseconds: same instant.
      assert.equal(Date.parse(run.alert.startsAt), Date.parse(amAlert.startsAt), `startsAt ${run.alert.startsAt} vs ${amAlert.startsAt}`);
      assert.deepEqual(run.alert.labels, OPENAI.labels);
      // Listings carry a summary of the alert; the run read on its own carries all of it.
      assert.equal((await getRun(run.id)).alert.annotations['summary'], 'Provider openai down');
    }
    assert.equal(disable.target, 'conduit/provider/openai');
    assert.deepEqual(disable.params, { provider: 'openai' });
    assert.equal(disable.attempts, 1);
    assert.equal(disable.approval.required, false);
    firingDisable = disable;
    firingFingerprint = amAlert.fingerprint;
    firingStartsAt = disable.alert.startsAt;
  });

  it('re-deliveries of the same alert (repeat_interval, Prometheus re-sending it) create no second run and no second PUT', async () => {
    assert.ok(firingDisable, 'needs the firing step');
    const runsBefore = (await listRuns()).map((r) => r.id).sort();
    const delivered = await deliveries('200');
    const firingAlerts = sample(await serviceMetrics(), 'remediator_alerts_received_total', { status: 'firing' });

    // Prometheus re-sends a firing alert on every evaluation, with its original startsAt.
    await alertmanager().postAlerts([OPENAI]);
    // Alertmanager delivers the unchanged group again at every repeat_interval (1s here).
    await waitFor(async () => (await deliveries('200')) >= delivered + 2, 10_000, 'two more deliveries from Alertmanager');
    const after = sample(await serviceMetrics(), 'remediator_alerts_received_total', { status: 'firing' });
    assert.ok(after >= firingAlerts + 2, `the firing alert was received again (${firingAlerts} -> ${after})`);
    // Let any job a duplicate might have enqueued run.
    await sleep(500);

    assert.deepEqual((await listRuns()).map((r) => r.id).sort(), runsBefore, 'no run created by a re-delivery');
    assert.equal(puts(1).length, 1, 'no second PUT');
    assert.equal(slack().messages.filter((m) => m.text.startsWith('Provider openai disabled')).length, 1, 'no second notification');
    const again = await getRun(firingDisable.id);
    assert.equal(again.status, 'succeeded');
    assert.equal(again.attempts, 1);
    assert.equal(again.alert.startsAt, firingStartsAt, 'same dedup key: startsAt unchanged');
  });

  it('the resolution creates an enable-provider run that waits for approval, and runs once approved', async () => {
    assert.ok(firingDisable, 'needs the firing step');
    await alertmanager().resolveAlerts([OPENAI]);

    const pending = await waitFor(
      async () => {
        const runs = await runsOf('openai', 'resolved');
        return runs.find((r) => r.remediation === 'conduit.enable-provider');
      },
      10_000,
      'the onResolved run',
    );
    assert.equal(pending.status, 'pending_approval');
    assert.equal(pending.approval.required, true);
    assert.ok(
      pending.approval.expiresAt && Date.parse(pending.approval.expiresAt) > Date.now() + 25 * 60_000,
      'expires after the 30m approvalTimeout',
    );
    assert.equal(pending.alert.status, 'resolved');
    assert.equal(pending.alert.fingerprint, firingFingerprint, 'the resolution has the firing alert fingerprint');
    assert.equal(Date.parse(pending.alert.startsAt), Date.parse(firingStartsAt), 'and its startsAt');
    assert.deepEqual(pending.params, { provider: 'openai' });
    const resolvedRuns = await runsOf('openai', 'resolved');
    assert.deepEqual(
      resolvedRuns.map((r) => r.remediation),
      ['conduit.enable-provider'],
      'only the onResolved action runs on resolution',
    );
    assert.equal((await getRun(firingDisable.id)).status, 'succeeded', 'the executed firing run is left alone');
    // Nothing runs before a human decides.
    await sleep(300);
    assert.equal(puts(1).length, 1, 'no PUT before approval');
    assert.equal(admin().providers.find((p) => p.providerName === 'openai')!.isEnabled, false);
    // On-call is told, with the run id.
    await waitFor(
      async () => slack().messages.some((m) => m.text.includes(pending.id) && /needs approval/.test(m.text)),
      5000,
      'the approval request notification',
    );

    // A viewer may not approve.
    const denied = await api<{ statusCode: number }>('POST', `/api/runs/${pending.id}/approve`, TOKENS.viewer, {});
    assert.equal(denied.status, 403);

    const approved = await api<ApiRun>('POST', `/api/runs/${pending.id}/approve`, TOKENS.approver, { comment: 'openai is back' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.id, pending.id);
    assert.equal(approved.body.approval.decidedBy, tokenName(TOKENS.approver));

    const done = await waitFor(
      async () => {
        const run = await getRun(pending.id);
        return ['succeeded', 'failed'].includes(run.status) ? run : undefined;
      },
      10_000,
      'the approved run to finish',
    );
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.attempts, 1);
    assert.equal(done.approval.decidedBy, tokenName(TOKENS.approver));
    assert.equal(done.approval.comment, 'openai is back');
    assert.ok(done.approval.decidedAt);
    const types = (done.events ?? []).map((e) => e.type);
    for (const t of ['created', 'pending_approval', 'approved', 'succeeded'])
      assert.ok(types.includes(t), `event ${t} in ${types.join(',')}`);

    const put = puts(1);
    assert.equal(put.length, 2, 'exactly one more PUT');
    const body = put[1]!.body as Record<string, unknown>;
    assert.equal(body['isEnabled'], true);
    assert.equal(body['baseUrl'], 'https://api.openai.com/v1');
    const openai = admin().providers.find((p) => p.providerName === 'openai')!;
    assert.equal(openai.isEnabled, true);
    assert.equal(openai.baseUrl, 'https://api.openai.com/v1');

    // A second approval is refused.
    const twice = await api<{ statusCode: number }>('POST', `/api/runs/${pending.id}/approve`, TOKENS.approver, {});
    assert.equal(twice.status, 409);
  });

  it('a delivery the service answers 503 is retried by Alertmanager, and its alert is not lost nor run twice', async () => {
    // PostgreSQL refuses the first insert of a run for the anthropic alert (a sequence survives
    // the rollback): the webhook's real failure path, which must answer 503 so Alertmanager retries.
    await db!.query(`
      CREATE SEQUENCE e2e_refuse_anthropic;
      CREATE FUNCTION e2e_refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.alert->'labels'->>'provider' = 'anthropic' AND nextval('e2e_refuse_anthropic') = 1 THEN
          RAISE EXCEPTION 'e2e: refusing the first write of the anthropic alert';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER e2e_refuse_once BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION e2e_refuse_once();`);
    const refused = await deliveries('503');
    const amFailedBefore = sample(await amMetrics(), 'alertmanager_notification_requests_failed_total', { integration: 'webhook' });

    await alertmanager().postAlerts([ANTHROPIC]);

    await waitFor(async () => (await deliveries('503')) > refused, 10_000, 'the service to answer 503');
    const [disable, notify] = await waitFor(
      async () => {
        const runs = await runsOf('anthropic', 'firing');
        const d = runs.find((r) => r.remediation === 'conduit.disable-provider');
        const n = runs.find((r) => r.remediation === 'notify.webhook');
        return d?.status === 'succeeded' && n && n.status !== 'queued' && n.status !== 'running' ? ([d, n] as const) : undefined;
      },
      15_000,
      'the anthropic runs, stored by a retried delivery, to finish',
    );

    // Alertmanager saw the failure and tried again.
    const amFailed = sample(await amMetrics(), 'alertmanager_notification_requests_failed_total', { integration: 'webhook' });
    assert.ok(amFailed > amFailedBefore, `Alertmanager counted the failed request (${amFailedBefore} -> ${amFailed})`);
    const { rows } = await db!.query<{ n: string }>(`SELECT last_value AS n FROM e2e_refuse_anthropic`);
    assert.ok(Number(rows[0]!.n) >= 2, 'the runs were written by a later delivery');

    assert.equal((await runsOf('anthropic', 'firing')).length, 2, 'one run per action');
    assert.equal(puts(2).length, 1, 'exactly one PUT to provider 2');
    assert.equal((puts(2)[0]!.body as Record<string, unknown>)['baseUrl'], 'https://api.anthropic.com');
    const anthropic = admin().providers.find((p) => p.providerName === 'anthropic')!;
    assert.equal(anthropic.isEnabled, false);
    assert.equal(anthropic.baseUrl, 'https://api.anthropic.com');
    assert.equal(disable.attempts, 1);
    // notify.webhook's target is its message: the default 10m cooldown does not silence the notice
    // about a second provider.
    assert.equal(notify.status, 'succeeded', JSON.stringify(notify));
    await waitFor(
      async () => slack().messages.some((m) => m.text === 'Provider anthropic disabled: Provider anthropic down'),
      5000,
      'the anthropic notification',
    );
    assert.equal(slack().messages.filter((m) => m.text.startsWith('Provider anthropic disabled')).length, 1);
  });
});
