/**
 * Approving from Slack, against the real PostgreSQL and Redis: a click signed exactly as Slack
 * signs decides the run once, through the same path as the REST API, and the notice is replaced
 * through `response_url`; a bad signature, a stale timestamp and an unknown user decide nothing;
 * the same click on two replicas at once executes the run once, the second answer naming who
 * decided.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createCatalogue, remediations } from '../../remediations/catalogue.js';
import { loadConfig } from '../../src/config.js';
import { approvalNotice } from '../../src/notify/notifier.js';
import { slackRoutes } from '../../src/routes/slack.js';
import type { WebhookMessage } from '../../src/schemas/alertmanager.js';
import type { Run } from '../../src/schemas/runs.js';
import { createServices, type Services } from '../../src/services.js';
import { parseSlackConfig } from '../../src/slack/config.js';
import {
  alertMessage,
  API_TOKENS,
  eventually,
  isolation,
  REDIS_URL,
  removeMatrix,
  WEBHOOK_TOKEN,
  writeMatrix,
} from '../support/harness.js';
import { blockActions, SIGNING_SECRET, sendInteraction, startResponseSink, type ResponseSink } from '../support/slack.js';
import { executionsKey, testRemediations } from '../support/test-remediations.js';

const PUBLIC_URL = 'https://remediator.example.test';
const ALICE = 'U0ALICE01';
const BOB = 'U0BOB0001';
const MALLORY = 'U0MALLORY';

const MATRIX = `
defaults: { cooldown: 0s, approvalTimeout: 30m }
rules:
  - name: needs-approval
    matchers: ['alertname="NeedsApproval"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
`;

const silent = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

interface Replica {
  url: string;
  services: Services;
  close(): Promise<void>;
}

describe('approving from Slack', () => {
  const iso = isolation('slack');
  const slack = parseSlackConfig({ SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_APPROVERS: `${ALICE}:alice,${BOB}:bob` })!;
  let matrixPath: string;
  let sink: ResponseSink;
  let a: Replica;
  let b: Replica;
  let redis: Redis;

  /** One replica of the service (ROLE all: API and worker) with the interactions route on a Fastify app of its own. */
  async function replica(): Promise<Replica> {
    const { config } = loadConfig({
      DATABASE_URL: iso.databaseUrl,
      REDIS_URL,
      QUEUE_PREFIX: iso.prefix,
      MATRIX_PATH: matrixPath,
      WEBHOOK_TOKEN,
      API_TOKENS,
      TARGET_REDIS_URL: REDIS_URL,
      PUBLIC_URL,
      LOG_LEVEL: 'silent',
      JOB_BACKOFF: '100ms',
      SWEEP_INTERVAL: '200ms',
      REQUEUE_AFTER: '1s',
      SHUTDOWN_TIMEOUT: '2s',
      REMEDIATION_TIMEOUT: '5s',
    });
    const services = await createServices(config, { log: silent, catalogue: createCatalogue([...remediations, ...testRemediations]) });
    const app = Fastify({ loggerInstance: silent });
    try {
      await app.register(slackRoutes(services, slack, { responseOrigins: [sink.origin] }));
      await app.listen({ port: 0, host: '127.0.0.1' });
    } catch (err) {
      await services.close();
      throw err;
    }
    const { port } = app.server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      services,
      async close() {
        await app.close();
        await services.close();
      },
    };
  }

  before(async () => {
    matrixPath = writeMatrix(MATRIX);
    sink = await startResponseSink();
    redis = new Redis(REDIS_URL);
    a = await replica();
    b = await replica();
  });
  after(async () => {
    await a?.close();
    await b?.close();
    redis.disconnect();
    await sink.close();
    removeMatrix(matrixPath);
    await iso.drop();
  });

  /** A run waiting for approval, made by the webhook's intake from an alert. */
  async function pendingRun(key: string): Promise<Run> {
    const result = await a.services.intake(alertMessage([{ labels: { alertname: 'NeedsApproval', key } }]) as WebhookMessage);
    const run = await a.services.runs.get(result.runs[0]!.id, { events: false });
    assert.equal(run?.status, 'pending_approval');
    return run!;
  }

  /** A click on the run's button in its notice, with a response_url of its own. */
  function click(run: Run, userId: string, action: 'approve' | 'reject', responseUrl = sink.responseUrl()) {
    const message = approvalNotice(run, 'pending_approval', PUBLIC_URL);
    return { payload: blockActions({ userId, action, value: run.id, responseUrl, message }), path: new URL(responseUrl).pathname };
  }

  const posted = (path: string) => sink.messages.filter((m) => m.path === path).map((m) => m.body);
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);
  const eventsOf = async (id: string, type: string) => ((await a.services.runs.get(id))!.events ?? []).filter((e) => e.type === type);
  const statusOf = async (id: string) => (await a.services.runs.get(id, { events: false }))!.status;
  const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('approves the run once from a signed click, executes it, and replaces the notice with who approved and when', async () => {
    const run = await pendingRun('approve-once');
    const { payload, path } = click(run, ALICE, 'approve');
    const res = await sendInteraction(a.url, payload);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body as object).sort(), ['replace_original', 'response_type', 'text']);
    assert.equal((res.body as { response_type: string }).response_type, 'ephemeral');
    assert.match((res.body as { text: string }).text, new RegExp(`^Approved by alice at \\d{4}-\\d\\d-\\d\\dT.*Z: run ${run.id}$`));

    const done = await eventually(async () => {
      const r = await a.services.runs.get(run.id, { events: false });
      return r?.status === 'succeeded' ? r : undefined;
    });
    assert.equal(done.approval.decidedBy, 'alice');
    assert.equal(done.approval.comment, `from Slack (${ALICE})`);
    assert.deepEqual(
      (await eventsOf(run.id, 'approved')).map((e) => e.detail),
      [{ by: 'alice', comment: `from Slack (${ALICE})` }],
    );
    assert.equal(await executions(run.id), 1);

    const [update] = await eventually(async () => (posted(path).length > 0 ? posted(path) : undefined));
    assert.equal(update!['replace_original'], true);
    assert.equal(String(update!['text']).split('\n').at(-1), `Approved by alice at ${done.approval.decidedAt}`);
    const blocks = update!['blocks'] as Array<{ type: string; elements?: Array<{ text: string }> }>;
    assert.ok(!blocks.some((bl) => bl.type === 'actions'), 'the buttons are gone');
    assert.deepEqual(blocks.at(-1), {
      type: 'context',
      elements: [{ type: 'mrkdwn', text: `Approved by alice at ${done.approval.decidedAt}` }],
    });
  });

  it('refuses a bad signature with 401 and decides nothing', async () => {
    const run = await pendingRun('bad-signature');
    const { payload, path } = click(run, ALICE, 'approve');
    const forged = await sendInteraction(a.url, payload, { secret: 'not-the-signing-secret-0123456789' });
    assert.equal(forged.status, 401);
    assert.equal((forged.body as { code: string }).code, 'UNAUTHORIZED');
    assert.match((forged.body as { message: string }).message, /X-Slack-Signature does not match/);
    const garbled = await sendInteraction(a.url, payload, { signature: 'v0=abc' });
    assert.equal(garbled.status, 401);
    await settle(300);
    assert.equal(await statusOf(run.id), 'pending_approval');
    assert.deepEqual(await eventsOf(run.id, 'approved'), []);
    assert.deepEqual(posted(path), []);
  });

  it('refuses a timestamp 6 minutes old (a replay) with 401, even signed right', async () => {
    const run = await pendingRun('stale');
    const { payload, path } = click(run, ALICE, 'approve');
    const res = await sendInteraction(a.url, payload, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
    assert.equal(res.status, 401);
    assert.match((res.body as { message: string }).message, /more than 5 minutes/);
    await settle(300);
    assert.equal(await statusOf(run.id), 'pending_approval');
    assert.deepEqual(posted(path), []);
  });

  it('answers a Slack user not in SLACK_APPROVERS "not allowed", and decides nothing', async () => {
    const run = await pendingRun('unknown-user');
    const { payload, path } = click(run, MALLORY, 'approve');
    const res = await sendInteraction(a.url, payload);
    assert.equal(res.status, 200);
    const answer = res.body as { response_type: string; replace_original: boolean; text: string };
    assert.equal(answer.response_type, 'ephemeral');
    assert.equal(answer.replace_original, false);
    assert.match(answer.text, /not allowed/);
    const [told] = await eventually(async () => (posted(path).length > 0 ? posted(path) : undefined));
    assert.deepEqual(told, answer, 'the same ephemeral answer through response_url; the notice stays');
    await settle(300);
    assert.equal(await statusOf(run.id), 'pending_approval');
    assert.deepEqual(await eventsOf(run.id, 'approved'), []);
    assert.equal(await executions(run.id), 0);
  });

  it('rejects the run from the Reject button: never executed, the notice says who rejected', async () => {
    const run = await pendingRun('reject');
    const { payload, path } = click(run, BOB, 'reject');
    const res = await sendInteraction(b.url, payload);
    assert.equal(res.status, 200);
    assert.match((res.body as { text: string }).text, /^Rejected by bob at /);
    const rejected = (await a.services.runs.get(run.id, { events: false }))!;
    assert.equal(rejected.status, 'rejected');
    assert.equal(rejected.approval.decidedBy, 'bob');
    const [update] = await eventually(async () => (posted(path).length > 0 ? posted(path) : undefined));
    assert.equal(String(update!['text']).split('\n').at(-1), `Rejected by bob at ${rejected.approval.decidedAt}`);
    await settle(500);
    assert.equal(await executions(run.id), 0);
  });

  it('a double click across two replicas executes the run once; the second answer says it was already decided by alice', async () => {
    const run = await pendingRun('double-click');
    const { payload, path } = click(run, ALICE, 'approve');
    const answers = await Promise.all([sendInteraction(a.url, payload), sendInteraction(b.url, payload)]);
    assert.deepEqual(
      answers.map((r) => r.status),
      [200, 200],
    );
    const texts = answers.map((r) => (r.body as { text: string }).text).sort();
    assert.equal(texts.filter((t) => t.startsWith('Approved by alice at ')).length, 1, texts.join('\n'));
    assert.equal(texts.filter((t) => t.startsWith(`Run ${run.id} was already decided by alice (approved at `)).length, 1, texts.join('\n'));

    await eventually(async () => ((await statusOf(run.id)) === 'succeeded' ? true : undefined));
    await settle(1000);
    assert.equal(await executions(run.id), 1);
    assert.equal((await eventsOf(run.id, 'approved')).length, 1);

    const bodies = await eventually(async () => (posted(path).length >= 3 ? posted(path) : undefined));
    assert.ok(
      bodies.some((m) => m['response_type'] === 'ephemeral' && /already decided by alice/.test(String(m['text']))),
      JSON.stringify(bodies),
    );
    const replaced = bodies.filter((m) => m['replace_original'] === true);
    assert.equal(replaced.length, 2, 'each replica leaves the notice decided');
    for (const m of replaced) assert.match(String(m['text']), /Approved by alice at /);
  });

  it('never posts to a response_url outside the allowed origins, and still decides', async () => {
    const other = await startResponseSink();
    try {
      const run = await pendingRun('foreign-response-url');
      const { payload } = click(run, ALICE, 'reject', other.responseUrl());
      const res = await sendInteraction(a.url, payload);
      assert.equal(res.status, 200);
      assert.equal(await statusOf(run.id), 'rejected');
      await settle(300);
      assert.deepEqual(other.messages, []);
    } finally {
      await other.close();
    }
  });

  it('takes only the form Slack posts, and no more than 16 KiB of it', async () => {
    const json = await fetch(`${a.url}/integrations/slack/interactions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'block_actions' }),
    });
    assert.equal(json.status, 415);
    const run = await pendingRun('too-large');
    const { payload } = click(run, ALICE, 'approve');
    const large = await sendInteraction(a.url, { ...payload, padding: 'x'.repeat(17 * 1024) });
    assert.equal(large.status, 413);
    assert.equal(await statusOf(run.id), 'pending_approval');
    const notOurs = await sendInteraction(a.url, { type: 'view_submission', user: { id: ALICE } });
    assert.deepEqual([notOurs.status, notOurs.text], [200, '']);
    const badValue = await sendInteraction(a.url, { ...payload, actions: [{ ...(payload['actions'] as object[])[0], value: 'x/../1' }] });
    assert.equal(badValue.status, 400);
  });
});
