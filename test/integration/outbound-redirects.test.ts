/**
 * The service's own HTTP clients (Prometheus queries, the Alertmanager alert check) never follow a
 * redirect: a listener answering 307/308 sends them nowhere else, and the failure names the redirect.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AlertmanagerUnavailable, createAlertCheck } from '../../src/alertmanager/check.js';
import { createPrometheusClient, PrometheusUnavailable } from '../../src/prometheus/client.js';

interface Listener {
  url: string;
  hits: Array<{ method: string; url: string }>;
}

/** A local listener that records each request and answers it with `answer`. */
async function listener(
  t: TestContext,
  answer: (req: IncomingMessage) => { status: number; headers?: Record<string, string>; body?: string },
) {
  const hits: Listener['hits'] = [];
  const server = createServer((req, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '' });
    req.resume();
    const a = answer(req);
    res.writeHead(a.status, a.headers ?? {}).end(a.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

/** The place a redirect points to: it would answer as the real service does, so following it would succeed. */
async function target(t: TestContext, body: string): Promise<Listener> {
  return listener(t, () => ({ status: 200, headers: { 'content-type': 'application/json' }, body }));
}

const redirecting = (t: TestContext, to: string, status: number) =>
  listener(t, (req) => ({ status, headers: { location: `${to}${req.url ?? '/'}` }, body: 'moved' }));

const PROMETHEUS_ANSWER = JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } });

test('Prometheus: a 307 is not followed, and the failure names the status and where it pointed', async (t) => {
  const other = await target(t, PROMETHEUS_ANSWER);
  const prometheus = await redirecting(t, other.url, 307);
  const client = createPrometheusClient({ url: prometheus.url, requestTimeoutMs: 2000 });

  await assert.rejects(client.query('up'), (err: unknown) => {
    assert.ok(err instanceof PrometheusUnavailable, String(err));
    assert.deepEqual(err.errors, [`${prometheus.url}: HTTP 307 redirect to ${other.url}/api/v1/query, not followed`]);
    return true;
  });
  assert.equal(prometheus.hits.length, 1);
  assert.deepEqual(other.hits, [], 'the redirect target received a request');
});

test('Prometheus: a long query sent as POST and redirected with 308 goes nowhere else either', async (t) => {
  const other = await target(t, PROMETHEUS_ANSWER);
  const prometheus = await redirecting(t, `${other.url}/elsewhere?sig=secret-in-the-query&to=`, 308);
  const client = createPrometheusClient({ url: prometheus.url, requestTimeoutMs: 2000 });
  const longQuery = `up{job=~"${'a|'.repeat(1500)}b"}`;

  await assert.rejects(client.query(longQuery), (err: unknown) => {
    assert.ok(err instanceof PrometheusUnavailable, String(err));
    assert.match(err.message, new RegExp(`HTTP 308 redirect to ${other.url.replace(/\./g, '\\.')}/elsewhere, not followed`));
    assert.doesNotMatch(err.message, /secret-in-the-query/);
    return true;
  });
  assert.deepEqual(
    prometheus.hits.map((h) => h.method),
    ['POST'],
  );
  assert.deepEqual(other.hits, []);
});

const ALERT = { fingerprint: 'f1', startsAt: '2025-01-01T00:00:00.000Z', labels: { alertname: 'DiskFull' } };

test('Alertmanager check: a redirecting member counts as not answering and is not followed', async (t) => {
  const listed = JSON.stringify([{ fingerprint: 'f1', startsAt: ALERT.startsAt, status: { state: 'active' } }]);
  const other = await target(t, listed);
  const alertmanager = await redirecting(t, other.url, 307);

  const alone = createAlertCheck({ urls: [alertmanager.url], requestTimeoutMs: 2000 });
  await assert.rejects(alone.isFiring(ALERT), (err: unknown) => {
    assert.ok(err instanceof AlertmanagerUnavailable, String(err));
    assert.deepEqual(err.errors, [`${alertmanager.url}: HTTP 307 redirect to ${other.url}/api/v2/alerts, not followed`]);
    return true;
  });

  // In an HA pair the other member's answer decides; the redirect still leads nowhere.
  const healthy = await target(t, '[]');
  const pair = createAlertCheck({ urls: [alertmanager.url, healthy.url], requestTimeoutMs: 2000 });
  assert.deepEqual(await pair.isFiring(ALERT), { firing: false, source: healthy.url, state: null });

  assert.equal(alertmanager.hits.length, 2);
  assert.deepEqual(other.hits, [], 'the redirect target received a request');
});
