/**
 * The shipped alert response matrix (config/response-matrix.yaml), end to end: the real service with
 * PostgreSQL, Redis and the BullMQ worker, the Conduit Admin API stand-in, the notify sink and, for
 * the connection-pool rule, a target PostgreSQL database and the Kubernetes API stand-in. Each test
 * has a service, database and key prefix of its own, so no cooldown or limit of one reaches another.
 * `SHOW_TIMELINE=1` prints the happy path's episode as one timeline.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { approve, deliver, getRun, settled, type Api, type DeliveredRun, type RunBody } from '../support/api.js';
import { startConduitAdmin, type ConduitAdmin } from '../support/conduit-admin.js';
import { alertMessage, eventually, isolation, PG_ADMIN_URL, startService, uniqueName, type TestService } from '../support/harness.js';
import { startKubeApiServer } from '../support/kube-api-server.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';

const SHIPPED = readFileSync(fileURLToPath(new URL('../../config/response-matrix.yaml', import.meta.url)), 'utf8');

interface Setup {
  svc: TestService;
  conduit: ConduitAdmin;
  sink: NotifySink;
}

/** The service with the shipped matrix (or `matrix`), a fresh Conduit stand-in and notify sink; all gone when `t` ends. */
async function setup(t: TestContext, label: string, opts: { matrix?: string; env?: Record<string, string> } = {}): Promise<Setup> {
  const conduit = await startConduitAdmin();
  t.after(() => conduit.close());
  const sink = await startNotifySink();
  t.after(() => sink.close());
  const iso = isolation(label);
  const svc = await startService(t, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: opts.matrix ?? SHIPPED,
    env: {
      CONDUIT_ADMIN_URL: conduit.url,
      CONDUIT_ADMIN_KEY: conduit.apiKey,
      NOTIFY_WEBHOOK_URL: sink.url,
      SWEEP_INTERVAL: '200ms',
      ...opts.env,
    },
  });
  // Registered after the service's own close: hooks run in order, so the database goes once nothing uses it.
  t.after(() => iso.drop());
  return { svc, conduit, sink };
}

const FINAL = new Set(['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run']);

/** The run once it has a final status. */
const final = (svc: Api, id: string): Promise<RunBody> =>
  eventually(
    async () => {
      const run = await getRun(svc, id);
      return FINAL.has(run.status) ? run : undefined;
    },
    15_000,
    `run ${id} final`,
  );

/** `status` or `status:reason`, as the assertions below write a run's outcome. */
const outcome = (run: { status: string; reason?: string | null }) => (run.reason ? `${run.status}:${run.reason}` : run.status);
const eventTypes = (run: RunBody) => run.events.map((e) => e.type);
const text = (run: RunBody) => String((run.params as Record<string, unknown>)['text']);
/** A field of the run's result (`summary`, `pids`...). */
const resultOf = (run: RunBody, field: string): unknown => (run.result as Record<string, unknown> | null)?.[field];

const providerDown = (provider: string, startsAt: string, status: 'firing' | 'resolved' = 'firing') =>
  alertMessage([
    {
      labels: { alertname: 'ConduitProviderDown', provider, severity: 'critical', service: 'conduit' },
      annotations: { summary: `Provider ${provider} down` },
      startsAt,
      status,
    },
  ]);

/** The runs of a provider-down delivery, by role; the order is the matrix's. */
function firingRuns(runs: DeliveredRun[]) {
  assert.deepEqual(
    runs.map((r) => [r.remediation, r.status]),
    [
      ['conduit.disable-provider', 'queued'],
      ['notify.webhook', 'waiting'],
      ['notify.webhook', 'waiting'],
    ],
  );
  const [disable, disabledNotice, failedNotice] = runs as [DeliveredRun, DeliveredRun, DeliveredRun];
  return { disable, disabledNotice, failedNotice };
}

function resolvedRuns(runs: DeliveredRun[]) {
  assert.deepEqual(
    runs.map((r) => [r.remediation, r.status]),
    [
      ['conduit.test-provider', 'waiting'],
      ['conduit.enable-provider', 'waiting'],
      ['notify.webhook', 'waiting'],
      ['notify.webhook', 'waiting'],
    ],
  );
  const [test, enable, recoveredNotice, staysDisabledNotice] = runs as [DeliveredRun, DeliveredRun, DeliveredRun, DeliveredRun];
  return { test, enable, recoveredNotice, staysDisabledNotice };
}

