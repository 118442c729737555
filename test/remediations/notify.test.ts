import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { notifyTarget, postNotification } from '../../src/notify/client.js';
import { createNotifier } from '../../src/notify/notifier.js';
import type { RunStore } from '../../src/store/runs.js';
import webhook from '../../remediations/notify/webhook.js';
import { RemediationError } from '../../remediations/types.js';
import { executionContext, memoryLog } from '../support/context.js';
import { startNotifySink } from '../support/notify-sink.js';
import { stored } from '../support/runs.js';

async function sink(t: TestContext) {
  const s = await startNotifySink();
  t.after(() => s.close());
  const ctx = (o: { signal?: AbortSignal; timeoutMs?: number } = {}) => executionContext({ notify: notifyTarget(s.url) }, o);
  return { sink: s, ctx };
}

async function failure(promise: Promise<unknown>): Promise<RemediationError> {
  const err = await promise.then(
    () => assert.fail('expected the notification to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RemediationError, `expected a RemediationError, got ${String(err)}`);
  return err;
}

/** Everything an engine might log or store about an error: none of it may carry the webhook secret. */
function assertSecretFree(err: RemediationError, url: string, secret: string): void {
  const seen = [err.message, String(err.stack), JSON.stringify(err.detail ?? {}), String(err.cause ?? '')].join('\n');
  assert.ok(!seen.includes(url), 'the webhook URL leaked');
  assert.ok(!seen.includes(secret), 'the webhook secret leaked');
}

test('the message arrives with its text', async (t) => {
  const { sink: s, ctx } = await sink(t);
  const context = ctx();
  const result = await webhook.execute({ text: 'Provider openai disabled: error rate 40%' }, context);

  assert.deepEqual(s.messages, [
    { text: 'Provider openai disabled: error rate 40%', body: { text: 'Provider openai disabled: error rate 40%' } },
  ]);
  assert.equal(s.requests[0]!.headers['content-type'], 'application/json');
  assert.deepEqual(result, {
    posted: true,
    status: 200,
    chars: 40,
    summary: 'Posted the notice (40 characters) to the notify webhook (HTTP 200)',
  });
  assert.ok(!JSON.stringify((context.log as ReturnType<typeof memoryLog>).lines).includes(s.secret));
});

test('a 500 is a retryable error that does not name the URL', async (t) => {
  const { sink: s, ctx } = await sink(t);
  s.failNext(1, 500);
  const err = await failure(webhook.execute({ text: 'hello' }, ctx()));
  assert.equal(err.code, 'target_error');
  assert.equal(err.retryable, true);
  assert.equal(err.detail?.status, 500);
  assertSecretFree(err, s.url, s.secret);
  assert.equal(s.messages.length, 0);

  await webhook.execute({ text: 'hello' }, ctx());
  assert.equal(s.messages.length, 1, 'the retry goes through');
});

test('a revoked webhook (404) fails at once without naming the URL', async (t) => {
  const { sink: s } = await sink(t);
  const revoked = `${s.url}-revoked`;
  const err = await failure(webhook.execute({ text: 'hello' }, executionContext({ notify: notifyTarget(revoked) })));
  assert.equal(err.code, 'not_found');
  assert.equal(err.retryable, false);
  assert.match(err.message, /no_service/);
  assertSecretFree(err, revoked, s.secret);
});

test('a webhook slower than timeoutMs is a retryable timeout', async (t) => {
  const { sink: s, ctx } = await sink(t);
  s.delayNext(3000);
  const started = Date.now();
  const err = await failure(webhook.execute({ text: 'hello' }, ctx({ timeoutMs: 100 })));
  assert.equal(err.code, 'timeout');
  assert.equal(err.retryable, true);
  assert.ok(Date.now() - started < 2000);
  assertSecretFree(err, s.url, s.secret);
});

test('an aborted signal stops the post', async (t) => {
  const { sink: s, ctx } = await sink(t);
  const controller = new AbortController();
  controller.abort(new Error('shutdown'));
  const err = await failure(webhook.execute({ text: 'hello' }, ctx({ signal: controller.signal })));
  assert.equal(err.code, 'aborted');
  assert.equal(s.requests.length, 0);
});

test('an unreachable webhook is retryable and does not name the URL', async (t) => {
  const { sink: s, ctx } = await sink(t);
  const context = ctx();
  await s.close();
  const err = await failure(webhook.execute({ text: 'hello' }, context));
  assert.equal(err.code, 'target_error');
  assert.equal(err.retryable, true);
  assertSecretFree(err, s.url, s.secret);
});

test('a malformed webhook URL fails without echoing it', async () => {
  const url = 'not a url/with-secret-path-abc123';
  const err = await failure(postNotification(url, 'hello', { signal: new AbortController().signal, timeoutMs: 1000 }));
  assertSecretFree(err, url, 'secret-path-abc123');
});

test('postNotification is usable on its own, as the engine does for approvals', async (t) => {
  const { sink: s } = await sink(t);
  const result = await postNotification(s.url, 'Approval needed: conduit.enable-provider openai', {
    signal: new AbortController().signal,
    timeoutMs: 1000,
  });
  assert.equal(result.status, 200);
  assert.equal(s.messages[0]!.text, 'Approval needed: conduit.enable-provider openai');
});

test('a missing webhook fails with target_not_configured', async () => {
  const err = await failure(webhook.execute({ text: 'hello' }, executionContext({})));
  assert.equal(err.code, 'target_not_configured');
});

test('schema, target and plan', () => {
  assert.equal(Value.Check(webhook.params, { text: '' }), false);
  assert.equal(Value.Check(webhook.params, { text: 'x'.repeat(4001) }), false);
  assert.equal(Value.Check(webhook.params, { text: 'x'.repeat(4000) }), true);
  assert.equal(Value.Check(webhook.params, { text: 'hi', channel: '#ops' }), false);
  assert.match(webhook.target({ text: 'hi' }), /^notify\/webhook\/[0-9a-f]{16}$/);
  assert.equal(webhook.target({ text: 'hi' }), webhook.target({ text: 'hi' }), 'the same message, the same target');
  assert.notEqual(webhook.target({ text: 'Provider openai disabled' }), webhook.target({ text: 'Provider anthropic disabled' }));
  assert.equal(webhook.requires, 'notify');
  assert.match(webhook.plan({ text: 'Provider openai disabled' }), /"Provider openai disabled"/);
});

/** A webhook that answers every request with `status` and a Location pointing at `location`. */
async function redirecting(t: TestContext, location: string, status = 307) {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(status, { location }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0/B0/redirect-secret-123`, requests };
}

test('a redirect is never followed: the other port receives nothing, and the error says why', async (t) => {
  const { sink: elsewhere } = await sink(t);
  for (const status of [307, 308, 301, 302]) {
    const hop = await redirecting(t, elsewhere.url, status);
    const err = await failure(webhook.execute({ text: 'hello' }, executionContext({ notify: notifyTarget(hop.url) })));
    assert.equal(hop.requests.length, 1, 'the webhook was asked once');
    assert.equal(err.code, 'target_error');
    assert.equal(err.retryable, false, 'a redirect is configuration, not a passing fault');
    assert.match(err.message, /redirect, which is not followed.*check NOTIFY_WEBHOOK_URL/);
    assertSecretFree(err, hop.url, 'redirect-secret-123');
    assert.ok(!err.message.includes(elsewhere.secret), 'the Location is not repeated');
  }
  assert.equal(elsewhere.requests.length, 0, 'the port redirected to received nothing');
});

test("a redirecting webhook fails the run's notification with that error in its timeline", async (t) => {
  const { sink: elsewhere } = await sink(t);
  const hop = await redirecting(t, elsewhere.url);
  const events: Array<{ id: string; type: string; detail: Record<string, unknown> }> = [];
  const runs = { addEvent: async (id: string, type: string, detail: Record<string, unknown>) => void events.push({ id, type, detail }) };
  const log = memoryLog();
  const notifier = createNotifier({
    target: notifyTarget(hop.url),
    runs: runs as unknown as RunStore,
    log,
    publicUrl: 'http://localhost:8080',
  });
  const run = stored({ status: 'failed', error: 'boom' });
  notifier.notify(run, 'failed');
  await notifier.drain();
  assert.equal(hop.requests.length, 1);
  assert.equal(elsewhere.requests.length, 0);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.id, run.id);
  assert.equal(events[0]!.type, 'notification_failed');
  assert.match(String(events[0]!.detail['error']), /answered with a redirect, which is not followed/);
  assert.ok(!JSON.stringify(log.lines).includes('redirect-secret-123'), 'the log does not name the webhook URL');
});
