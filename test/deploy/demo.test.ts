/**
 * The Compose stack's demo Conduit (deploy/demo/conduit.mjs): its Admin API answers the real Conduit
 * remediations, its traffic reacts to what they do, and with the shipped Prometheus configuration and
 * rules, each of its switches makes the alert it names go pending in a real Prometheus.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'yaml';
import clearCache from '../../remediations/conduit/clear-cache.js';
import disableKey from '../../remediations/conduit/disable-key.js';
import disableProvider from '../../remediations/conduit/disable-provider.js';
import enableProvider from '../../remediations/conduit/enable-provider.js';
import testProvider from '../../remediations/conduit/test-provider.js';
import notifyWebhook from '../../remediations/notify/webhook.js';
import { RemediationError } from '../../remediations/types.js';
import { notifyTarget } from '../../src/notify/client.js';
import { startDemoConduit } from '../../deploy/demo/conduit.mjs';
import { freePort } from '../support/alertmanager.js';
import { executionContext } from '../support/context.js';
import { prometheusSkipReason, startPrometheus } from '../support/prometheus.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DEMO = join(ROOT, 'deploy/demo/conduit.mjs');

type Demo = Awaited<ReturnType<typeof startDemoConduit>>;

async function demo(t: TestContext, opts: Parameters<typeof startDemoConduit>[0] = {}): Promise<Demo> {
  const d = await startDemoConduit({ tickMs: 50, ...opts });
  t.after(() => d.close());
  return d;
}

const ctx = (d: Demo) => executionContext({ conduit: { baseUrl: d.url, apiKey: d.adminKey } });

/** The samples of one metric family in a text exposition, by their label set as written. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

async function metrics(d: Demo, path = '/metrics'): Promise<string> {
  const res = await fetch(`${d.url}${path}`);
  assert.equal(res.status, 200, path);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

const requestsOf = async (d: Demo, provider: string, status: string) =>
  samples(await metrics(d), 'conduit_model_requests_total').get(
    `{model="${provider === 'openai' ? 'gpt-4o-mini' : 'claude-3-5-haiku'}",provider="${provider}",status="${status}"}`,
  ) ?? 0;

test('the Admin API asks for the admin key and answers the provider listing as Conduit does', async (t) => {
  const d = await demo(t, { adminKey: 'k-123' });
  assert.equal((await fetch(`${d.url}/api/ProviderCredentials`)).status, 401);
  assert.equal((await fetch(`${d.url}/api/ProviderCredentials`, { headers: { 'x-api-key': 'wrong' } })).status, 401);
  const res = await fetch(`${d.url}/api/providercredentials`, { headers: { 'x-api-key': 'k-123' } });
  assert.equal(res.status, 200);
  const listed = (await res.json()) as Array<{ providerName: string; isEnabled: boolean; keyCount: number }>;
  assert.deepEqual(
    listed.map((p) => [p.providerName, p.isEnabled, p.keyCount]),
    [
      ['openai', true, 1],
      ['anthropic', true, 1],
      ['groq', false, 1],
    ],
  );
  // A PUT without isEnabled enables, without baseUrl nulls it, as Conduit's controller does.
  const put = await fetch(`${d.url}/api/ProviderCredentials/3`, {
    method: 'PUT',
    headers: { 'x-api-key': 'k-123', 'content-type': 'application/json' },
    body: JSON.stringify({ providerName: 'groq' }),
  });
  assert.equal(put.status, 204);
  assert.equal(d.providers[2]!.isEnabled, true);
  assert.equal(d.providers[2]!.baseUrl, null);
  const bad = await fetch(`${d.url}/api/ProviderCredentials/3`, {
    method: 'PUT',
    headers: { 'x-api-key': 'k-123', 'content-type': 'application/json' },
    body: JSON.stringify({ providerName: 'groq', isEnabled: 'no' }),
  });
  assert.equal(bad.status, 400);
  assert.equal(d.providers[2]!.isEnabled, true, 'a refused PUT changes nothing');
});

test('disabling a failing provider through the real remediation moves its traffic to the others, and the connection test tells failing from healthy', async (t) => {
  const d = await demo(t);
  assert.equal((await fetch(`${d.url}/_fail/openai`, { method: 'POST' })).status, 200);
  await sleep(200);
  assert.ok((await requestsOf(d, 'openai', 'error')) > 0, 'a failing provider answers errors');

  const tested = await testProvider.execute({ provider: 'openai' }, ctx(d)).then(
    () => assert.fail('the connection test of a failing provider fails'),
    (err: unknown) => err,
  );
  assert.ok(tested instanceof RemediationError, String(tested));
  assert.match(tested.message, /simulated failure/);

  await disableProvider.execute({ provider: 'openai' }, ctx(d));
  assert.equal(d.providers[0]!.isEnabled, false);
  assert.equal(d.providers[0]!.baseUrl, 'https://api.openai.com/v1', 'the whole provider went back');
  await sleep(100); // a tick that may have started before the PUT
  const errorsAfter = await requestsOf(d, 'openai', 'error');
  const anthropicBefore = await requestsOf(d, 'anthropic', 'success');
  await sleep(300);
  assert.equal(await requestsOf(d, 'openai', 'error'), errorsAfter, 'a disabled provider gets no requests');
  const perTick = ((await requestsOf(d, 'anthropic', 'success')) - anthropicBefore) / 6;
  assert.ok(perTick >= 8, `anthropic takes all the traffic (about 10 requests a tick), got ${perTick.toFixed(1)}`);

  assert.equal((await fetch(`${d.url}/_fail/OpenAI`, { method: 'DELETE' })).status, 200);
  await testProvider.execute({ provider: 'openai' }, ctx(d));
  await enableProvider.execute({ provider: 'openai' }, ctx(d));
  assert.equal(d.providers[0]!.isEnabled, true);
  const successBefore = await requestsOf(d, 'openai', 'success');
  await sleep(200);
  assert.ok((await requestsOf(d, 'openai', 'success')) > successBefore, 'an enabled healthy provider serves requests again');
});

test('the key and cache remediations and the notification sink work against the demo', async (t) => {
  const d = await demo(t);
  await disableKey.execute({ providerId: 1, keyId: 11, reason: 'leaked' }, ctx(d));
  assert.equal(d.keys.find((k) => k.id === 11)!.isEnabled, false);
  assert.equal(d.keys.find((k) => k.id === 21)!.isEnabled, true);

  await clearCache.execute({ cacheId: 'model-list' }, ctx(d));
  assert.deepEqual(d.clearedCaches, ['model-list']);

  await notifyWebhook.execute({ text: 'Provider openai down' }, executionContext({ notify: notifyTarget(`${d.url}/_notifications`) }));
  const got = (await (await fetch(`${d.url}/_notifications`)).json()) as Array<{ body: { text?: string } }>;
  assert.equal(got.length, 1);
  assert.match(got[0]!.body.text ?? '', /Provider openai down/);
});

test('/_fail names what can fail, refuses anything else and changes nothing then', async (t) => {
  const d = await demo(t);
  const state = (await (await fetch(`${d.url}/_fail`)).json()) as { failing: string[]; names: Record<string, string> };
  assert.deepEqual(state.failing, []);
  assert.deepEqual(Object.keys(state.names).sort(), ['anthropic', 'certificate', 'database', 'disk', 'errors', 'groq', 'memory', 'openai']);

  const unknown = await fetch(`${d.url}/_fail/mistral`, { method: 'POST' });
  assert.equal(unknown.status, 404);
  assert.match(((await unknown.json()) as { error: string }).error, /nothing named "mistral"/);
  assert.equal((await fetch(`${d.url}/_fail/disk`, { method: 'PUT' })).status, 405);
  assert.equal(d.failing.size, 0);

  const before = samples(await metrics(d, '/exporters/kubelet/metrics'), 'kubelet_volume_stats_used_bytes');
  assert.equal((await fetch(`${d.url}/_fail/disk`, { method: 'POST' })).status, 200);
  const during = samples(await metrics(d, '/exporters/kubelet/metrics'), 'kubelet_volume_stats_used_bytes');
  const key = '{namespace="conduit",persistentvolumeclaim="data-conduit-postgres-0"}';
  assert.equal(before.get(key), 0.5 * 20 * 1024 ** 3);
  assert.equal(during.get(key), 0.85 * 20 * 1024 ** 3);
  assert.equal((await fetch(`${d.url}/_fail/disk`, { method: 'DELETE' })).status, 200);
  assert.deepEqual(d.failing, new Set());
  assert.equal((await fetch(`${d.url}/exporters/nope/metrics`)).status, 404);
});

test('run as a program it listens on PORT, refuses a bad one, and exits 0 on SIGTERM', async (t) => {
  const bad = spawn(process.execPath, [DEMO], { env: { ...process.env, PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let badErr = '';
  bad.stderr.on('data', (c: Buffer) => (badErr += c.toString()));
  const [badCode] = (await once(bad, 'exit')) as [number | null];
  assert.notEqual(badCode, 0);
  assert.match(badErr, /PORT must be a positive integer, got "eighty"/);

  const port = await freePort();
  const child = spawn(process.execPath, [DEMO], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  for (let i = 0; i < 100 && !out.includes('demo Conduit on'); i += 1) await sleep(50);
  assert.match(out, new RegExp(`demo Conduit on http://127\\.0\\.0\\.1:${port}`));
  assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  await fetch(`http://127.0.0.1:${port}/_fail/openai`, { method: 'POST' });
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0);
  assert.match(out, /openai fails/);
});

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  static_configs: Array<{ targets: string[] }>;
}

const skipPrometheus = prometheusSkipReason();

test(
  'with the shipped scrape jobs and rules, each switch makes its alert pending in a real Prometheus, and nothing is pending before',
  { skip: skipPrometheus, timeout: 120_000 },
  async (t) => {
    const d = await demo(t, { tickMs: 200 });
    const shipped = parse(readFileSync(join(ROOT, 'config/prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: ScrapeConfig[] };
    const demoJobs = shipped.scrape_configs.filter((c) => c.static_configs.some((s) => s.targets.includes('demo-conduit:8080')));
    assert.deepEqual(
      demoJobs.map((j) => j.job_name).sort(),
      ['cadvisor', 'cert-manager', 'conduit-api', 'kube-state-metrics', 'kubelet', 'postgres-exporter'],
      'every exporter the rules read is a job on the demo',
    );
    const host = new URL(d.url).host;
    const prom = await startPrometheus({
      scrapeTargets: [],
      scrapeConfigs: demoJobs.map((j) => ({ ...j, static_configs: [{ targets: [host] }] })),
      ruleFiles: [join(ROOT, 'config/prometheus/alert-rules.yml')],
    });
    t.after(() => prom.close());

    const pending = async (): Promise<string[]> => {
      const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent('ALERTS')}`);
      const body = (await res.json()) as { data: { result: Array<{ metric: Record<string, string> }> } };
      return body.data.result.map((r) => r.metric['alertname']!).sort();
    };
    const waitPending = async (alertname: string) =>
      prom.waitForSample(`ALERTS{alertname="${alertname}", alertstate="pending"}`, undefined, 30_000);

    // Healthy: every ratio the alerts read has data, and no alert is pending.
    for (const series of [
      'conduit:http_error_ratio',
      'conduit:provider_error_ratio{provider="openai"}',
      'conduit:postgres_connection_usage_ratio',
      'conduit:database_connection_usage_ratio{database="conduit"}',
      'conduit:container_memory_usage_ratio{deployment="conduit-api"}',
      'conduit:pvc_usage_ratio',
      'conduit:certificate_expiry_seconds{name="conduit-tls"}',
    ]) {
      await prom.waitForSample(series, undefined, 30_000);
    }
    await sleep(2000); // two more evaluations
    assert.deepEqual(await pending(), []);

    // `errors` alone: HighErrorRate, and no provider is down.
    await fetch(`${d.url}/_fail/errors`, { method: 'POST' });
    const high = await waitPending('HighErrorRate');
    assert.equal(high.labels['deployment'], 'conduit-api');
    assert.equal(high.labels['namespace'], 'conduit');
    assert.deepEqual(await pending(), ['HighErrorRate']);
    await fetch(`${d.url}/_fail/errors`, { method: 'DELETE' });

    // A provider is down once at least 90% of its requests over 5 minutes failed: groq, disabled so
    // far, fails from its first request on once it is enabled (openai would take 4.5 minutes of failures).
    await fetch(`${d.url}/_fail/groq`, { method: 'POST' });
    const enabled = await fetch(`${d.url}/api/ProviderCredentials/3`, {
      method: 'PUT',
      headers: { 'x-api-key': d.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ ...d.providers[2], isEnabled: true }),
    });
    assert.equal(enabled.status, 204);
    const down = await waitPending('ConduitProviderDown');
    assert.equal(down.labels['provider'], 'groq');
    assert.equal(down.labels['severity'], 'critical');

    const alerts: Array<[string, string, Record<string, string>]> = [
      ['groq', 'ConduitProviderDown', { provider: 'groq' }],
      ['database', 'DatabaseConnectionPoolExhausted', { database: 'conduit', deployment: 'conduit-api', namespace: 'conduit' }],
      ['memory', 'ConduitHighMemoryUsage', { deployment: 'conduit-api', container: 'conduit-api' }],
      ['disk', 'ConduitDiskUsageHigh', { persistentvolumeclaim: 'data-conduit-postgres-0' }],
      ['certificate', 'CertificateExpiringSoon', { certificate: 'conduit-tls', namespace: 'conduit' }],
    ];
    for (const [what, alertname, labels] of alerts) {
      assert.equal((await fetch(`${d.url}/_fail/${what}`, { method: 'POST' })).status, 200);
      const sample = await waitPending(alertname);
      for (const [label, value] of Object.entries(labels)) assert.equal(sample.labels[label], value, `${alertname} ${label}`);
    }
    const now = await pending();
    for (const [, alertname] of alerts) assert.ok(now.includes(alertname), `${alertname} pending in ${now.join(', ')}`);
  },
);
