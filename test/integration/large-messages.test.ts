/**
 * A large alert group is handled, not retried forever: one message of MAX_ALERTS_PER_MESSAGE (5,000)
 * alerts, and 20,000 alerts over four concurrent messages, each become exactly one run per alert; one
 * alert over the default cap is refused whole with a 413 (Alertmanager does not retry a 4xx).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { webhook } from '../support/api.js';
import { alertMessage, isolation, startService } from '../support/harness.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: big-group
    matchers: ['suite="large"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.instance }}' }
        dryRun: true
`;

const group = (batch: string, n: number) =>
  alertMessage(
    Array.from({ length: n }, (_, i) => ({
      labels: { alertname: 'ConduitProviderDown', suite: 'large', batch, instance: `${batch}-${i}` },
    })),
  );

describe('large alert groups', (s) => {
  const iso = isolation('large');
  after(() => iso.drop());
  const svc = startService(s, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { INTAKE_TIMEOUT: '60s' } });

  async function runsOf(batch: string): Promise<number> {
    const db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        "SELECT count(DISTINCT alert->'labels'->>'instance')::int AS n, count(*)::int AS total FROM runs WHERE alert->'labels'->>'batch' = $1",
        [batch],
      );
      assert.equal(rows[0].n, rows[0].total, 'one run per alert');
      return rows[0].n as number;
    } finally {
      await db.end();
    }
  }

  async function totalRuns(): Promise<number> {
    const db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query('SELECT count(*)::int AS n FROM runs');
      return rows[0].n as number;
    } finally {
      await db.end();
    }
  }

  it('5,000 alerts in one message: 200, one run each', async () => {
    const started = performance.now();
    const res = await webhook(svc).send(group('one', 5000));
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.runs.length, 5000);
    assert.equal(await runsOf('one'), 5000);
    console.log(`# 5,000 alerts stored in ${Math.round(performance.now() - started)} ms`);
  });

  it('5,001 alerts with MAX_ALERTS_PER_MESSAGE unset: 413 naming the cap, nothing stored', async () => {
    assert.equal(svc.services.config.maxAlertsPerMessage, 5000, 'the default cap is 5,000');
    const before = await totalRuns();
    const res = await webhook(svc).send(group('over', 5001));
    assert.equal(res.status, 413, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.code, 'PAYLOAD_TOO_LARGE');
    assert.match(res.body.message, /the message has 5001 alerts; at most 5000 \(MAX_ALERTS_PER_MESSAGE\)/);
    assert.equal(await runsOf('over'), 0, 'no run of the refused message');
    assert.equal(await totalRuns(), before, 'nothing stored');
  });

  it('20,000 alerts over four concurrent messages, then the same again (duplicates): 20,000 runs', async () => {
    const messages = ['c0', 'c1', 'c2', 'c3'].map((b) => group(b, 5000));
    const answers = await Promise.all(messages.map((m) => webhook(svc).send(m)));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
    );
    const again = await Promise.all(messages.map((m) => webhook(svc).send(m)));
    assert.ok(again.every((a) => a.status === 200 && a.body.runs.every((r: { duplicate: boolean }) => r.duplicate)));
    let total = 0;
    for (const b of ['c0', 'c1', 'c2', 'c3']) total += await runsOf(b);
    assert.equal(total, 20_000);
  });
});
