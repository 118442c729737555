/**
 * What an unauthenticated or runaway client can do to the HTTP server: small bodies everywhere but
 * the webhook (read after its token), unknown paths answered before their body is read, bodies that
 * trickle cut off, a cap on alerts per message (413, not retried), security headers, /docs switchable.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import { deliver, webhook } from '../support/api.js';
import { alertMessage, isolation, startService, TOKENS, WEBHOOK_TOKEN } from '../support/harness.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: limits
    matchers: ['suite="limits"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

/** A raw HTTP/1.1 exchange: writes `head` (and `body` unless omitted), resolves with what came back and whether the server closed. */
function raw(port: number, head: string, body?: Buffer | string, waitMs = 5000): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, waitMs);
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as NodeJS.ErrnoException).code === 'EPIPE') return;
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.write(head);
    if (body !== undefined) socket.write(body);
  });
}

const portOf = (url: string) => Number(new URL(url).port);
const counter = (metrics: string, name: string, labels: string) =>
  Number(
    metrics
      .split('\n')
      .find((l) => l.startsWith(`${name}{${labels}}`))
      ?.split(' ')[1] ?? 0,
  );

describe('HTTP limits', (s) => {
  const iso = isolation('httplimits');
  after(() => iso.drop());
  const svc = startService(s, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { MAX_ALERTS_PER_MESSAGE: '50', REQUEST_TIMEOUT: '1s' },
  });

  it('an API route takes at most 64 KiB; the webhook takes its large limit, but only after its token', async () => {
    const big = { receiver: 'x', padding: 'a'.repeat(100 * 1024) };
    const api = await request(svc.url).post('/api/control/pause').set('Authorization', `Bearer ${TOKENS.admin}`).send(big).expect(413);
    assert.equal(api.body.code, 'PAYLOAD_TOO_LARGE');

    const message = alertMessage([{ labels: { suite: 'limits', key: 'big', padding: 'p'.repeat(200 * 1024) } }]);
    assert.equal((await deliver(svc, message)).length, 1, 'a 200 KiB delivery is taken on the webhook');

    // Without the token, a large body is refused before it is read: the answer comes while the body is still unsent.
    const { answer } = await raw(
      portOf(svc.url),
      'POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n',
      '{"receiver":',
    );
    assert.match(answer, /^HTTP\/1\.1 401 /);
  });

  it('an unknown path is answered 404 at once, without waiting for (or reading) its body', async () => {
    const { answer, closed } = await raw(
      portOf(svc.url),
      'POST /no/such/path HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n',
      '{"a":',
    );
    assert.match(answer, /^HTTP\/1\.1 404 /);
    assert.match(answer, /"code":"NOT_FOUND"/);
    assert.match(answer, /connection: close/i);
    assert.ok(closed, 'the server closes the connection instead of reading 5 MB');
  });

  it('64 unauthenticated 5 MB bodies to unknown paths: each refused unread, memory stays flat, health answers meanwhile', async () => {
    const body = Buffer.alloc(5 * 1024 * 1024, 0x61);
    global.gc?.();
    const before = process.memoryUsage().rss;
    const head = `POST /no/such/path HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const senders = Array.from({ length: 64 }, () => raw(portOf(svc.url), head, body, 15_000));
    const health = await fetch(`${svc.url}/health/live`);
    assert.equal(health.status, 200, 'the health check is answered while 64 clients push 5 MB each');
    const answers = await Promise.all(senders);
    // The server closes each connection with the body unread; a client still writing may see the
    // reset before the 404 it was sent, so an answer is either that 404 or nothing.
    assert.ok(
      answers.every((a) => a.closed && (a.answer === '' || /^HTTP\/1\.1 404 /.test(a.answer))),
      'every connection is answered 404 (or reset) and closed by the server',
    );
    assert.ok(
      answers.some((a) => /^HTTP\/1\.1 404 /.test(a.answer)),
      'the 404 reaches the clients',
    );
    const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
    assert.ok(grown < 160, `the server did not buffer 320 MB of bodies (resident memory grew ${grown.toFixed(0)} MB)`);
  });

  it('a body that trickles is cut off after REQUEST_TIMEOUT', async () => {
    const started = Date.now();
    const { answer, closed } = await raw(
      portOf(svc.url),
      `POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${WEBHOOK_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
      '{"receiver":',
      8000,
    );
    assert.ok(closed, `the connection is closed (after ${Date.now() - started} ms)`);
    assert.match(answer, /^HTTP\/1\.1 408 /, answer);
  });

  it('a message over MAX_ALERTS_PER_MESSAGE is answered 413, stores nothing and is counted', async () => {
    const before = await (await fetch(`${svc.url}/metrics`)).text();
    const alerts = Array.from({ length: 51 }, (_, i) => ({ labels: { suite: 'limits', key: `over-${i}` } }));
    const res = await webhook(svc).send(alertMessage(alerts)).expect(413);
    assert.equal(res.body.code, 'PAYLOAD_TOO_LARGE');
    assert.match(res.body.message, /51 alerts; at most 50 \(MAX_ALERTS_PER_MESSAGE\)/);
    const listed = await request(svc.url).get('/api/runs?limit=200').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.ok(!listed.body.runs.some((r: { alert: { labels: Record<string, string> } }) => r.alert.labels['key']?.startsWith('over-')));
    const afterText = await (await fetch(`${svc.url}/metrics`)).text();
    const name = 'remediator_webhook_refused_total';
    assert.equal(counter(afterText, name, 'reason="too_many_alerts"') - counter(before, name, 'reason="too_many_alerts"'), 1);

    const fifty = Array.from({ length: 50 }, (_, i) => ({ labels: { suite: 'limits', key: `at-${i}` } }));
    assert.equal((await deliver(svc, alertMessage(fifty))).length, 50, 'at the cap the message is taken');
  });

  it('answers carry nosniff and a strict CSP; API answers are not cached', async () => {
    const res = await request(svc.url).get('/api/control').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.match(res.headers['content-security-policy'] ?? '', /default-src 'none'/);
    const unknown = await request(svc.url).get('/nope').expect(404);
    assert.equal(unknown.headers['x-content-type-options'], 'nosniff');
    await request(svc.url).get('/docs/json').expect(200);
  });

  it('a NUL or half a surrogate pair in a label is stored as U+FFFD (200), not a 503 Alertmanager would retry forever', async () => {
    const runs = await deliver(svc, alertMessage([{ labels: { suite: 'limits', key: 'nul\u0000here', odd: 'half\ud800pair' } }]));
    assert.equal(runs.length, 1);
    const run = await request(svc.url).get(`/api/runs/${runs[0]!.id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.equal(run.body.alert.labels.key, 'nul\ufffdhere');
    assert.equal(run.body.alert.labels.odd, 'half\ufffdpair');
    const approve = await request(svc.url)
      .post(`/api/runs/${runs[0]!.id}/approve`)
      .set('Authorization', `Bearer ${TOKENS.approver}`)
      .send({ comment: 'a\u0000b' });
    assert.ok([400, 409].includes(approve.status), `a NUL in an API body is the client's error, not an outage (${approve.status})`);
    const listed = await request(svc.url).get('/api/runs?rule=a%00b').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(400);
    assert.match(listed.body.message, /NUL/);
  });

  it('a cursor beyond a 64-bit sequence is a 400 naming it, not a 500', async () => {
    const res = await request(svc.url)
      .get('/api/runs?cursor=9999999999999999999')
      .set('Authorization', `Bearer ${TOKENS.viewer}`)
      .expect(400);
    assert.equal(res.body.code, 'VALIDATION');
    assert.match(res.body.message, /cursor/);
  });
});

describe('DOCS=false', (s) => {
  const iso = isolation('nodocs');
  after(() => iso.drop());
  const svc = startService(s, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { DOCS: 'false' } });

  it('serves no /docs', async () => {
    await request(svc.url).get('/docs').expect(404);
    await request(svc.url).get('/docs/json').expect(404);
    await request(svc.url).get('/health/live').expect(200);
  });
});
