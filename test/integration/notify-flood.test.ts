/**
 * The whole service against a real notify sink: 2,000 alerts whose rule posts a `notify.webhook`
 * notice each make a handful of posts, every one of them accounted for; a single alert's notice goes
 * at once, as it is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import request from 'supertest';
import { deliver, getRun, settled } from '../support/api.js';
import { alertMessage, eventually, isolation, startService, TOKENS } from '../support/harness.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';

const PUBLIC_URL = 'https://remediator.example.test';
const ALERTS = 2000;
const PER_MESSAGE = 500;

const MATRIX = `
defaults: { approvalTimeout: 30m, cooldown: 0s }
rules:
  - name: high-error-rate
    matchers: ['alertname="HighErrorRate"']
    actions:
      - remediation: notify.webhook
        params: { text: 'Error rate high on {{ labels.deployment }}' }
  - name: provider-down
    matchers: ['alertname="ProviderDown"']
    actions:
      - remediation: notify.webhook
        params: { text: 'Provider {{ labels.provider }} down' }
`;

describe('notify.webhook runs under a flood of alerts', (s) => {
  const iso = isolation('notify_flood');
  let sink: NotifySink;
  let db: pg.Pool;
  before(async () => {
    sink = await startNotifySink();
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
    db.on('error', () => {});
  });
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { NOTIFY_WEBHOOK_URL: sink.url, PUBLIC_URL },
  }));
  after(async () => {
    await db.end();
    await sink.close();
    await iso.drop();
  });

  it("one alert's notice is posted at once, as the matrix writes it; one more within the window follows as it is", async () => {
    const [first] = await deliver(svc, alertMessage([{ labels: { alertname: 'ProviderDown', provider: 'openai' } }]));
    const run = await settled(svc, first!.id, 'succeeded');
    assert.equal((run.result as Record<string, unknown> | null)?.['posted'], true);
    assert.equal((run.result as Record<string, unknown> | null)?.['status'], 200);
    assert.deepEqual(
      sink.messages.map((m) => m.text),
      ['Provider openai down'],
    );

    const [second] = await deliver(svc, alertMessage([{ labels: { alertname: 'ProviderDown', provider: 'anthropic' } }]));
    const folded = await settled(svc, second!.id, 'succeeded');
    assert.equal((folded.result as Record<string, unknown> | null)?.['folded'], true);
    await eventually(async () => sink.messages.length === 2, 5000, 'the folded notice');
    assert.equal(sink.messages[1]!.text, 'Provider anthropic down');
    const events = await eventually(async () => {
      const r = await getRun(svc, second!.id);
      return r.events.some((e) => e.type === 'notified') && r.events;
    });
    assert.deepEqual(events.find((e) => e.type === 'notified')!.detail, { kind: 'webhook', runs: 1 });
  });

  it(`${ALERTS} HighErrorRate alerts, a notice each: a handful of posts, which account for every run`, { timeout: 120_000 }, async () => {
    const before = sink.messages.length;
    const ids: string[] = [];
    for (let from = 0; from < ALERTS; from += PER_MESSAGE) {
      const alerts = Array.from({ length: PER_MESSAGE }, (_, i) => ({
        labels: { alertname: 'HighErrorRate', deployment: `d${from + i}` },
      }));
      ids.push(...(await deliver(svc, alertMessage(alerts))).map((r) => r.id));
    }
    assert.equal(new Set(ids).size, ALERTS);

    // Every run ends, and every folded one hears what became of its message.
    const count = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0]!.n);
    await eventually(
      async () =>
        (await count("SELECT count(*) AS n FROM runs WHERE rule = 'high-error-rate' AND status IN ('succeeded', 'failed')")) === ALERTS,
      60_000,
      'every run finished',
    );
    const foldedRuns = await count("SELECT count(*) AS n FROM runs WHERE rule = 'high-error-rate' AND result->>'folded' = 'true'");
    await eventually(
      async () =>
        (await count(
          `SELECT count(DISTINCT e.run_id) AS n FROM run_events e JOIN runs r ON r.id = e.run_id
           WHERE r.rule = 'high-error-rate' AND e.type IN ('notified', 'notification_dropped', 'notification_failed')`,
        )) === foldedRuns,
      10_000,
      'every folded run told the fate of its message',
    );
    await new Promise((r) => setTimeout(r, 2500));

    const texts = sink.messages.slice(before).map((m) => m.text);
    const dump = texts.map((t) => t.slice(0, 200)).join('\n---\n');
    assert.ok(texts.length >= 2 && texts.length <= 20, `${texts.length} posts for ${ALERTS} notices:\n${dump}`);

    // A post is one notice as written, or a message listing several; together they are every run that
    // posted at once or whose folded message was sent.
    let accounted = 0;
    for (const text of texts) {
      const listing = /^\[conduit-remediator\] (\d+) notices of rule high-error-rate:\n/.exec(text);
      if (!listing) {
        assert.match(text, /^Error rate high on d\d+$/, dump);
        accounted += 1;
        continue;
      }
      const n = Number(listing[1]);
      const bullets = text.split('\n').filter((l) => l.startsWith('• '));
      assert.equal(bullets.length, Math.min(n, 20), text.slice(0, 500));
      assert.ok(bullets.every((b) => /^• Error rate high on d\d+$/.test(b)));
      if (n > 20)
        assert.ok(text.endsWith(`And ${n - 20} more: GET ${PUBLIC_URL}/api/runs?rule=high-error-rate&amp;remediation=notify.webhook`));
      accounted += n;
    }
    const postedAtOnce = await count("SELECT count(*) AS n FROM runs WHERE rule = 'high-error-rate' AND result->>'posted' = 'true'");
    const foldedSent = await count(
      `SELECT count(DISTINCT e.run_id) AS n FROM run_events e JOIN runs r ON r.id = e.run_id
       WHERE r.rule = 'high-error-rate' AND e.type = 'notified'`,
    );
    assert.equal(accounted, postedAtOnce + foldedSent, dump);
    assert.ok(foldedSent > ALERTS / 2, `${foldedSent} of ${ALERTS} runs folded into a sent message`);

    // A run that did not post failed, saying why; none was retried.
    const { rows } = await db.query<{ reason: string | null; attempts: number }>(
      "SELECT reason, attempts FROM runs WHERE rule = 'high-error-rate' AND status = 'failed'",
    );
    assert.ok(
      rows.every((r) => r.reason === 'rate_limited' && r.attempts === 1),
      JSON.stringify(rows.slice(0, 5)),
    );

    const metrics = (await request(svc.url).get('/metrics').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200)).text;
    const sample = (result: string) =>
      Number(new RegExp(`^remediator_notifications_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
    // Two of the posts were the ProviderDown notices of the first test.
    assert.equal(sample('sent') + sample('aggregated'), accounted + 2);
    assert.ok(sample('aggregated') > ALERTS / 2, metrics);
  });
});
