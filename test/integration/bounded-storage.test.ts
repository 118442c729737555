import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { API_TOKENS, eventually, isolation, REDIS_URL, removeMatrix, TOKENS, WEBHOOK_TOKEN, writeMatrix } from '../support/harness.js';
import { freePort } from '../support/redis-server.js';

/**
 * Alerts with huge labels, against a service process of its own (its memory is measured from its
 * /metrics): what a run stores of its alert is bounded (MAX_LABELS, MAX_LABEL_VALUE, MAX_ALERT_SIZE
 * at their defaults), and so are the listing and the service's memory.
 */
const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: bounded
    matchers: ['suite="bounded"']
    actions:
      - remediation: kubernetes.delete-pod
        params: { namespace: '{{ labels.namespace }}', pod: '{{ labels.pod }}' }
        dryRun: true
      - remediation: kubernetes.delete-pod
        params: { namespace: '{{ labels.namespace }}', pod: 'web-{{ labels.n }}' }
        dryRun: true
      - remediation: notify.webhook
        params: { text: '{{ annotations.description }}' }
        dryRun: true
      - remediation: notify.webhook
        params: { text: 'bounded alert {{ labels.n }}' }
        dryRun: true
`;

const MiB = 1024 * 1024;
const FINAL = ['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run'];
const fingerprint = (labels: Record<string, string>) => createHash('sha256').update(JSON.stringify(labels)).digest('hex').slice(0, 16);

function message(labels: Record<string, string>, annotations: Record<string, string> = { summary: 'bounded' }) {
  return {
    version: '4',
    groupKey: '{}:{suite="bounded"}',
    status: 'firing',
    receiver: 'remediator',
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://am.example:9093',
    alerts: [
      {
        status: 'firing',
        labels,
        annotations,
        startsAt: '2026-11-27T13:31:39.202045328Z',
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus:9090/graph?g0.expr=up',
        // As Alertmanager's: a hash of the whole label set, so it differs whatever label differs, wherever.
        fingerprint: fingerprint(labels),
      },
    ],
  };
}

interface Delivered {
  id: string;
  status: string;
  duplicate: boolean;
}

describe('alerts with huge labels: bounded storage, listings and memory', () => {
  const iso = isolation('bounded');
  const matrixPath = writeMatrix(MATRIX);
  let child: ChildProcess;
  let base = '';
  let output = '';
  let db: pg.Client;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: iso.databaseUrl,
        REDIS_URL,
        QUEUE_PREFIX: iso.prefix,
        MATRIX_PATH: matrixPath,
        WEBHOOK_TOKEN,
        API_TOKENS,
        LOG_LEVEL: 'warn',
        SWEEP_INTERVAL: '200ms',
        ...(process.env['BOUNDED_TEST_ENV'] ? JSON.parse(process.env['BOUNDED_TEST_ENV']) : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    await eventually(
      async () => child.exitCode === null && (await fetch(`${base}/health/ready`)).status === 200,
      30_000,
      'the service ready',
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${output}`);
    });
    db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    removeMatrix(matrixPath);
    await iso.drop();
  });

  const deliver = async (body: object): Promise<Delivered[]> => {
    const res = await fetch(`${base}/webhooks/alertmanager`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${WEBHOOK_TOKEN}` },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text.slice(0, 500));
    return (JSON.parse(text) as { runs: Delivered[] }).runs;
  };
  const get = async (path: string, expect = 200): Promise<{ bytes: number; body: any }> => {
    const res = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${TOKENS.viewer}` } });
    const text = await res.text();
    assert.equal(res.status, expect, `${path}: ${text.slice(0, 300)}`);
    return { bytes: Buffer.byteLength(text), body: JSON.parse(text) };
  };
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in /metrics`);
    return Number(line.split(' ')[1]);
  };
  const rss = () => metric('remediator_process_resident_memory_bytes');
  const settled = (ids: string[]) =>
    eventually(
      async () => {
        const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM runs WHERE id = ANY($1::uuid[]) AND status = ANY($2)', [
          ids,
          FINAL,
        ]);
        return Number(rows[0]!.n) === ids.length;
      },
      30_000,
      `${ids.length} runs final`,
    );

  it('five alerts with a 4 MiB label: 20 runs, each alert stored within 64 KiB, a listing under 1 MiB, memory bounded', async (t) => {
    // Warm up what a first delivery, listing and read load, then measure.
    const warm = await deliver(message({ suite: 'bounded', alertname: 'Warm', namespace: 'prod', n: 'w', pod: 'web-w' }));
    await settled(warm.map((r) => r.id));
    await get('/api/runs?limit=20');
    await get(`/api/runs/${warm[0]!.id}`);
    const before = await rss();

    const pods = [1, 2, 3, 4, 5].map((n) => `pod-${n}-${'x'.repeat(4 * MiB)}`);
    const description = 'd'.repeat(512 * 1024);
    const ids: string[] = [];
    for (const [i, pod] of pods.entries()) {
      const runs = await deliver(
        message({ suite: 'bounded', alertname: 'Huge', namespace: 'prod', n: String(i + 1), pod }, { summary: 'huge', description }),
      );
      assert.equal(runs.length, 4, 'the alert is taken: its four actions each make a run');
      assert.ok(runs.every((r) => !r.duplicate));
      ids.push(...runs.map((r) => r.id));
    }
    assert.equal(ids.length, 20);
    assert.ok((await metric('remediator_alerts_truncated_total')) >= 5, 'the cut alerts are counted');

    const { rows } = await db.query<{ n: string; alert: number; params: number }>(
      `SELECT count(*) AS n, max(octet_length(alert::text)) AS alert, max(octet_length(params::text)) AS params
       FROM runs WHERE alert -> 'labels' ->> 'alertname' = 'Huge'`,
    );
    assert.equal(Number(rows[0]!.n), 20);
    assert.ok(Number(rows[0]!.alert) <= 64 * 1024, `a stored alert takes ${rows[0]!.alert} bytes`);
    assert.ok(Number(rows[0]!.params) <= 16 * 1024, `stored params take ${rows[0]!.params} bytes`);
    await settled(ids);

    const listing = await get('/api/runs?limit=20');
    assert.ok(listing.bytes < MiB, `GET /api/runs?limit=20 answered ${listing.bytes} bytes`);
    assert.equal(listing.body.runs.length, 20);
    for (const r of listing.body.runs) {
      assert.equal(r.alert.annotations, undefined, 'a listing has no annotations');
      assert.equal(r.alert.labels.alertname, 'Huge');
      assert.ok(r.alert.labels.pod.length <= 256 && r.alert.labels.pod.endsWith('…'), 'a listed label value is cut to 256 characters');
      assert.equal(r.alert.labelCount, 5);
    }

    // The run read on its own has the whole stored alert: the cut value with its marker.
    const one = await get(`/api/runs/${ids[0]}`);
    assert.ok(one.bytes < 64 * 1024 + 16 * 1024, `GET /api/runs/:id answered ${one.bytes} bytes`);
    const pod = one.body.alert.labels.pod as string;
    const m = /^(pod-1-x+)…\[truncated (\d+) bytes\]$/.exec(pod);
    assert.ok(m, `the cut value ends with its marker: ${pod.slice(-40)}`);
    assert.ok(pods[0]!.startsWith(m[1]!), 'the stored value is the beginning of the sent one');
    assert.equal(m[1]!.length + Number(m[2]), pods[0]!.length);
    assert.ok(Buffer.byteLength(pod) <= 4096);
    assert.ok(Buffer.byteLength(one.body.alert.annotations.description) <= 4096);
    assert.equal(one.body.alert.annotations.summary, 'huge');
    // Its params were rendered from the cut value, which the remediation's schema refuses.
    assert.deepEqual([one.body.status, one.body.reason], ['failed', 'invalid_params']);
    assert.match(one.body.params.pod, /…\[truncated \d+ bytes\]$/);
    const byPod = await get(`/api/runs/${ids[1]}`);
    assert.deepEqual([byPod.body.status, byPod.body.params.pod], ['dry_run', 'web-1'], 'an action not using the cut value runs');

    // Readers at once: every page and every run, several times over.
    await Promise.all([
      ...Array.from({ length: 10 }, () => get('/api/runs?limit=200')),
      ...[...ids, ...ids].map((id) => get(`/api/runs/${id}`)),
    ]);
    const grown = (await rss()) - before;
    t.diagnostic(`listing ${listing.bytes} bytes, one run ${one.bytes} bytes, resident memory grew ${Math.round(grown / MiB)} MiB`);
    assert.ok(grown < 150 * MiB, `the service's resident memory grew by ${Math.round(grown / MiB)} MiB`);
  });

  it('65 labels are stored as 64 and the marker; two alerts differing only past the cap stay two alerts', async () => {
    const wide: Record<string, string> = { suite: 'bounded', alertname: 'Wide', namespace: 'prod', n: 'wide', pod: 'web-wide' };
    for (let i = 0; Object.keys(wide).length < 65; i++) wide[`extra_${String(i).padStart(2, '0')}`] = `v${i}`;
    assert.equal(Object.keys(wide).length, 65);
    const [run] = await deliver(message(wide));
    const { body } = await get(`/api/runs/${run!.id}`);
    assert.equal(Object.keys(body.alert.labels).length, 65, '64 labels and the marker');
    assert.equal(body.alert.labels.__truncated__, '1 label dropped');
    assert.equal(body.alert.labels.alertname, 'Wide');
    assert.equal(body.alert.labels.suite, undefined, 'the last label by name is the one dropped');
    const listed = await get(`/api/runs?fingerprint=${fingerprint(wide)}&limit=1`);
    assert.equal(listed.body.runs[0].alert.labelCount, 65);
    assert.equal(Object.keys(listed.body.runs[0].alert.labels).length, 16, 'a listing shows 16 labels');
    assert.equal(listed.body.runs[0].alert.labels.alertname, 'Wide', 'alertname first');

    // The same beginning, different ends: stored alike, but Alertmanager's fingerprints differ.
    const twin = (end: string) => ({ suite: 'bounded', alertname: 'Twin', namespace: 'prod', n: 'twin', pod: `${'t'.repeat(8192)}${end}` });
    const a = await deliver(message(twin('a')));
    const b = await deliver(message(twin('b')));
    assert.ok([...a, ...b].every((r) => !r.duplicate));
    assert.equal(new Set([...a, ...b].map((r) => r.id)).size, 8, 'two alerts, four runs each');
    const [ra, rb] = [await get(`/api/runs/${a[0]!.id}`), await get(`/api/runs/${b[0]!.id}`)];
    assert.deepEqual(ra.body.alert.labels, rb.body.alert.labels, 'their stored labels are the same');
    assert.notEqual(ra.body.alert.fingerprint, rb.body.alert.fingerprint);
    const again = await deliver(message(twin('a')));
    assert.deepEqual(
      again.map((r) => [r.id, r.duplicate]),
      a.map((r) => [r.id, true]),
      'a re-delivery is a duplicate of its own runs',
    );
  });

  it('takes limit from 1 to 200', async () => {
    const over = await get('/api/runs?limit=201', 400);
    assert.equal(over.body.code, 'VALIDATION');
    assert.match(over.body.message, /^querystring\/limit must be a whole number from 1 to 200/);
    assert.match((await get('/api/runs?limit=500', 400)).body.message, /limit .* 1 to 200/);
    assert.ok((await get('/api/runs?limit=200')).body.runs.length > 20);
  });

  it('the OpenAPI document describes the listing: an alert summary without annotations, limit 1 to 200', async () => {
    const doc = (await (await fetch(`${base}/docs/json`)).json()) as any;
    const op = doc.paths['/api/runs'].get;
    const limit = op.parameters.find((p: { name: string }) => p.name === 'limit');
    assert.match(limit.description ?? limit.schema?.description, /1 to 200/);
    const item = op.responses['200'].content['application/json'].schema.properties.runs.items;
    assert.deepEqual(Object.keys(item.properties.alert.properties).sort(), [
      'endsAt',
      'fingerprint',
      'labelCount',
      'labels',
      'startsAt',
      'status',
    ]);
    assert.equal(item.properties.events, undefined);
    const one = doc.paths['/api/runs/{id}'].get.responses['200'].content['application/json'].schema;
    assert.ok(one.properties.alert.properties.annotations, 'a run read on its own has the whole alert');
  });
});