const testRequests = (conduit: ConduitAdmin) => conduit.requests.filter((r) => /^\/api\/providercredentials\/test\//i.test(r.path)).length;
const approvalRequests = (sink: NotifySink) => sink.messages.filter((m) => m.text.includes(' needs approval\n'));
const openai = (conduit: ConduitAdmin) => conduit.providers.find((p) => p.providerName === 'openai')!;

/** One event of the timeline, with the detail that says what happened (a notice: what it said). */
function detailOf(run: RunBody, type: string, d: Record<string, unknown>): string {
  const result = d['result'] as Record<string, unknown> | undefined;
  if (type === 'succeeded' && run.remediation === 'notify.webhook') return `posted: ${text(run).replace(/\n/g, ' / ')}`;
  switch (type) {
    case 'created':
      return `alert ${String(d['alertStatus'])}`;
    case 'waiting':
      return `after ${String(d['after'])} when ${String(d['when'])}`;
    case 'predecessor_finished':
      return `predecessor ${String(d['status'])}${d['reason'] ? ` (${String(d['reason'])})` : ''}, when ${String(d['when'])}: ${d['holds'] ? 'goes on' : 'does not hold'}`;
    case 'succeeded':
      return String(result?.['summary'] ?? '');
    case 'failed':
    case 'attempt_failed':
      return `${String(d['code'] ?? d['reason'])}: ${String(d['error'] ?? '')}`;
    case 'pending_approval':
      return `expires ${String(d['expiresAt'])}`;
    case 'approved':
      return `by ${String(d['by'])}${d['comment'] ? `: ${String(d['comment'])}` : ''}`;
    case 'notified':
      return String(d['kind']);
    case 'started':
      return `attempt ${String(d['attempt'])}`;
    default:
      return d['reason'] ? String(d['reason']) : '';
  }
}

/** Every event of the runs, oldest first: time from the first, the run's remediation and action, the event and its detail. */
function timeline(runs: RunBody[]): string {
  const rows = runs.flatMap((run) => run.events.map((e, n) => ({ run, e, n, at: Date.parse(e.at) })));
  rows.sort((x, y) => x.at - y.at || x.run.createdAt.localeCompare(y.run.createdAt) || x.n - y.n);
  const t0 = rows[0]?.at ?? 0;
  return rows
    .map(({ run, e, at }) => {
      const time = `${e.at.slice(11, 23)} +${((at - t0) / 1000).toFixed(3)}s`;
      const who = `${run.remediation} ${run.action}`.padEnd(36);
      return `${time}  ${who} ${e.type.padEnd(21)} ${detailOf(run, e.type, e.detail)}`.trimEnd();
    })
    .join('\n');
}

describe('the shipped response matrix, end to end', () => {
  it('a provider Conduit does not know: the disable fails not_found, on-call gets the failure notice and no "disabled" one', async (t) => {
    const { svc, conduit, sink } = await setup(t, 'shipped_a');
    const startsAt = '2026-11-27T13:31:39.202045328Z';
    const { disable, disabledNotice, failedNotice } = firingRuns(await deliver(svc, providerDown('azure', startsAt)));

    const failed = await settled(svc, disable.id, 'failed');
    assert.equal(failed.reason, 'not_found');
    assert.equal(failed.error, 'Conduit has no provider "azure"; known: openai, anthropic, groq');
    assert.deepEqual(outcome(await final(svc, disabledNotice.id)), 'skipped:predecessor_failed');
    const sent = await final(svc, failedNotice.id);
    assert.equal(outcome(sent), 'succeeded');
    const notice =
      'Provider azure down: could not disable provider azure in Conduit: Conduit has no provider "azure"; known: openai, anthropic, groq. ' +
      'It still gets requests: disable it by hand.';
    assert.equal(text(sent), notice);

    // The rule's notice, and the service's own notice of the failed run; nothing says it was disabled.
    const messages = await eventually(async () => (sink.messages.length >= 2 ? sink.messages.map((m) => m.text) : undefined));
    assert.ok(messages.includes(notice), messages.join('\n---\n'));
    assert.ok(
      messages.some((m) => m.startsWith('[conduit-remediator] conduit.disable-provider on conduit/provider/azure failed\n')),
      messages.join('\n---\n'),
    );
    assert.equal(messages.length, 2, messages.join('\n---\n'));
    assert.ok(!messages.some((m) => m.includes('Disabled Conduit provider') || m.includes('routes no requests')), messages.join('\n---\n'));
    assert.ok(!conduit.requests.some((r) => r.method === 'PUT'), 'nothing was written to Conduit');

    // Its resolution tests nothing and proposes nothing: the disable did not succeed.
    const back = resolvedRuns(await deliver(svc, providerDown('azure', startsAt, 'resolved')));
    assert.equal(outcome(await final(svc, back.test.id)), 'skipped:predecessor_failed');
    assert.equal(outcome(await final(svc, back.enable.id)), 'skipped:predecessor_skipped');
    assert.equal(outcome(await final(svc, back.recoveredNotice.id)), 'skipped:predecessor_skipped');
    assert.equal(outcome(await final(svc, back.staysDisabledNotice.id)), 'skipped:predecessor_skipped');
    assert.equal(testRequests(conduit), 0);
    assert.equal(sink.messages.length, 2);
  });

  it('a disable suppressed by its cooldown: on resolve nothing is tested, nothing is proposed for re-enabling', async (t) => {
    const { svc, conduit, sink } = await setup(t, 'shipped_b');
    // The first episode: disabled, resolved, tested and re-enabled with approval.
    const first = '2026-11-27T13:00:00.000000000Z';
    const one = firingRuns(await deliver(svc, providerDown('openai', first)));
    await settled(svc, one.disable.id, 'succeeded');
    const oneBack = resolvedRuns(await deliver(svc, providerDown('openai', first, 'resolved')));
    await settled(svc, oneBack.enable.id, 'pending_approval');
    await approve(svc, oneBack.enable.id).expect(200);
    await settled(svc, oneBack.enable.id, 'succeeded');
    for (const r of [one.disabledNotice, oneBack.recoveredNotice]) await settled(svc, r.id, 'succeeded');
    assert.equal(openai(conduit).isEnabled, true);
    await eventually(async () => approvalRequests(sink).length === 1 || undefined, 5000, 'the first episode approval request');
    const testsBefore = testRequests(conduit);
    const messagesBefore = sink.messages.length;
    assert.equal(testsBefore, 1);

    // The provider goes down again within the disable's 30m cooldown: a second episode.
    const second = '2026-11-27T13:10:00.000000000Z';
    const runs = await deliver(svc, providerDown('openai', second));
    assert.deepEqual(
      runs.map((r) => [r.remediation, r.status]),
      [
        ['conduit.disable-provider', 'suppressed'],
        ['notify.webhook', 'waiting'],
        ['notify.webhook', 'waiting'],
      ],
    );
    const disable = await getRun(svc, runs[0]!.id);
    assert.equal(outcome(disable), 'suppressed:cooldown');
    for (const r of runs.slice(1)) assert.equal(outcome(await final(svc, r.id)), 'skipped:predecessor_suppressed');
    assert.equal(openai(conduit).isEnabled, true, 'the suppressed disable changed nothing');

    const back = resolvedRuns(await deliver(svc, providerDown('openai', second, 'resolved')));
    const test = await final(svc, back.test.id);
    assert.equal(outcome(test), 'skipped:predecessor_suppressed');
    assert.equal(test.after?.runId, disable.id, 'the test waited for this episode’s disable, not the first one’s');
    assert.equal(outcome(await final(svc, back.enable.id)), 'skipped:predecessor_skipped');
    assert.equal(outcome(await final(svc, back.recoveredNotice.id)), 'skipped:predecessor_skipped');
    assert.equal(outcome(await final(svc, back.staysDisabledNotice.id)), 'skipped:predecessor_skipped');
    assert.equal(testRequests(conduit), testsBefore, 'no connection test reached Conduit');
    assert.equal(approvalRequests(sink).length, 1, 'no approval request for this episode');
    assert.equal(sink.messages.length, messagesBefore, 'nothing at all was posted for the second episode');
  });

  it('the happy path: disabled and notified, resolved, tested, re-enabling approved and done', async (t) => {
    const { svc, conduit, sink } = await setup(t, 'shipped_c');
    const startsAt = '2026-11-27T13:31:39.202045328Z';
    const { disable, disabledNotice, failedNotice } = firingRuns(await deliver(svc, providerDown('openai', startsAt)));

    const disabled = await settled(svc, disable.id, 'succeeded');
    assert.equal(resultOf(disabled, 'summary'), 'Disabled Conduit provider "openai" (id 1)');
    assert.deepEqual(
      [openai(conduit).isEnabled, openai(conduit).baseUrl],
      [false, 'https://api.openai.com/v1'],
      'disabled, its settings kept',
    );
    const notice = await settled(svc, disabledNotice.id, 'succeeded');
    const disabledText =
      'Provider openai down: Disabled Conduit provider "openai" (id 1). Conduit routes no requests to it until it is re-enabled, ' +
      "which is proposed for approval once the alert resolves and the provider passes Conduit's connection test.";
    assert.equal(text(notice), disabledText);
    const notDisabled = await final(svc, failedNotice.id);
    assert.equal(outcome(notDisabled), 'skipped:predecessor_succeeded');
    assert.deepEqual(
      sink.messages.map((m) => m.text),
      [disabledText],
    );

    const back = resolvedRuns(await deliver(svc, providerDown('openai', startsAt, 'resolved')));
    const tested = await settled(svc, back.test.id, 'succeeded');
    assert.equal(resultOf(tested, 'summary'), `Conduit's connection test of provider "openai" (id 1) succeeded; it listed 3 models`);
    const pending = await settled(svc, back.enable.id, 'pending_approval');
    assert.equal(pending.approval.required, true);
    const recovered = await settled(svc, back.recoveredNotice.id, 'succeeded');
    assert.equal(
      text(recovered),
      `Provider openai recovered: the alert resolved and Conduit's connection test of provider "openai" (id 1) succeeded; it listed 3 models. ` +
        'It stays disabled until someone approves re-enabling it.',
    );
    const staysDisabled = await final(svc, back.staysDisabledNotice.id);
    assert.equal(outcome(staysDisabled), 'skipped:predecessor_succeeded');
    assert.equal(openai(conduit).isEnabled, false, 'still disabled while the approval waits');

    // The approval request names the predecessor's outcome.
    const [request] = await eventually(async () => (approvalRequests(sink).length > 0 ? approvalRequests(sink) : undefined));
    const lines = request!.text.split('\n');
    assert.equal(lines[0], '[conduit-remediator] conduit.enable-provider on conduit/provider/openai needs approval');
    assert.ok(
      lines.includes(
        `After conduit.test-provider (run ${back.test.id}) succeeded: Conduit's connection test of provider "openai" (id 1) succeeded; it listed 3 models`,
      ),
      request!.text,
    );
    assert.ok(request!.text.includes(`/api/runs/${back.enable.id}/approve`), request!.text);
    await eventually(async () => eventTypes(await getRun(svc, back.enable.id)).includes('notified') || undefined, 5000, 'notified event');

    await approve(svc, back.enable.id, { comment: 'provider healthy again' }).expect(200);
    const enabled = await settled(svc, back.enable.id, 'succeeded');
    assert.equal(resultOf(enabled, 'summary'), 'Enabled Conduit provider "openai" (id 1)');
    assert.deepEqual([openai(conduit).isEnabled, openai(conduit).baseUrl], [true, 'https://api.openai.com/v1']);
    // The recovered notice followed the approval request within its rule's window: it may come a moment later.
    await eventually(async () => sink.messages.length >= 3 || undefined, 5000, 'three messages');
    assert.equal(sink.messages.length, 3, sink.messages.map((m) => m.text).join('\n---\n'));

    // Predecessors and dependents, as GET /api/runs/:id answers them.
    const run = (id: string) => getRun(svc, id);
    const [d, n1, n2, tt, en, r1, r2] = await Promise.all(
      [disable, disabledNotice, failedNotice, back.test, back.enable, back.recoveredNotice, back.staysDisabledNotice].map((r) => run(r.id)),
    );
    assert.equal(d!.after, null);
    assert.deepEqual(d!.dependents, [n1!.id, n2!.id, tt!.id], 'the firing notices and the resolution’s test wait for the disable');
    assert.deepEqual(n1!.after, { action: 'firing:0', ref: 'disable', when: 'succeeded', runId: d!.id });
    assert.deepEqual(n2!.after, { action: 'firing:0', ref: 'disable', when: 'failed', runId: d!.id });
    assert.deepEqual(tt!.after, { action: 'firing:0', ref: 'firing.disable', when: 'succeeded', runId: d!.id });
    assert.deepEqual(tt!.dependents, [en!.id, r1!.id, r2!.id]);
    assert.deepEqual(en!.after, { action: 'resolved:0', ref: 'test', when: 'succeeded', runId: tt!.id });
    assert.deepEqual(r1!.after, { action: 'resolved:0', ref: 'test', when: 'succeeded', runId: tt!.id });
    assert.deepEqual(r2!.after, { action: 'resolved:0', ref: 'test', when: 'failed', runId: tt!.id });
    for (const leaf of [n1!, n2!, en!, r1!, r2!]) assert.deepEqual(leaf.dependents, []);
    assert.deepEqual([d!, n1!, n2!, tt!, en!, r1!, r2!].map(outcome), [
      'succeeded',
      'succeeded',
      'skipped:predecessor_succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
      'skipped:predecessor_succeeded',
    ]);

    // The timelines.
    const ranAfter = ['created', 'waiting', 'predecessor_finished', 'queued', 'started', 'succeeded'];
    const skipped = ['created', 'waiting', 'predecessor_finished', 'skipped'];
    // The disable and the enable prove afterwards that they helped: their verification is pending (no PROMETHEUS_URL here).
    assert.deepEqual(eventTypes(d!), ['created', 'queued', 'started', 'succeeded', 'verification_pending']);
    assert.equal(d!.verification, 'pending');
    assert.deepEqual(eventTypes(n1!), ranAfter);
    assert.deepEqual(eventTypes(n2!), skipped);
    assert.deepEqual(eventTypes(tt!), ranAfter);
    assert.deepEqual(eventTypes(en!), [
      'created',
      'waiting',
      'predecessor_finished',
      'pending_approval',
      'notified',
      'approved',
      'started',
      'succeeded',
      'verification_pending',
    ]);
    // The recovered notice came within its rule's window after the approval request: folded into the
    // window's message, its timeline says when that was posted.
    assert.deepEqual(eventTypes(r1!), resultOf(r1!, 'folded') === true ? [...ranAfter, 'notified'] : ranAfter);
    assert.deepEqual(eventTypes(r2!), skipped);
    const moved = (r: RunBody) => r.events.find((e) => e.type === 'predecessor_finished')!.detail;
    assert.deepEqual(moved(tt!), {
      runId: d!.id,
      status: 'succeeded',
      reason: null,
      verification: 'pending',
      when: 'succeeded',
      holds: true,
    });
    assert.deepEqual(moved(n2!), {
      runId: d!.id,
      status: 'succeeded',
      reason: null,
      verification: 'pending',
      when: 'failed',
      holds: false,
    });
    assert.deepEqual(moved(en!), { runId: tt!.id, status: 'succeeded', reason: null, when: 'succeeded', holds: true });
    assert.deepEqual(en!.events.find((e) => e.type === 'approved')!.detail, { by: 'bob', comment: 'provider healthy again' });

    if (process.env['SHOW_TIMELINE']) console.log(`\n${timeline([d!, n1!, n2!, tt!, en!, r1!, r2!])}\n`);
  });

  it('a provider failing the connection test stays disabled: no re-enabling is proposed, on-call is told', async (t) => {
    const { svc, conduit, sink } = await setup(t, 'shipped_d');
    conduit.failingTests.set(1, 'Invalid API key provided');
    const startsAt = '2026-11-27T13:31:39.202045328Z';
    const firing = firingRuns(await deliver(svc, providerDown('openai', startsAt)));
    await settled(svc, firing.disable.id, 'succeeded');
    await settled(svc, firing.disabledNotice.id, 'succeeded');

    const back = resolvedRuns(await deliver(svc, providerDown('openai', startsAt, 'resolved')));
    const test = await settled(svc, back.test.id, 'failed');
    assert.equal(test.reason, 'test_failed');
    const error = `Conduit's connection test of provider "openai" (id 1) failed: Invalid API key provided`;
    assert.equal(test.error, error);
    assert.equal(test.attempts, 1, 'a failed test is not retried');
    assert.equal(outcome(await final(svc, back.enable.id)), 'skipped:predecessor_failed');
    assert.equal(outcome(await final(svc, back.recoveredNotice.id)), 'skipped:predecessor_failed');
    const told = await settled(svc, back.staysDisabledNotice.id, 'succeeded');
    const staysText = `Provider openai stays disabled: the alert resolved, but ${error}. Re-enable it by hand once it works.`;
    assert.equal(text(told), staysText);

    const messages = await eventually(async () => (sink.messages.length >= 3 ? sink.messages.map((m) => m.text) : undefined));
    assert.ok(messages.includes(staysText), messages.join('\n---\n'));
    assert.ok(messages.some((m) => m.startsWith('[conduit-remediator] conduit.test-provider on conduit/provider/openai failed\n')));
    assert.equal(approvalRequests(sink).length, 0, 'no approval request');
    assert.equal(messages.length, 3, messages.join('\n---\n'));
    assert.equal(openai(conduit).isEnabled, false, 'still disabled');
    assert.equal(conduit.requests.filter((r) => r.method === 'PUT').length, 1, 'only the disable wrote to Conduit');
  });

  describe('database connection pool exhausted', () => {
    // The shipped idleFor is 5m; these sessions are idle for seconds, so this run reads 1s instead. Without
    // PROMETHEUS_URL here the kill's verification cannot succeed: it ends unverified after its `within`, 2m
    // shipped, 1s here, and so proposes the restart.
    const KILL_VERIFY = 'within: 2m\n        onUnverified: escalate\n      # Runbook: kill idle connections';
    assert.equal(SHIPPED.split('idleFor: 5m }').length, 2, 'the shipped matrix sets idleFor once');
    assert.equal(SHIPPED.split(KILL_VERIFY).length, 2, 'the shipped matrix verifies the kill within 2m');
    const matrix = SHIPPED.replace('idleFor: 5m }', 'idleFor: 1s }').replace(KILL_VERIFY, KILL_VERIFY.replace('2m', '1s'));
    // The kill is scoped to Conduit's database; each test's target database has a name of its own, put in its place.
    const SCOPE = "allow: { database: 'conduit' }";
    assert.equal(SHIPPED.split(SCOPE).length, 2, 'the shipped matrix scopes the kill to the database conduit');
    const matrixFor = (database: string) => matrix.replace(SCOPE, `allow: { database: '${database}' }`);

    /** A database of the test's own with `count` sessions left idle for more than a second; all gone when `t` ends. */
    async function idleDatabase(t: TestContext, count: number) {
      const database = uniqueName('remediator_test_target').toLowerCase();
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
      const url = new URL(PG_ADMIN_URL);
      url.pathname = `/${database}`;
      const sessions: Array<{ client: pg.Client; pid: number; ended: Promise<void> }> = [];
      t.after(async () => {
        await Promise.all(sessions.map((s) => s.client.end().catch(() => {})));
        await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
        await admin.end();
      });
      for (let i = 0; i < count; i++) {
        const client = new pg.Client({ connectionString: url.toString() });
        client.on('error', () => {});
        const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
        await client.connect();
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        sessions.push({ client, pid: rows[0]!.pid, ended });
      }
      await sleep(1500);
      return { database, url: url.toString(), sessions };
    }

    const poolExhausted = (database: string) =>
      alertMessage([
        {
          labels: { alertname: 'DatabaseConnectionPoolExhausted', database, namespace: 'conduit', deployment: 'conduit-api' },
          annotations: { summary: `Database connection pool exhausted for ${database}` },
        },
      ]);

    it('idle sessions are killed at once; the restart asks approval with how many were killed, and restarts once approved', async (t) => {
      const target = await idleDatabase(t, 3);
      const kube = await startKubeApiServer();
      t.after(() => kube.close());
      kube.put({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'conduit-api', namespace: 'conduit' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'conduit-api' } },
          template: { metadata: { labels: { app: 'conduit-api' } }, spec: { containers: [{ name: 'api', image: 'conduit:1.2.3' }] } },
        },
      });
      const { svc, sink } = await setup(t, 'shipped_e', {
        matrix: matrixFor(target.database),
        env: { TARGET_DATABASE_URL: target.url, KUBECONFIG: await kube.writeKubeconfig() },
      });
      const runs = await deliver(svc, poolExhausted(target.database));
      assert.deepEqual(
        runs.map((r) => [r.remediation, r.status]),
        [
          ['postgres.kill-idle-connections', 'queued'],
          ['kubernetes.rollout-restart', 'waiting'],
          ['kubernetes.rollout-restart', 'waiting'],
          ['notify.webhook', 'waiting'],
        ],
      );
      const [kill, restart, restartOnFailure, notice] = runs as [DeliveredRun, DeliveredRun, DeliveredRun, DeliveredRun];
      const summary = `Terminated 3 sessions of database "${target.database}" idle for more than 1s`;
      const killed = await settled(svc, kill.id, 'succeeded');
      assert.equal(resultOf(killed, 'summary'), summary);
      assert.deepEqual(new Set(resultOf(killed, 'pids') as number[]), new Set(target.sessions.map((s) => s.pid)));
      await Promise.all(target.sessions.map((s) => s.ended));

      const told = await settled(svc, notice.id, 'succeeded');
      assert.match(
        text(told),
        new RegExp(`^Database connection pool exhausted for ${target.database}\\.\nKilling idle connections succeeded: ${summary}\n`),
      );
      // Not verified within its `within` (no Prometheus to say so): the restart is proposed; the one for a failed kill is not.
      const pending = await settled(svc, restart.id, 'pending_approval');
      assert.equal((await getRun(svc, kill.id)).verification, 'unverified');
      assert.equal(pending.after?.runId, kill.id);
      assert.equal(outcome(await final(svc, restartOnFailure.id)), 'skipped:predecessor_succeeded');
      const request = await eventually(async () => approvalRequests(sink)[0]);
      const lines = request.text.split('\n');
      assert.equal(lines[0], '[conduit-remediator] kubernetes.rollout-restart on kubernetes/conduit/deployment/conduit-api needs approval');
      assert.ok(lines.includes(`After postgres.kill-idle-connections (run ${kill.id}) succeeded: ${summary}`), request.text);
      assert.ok(sink.messages.some((m) => m.text === text(told)));
      assert.ok(!kube.requests.some((r) => r.method === 'PATCH'), 'nothing restarted before the approval');

      await approve(svc, restart.id).expect(200);
      const restarted = await settled(svc, restart.id, 'succeeded');
      assert.match(String(resultOf(restarted, 'summary')), /^Started a rolling restart of deployment conduit\/conduit-api \(restartedAt /);
      const template = (kube.get('deployments', 'conduit', 'conduit-api')!['spec'] as { template: { metadata: { annotations?: object } } })
        .template;
      assert.ok(template.metadata.annotations && 'kubectl.kubernetes.io/restartedAt' in template.metadata.annotations);
    });

    it('without Kubernetes the waiting restart fails target_not_configured when it moves on, and asks no approval', async (t) => {
      const configured = Boolean(process.env['KUBERNETES_SERVICE_HOST']) || existsSync(join(homedir(), '.kube', 'config'));
      if (configured) return t.skip('a Kubernetes configuration is found on this machine');
      const target = await idleDatabase(t, 1);
      const { svc, sink } = await setup(t, 'shipped_e2', { matrix: matrixFor(target.database), env: { TARGET_DATABASE_URL: target.url } });
      assert.equal(svc.services.targets.configured.has('kubernetes'), false);
      const [kill, restart, , notice] = (await deliver(svc, poolExhausted(target.database))) as DeliveredRun[];
      assert.equal(restart!.status, 'waiting', 'not refused at intake: it waits like any dependent');
      await settled(svc, kill!.id, 'succeeded');
      const failed = await final(svc, restart!.id);
      assert.equal(outcome(failed), 'failed:target_not_configured');
      assert.deepEqual(eventTypes(failed), ['created', 'waiting', 'predecessor_finished', 'failed']);
      assert.equal(outcome(await final(svc, notice!.id)), 'succeeded');
      await eventually(async () => sink.messages.length >= 1 || undefined);
      assert.equal(approvalRequests(sink).length, 0);
    });
  });
});
