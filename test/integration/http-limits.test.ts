/**
 * What an unauthenticated or runaway client can do to the HTTP server: small bodies everywhere but
 * the webhook (read after its token), unknown paths answered before their body is read, bodies that
 * trickle cut off, a cap on alerts per message (413, not retried), security headers, /docs switchable;
 * and the HTTP settings taken from configuration: REQUEST_TIMEOUT, CONNECTION_TIMEOUT,
 * KEEP_ALIVE_TIMEOUT and MAX_CONNECTIONS.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, it, type TestContext } from 'node:test';
import request from 'supertest';
import { deliver, webhook } from '../support/api.js';
import { alertMessage, eventually, isolation, startService, TOKENS, WEBHOOK_TOKEN } from '../support/harness.js';

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

/**
 * Writes `head`, then one byte of body every `everyMs` (never idle, never complete), until the server
 * closes the connection or `maxMs` pass; resolves with what came back and when the server closed.
 */
function trickle(port: number, head: string, everyMs: number, maxMs: number): Promise<{ answer: string; closedAfterMs?: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let done = false;
    const finish = (closedAfterMs?: number) => {
      if (done) return;
      done = true;
      clearInterval(drip);
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, ...(closedAfterMs !== undefined ? { closedAfterMs } : {}) });
    };
    const drip = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write('a');
    }, everyMs);
    const timer = setTimeout(() => finish(), maxMs);
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || code === 'EPIPE') return;
      if (!done) {
        done = true;
        clearInterval(drip);
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on('close', () => finish(performance.now() - started));
    socket.write(head);
  });
}

/** One HTTP/1.1 connection kept open: requests go one after the other on it; `closed` settles when the server closes it. */
interface Connection {
  socket: Socket;
  /** Sends a GET and resolves with the whole answer (head and `content-length` bytes of body). */
  get(path: string): Promise<{ status: number; head: string; body: string; ms: number }>;
  /** Resolves, with the time since the last answer ended (or since the connection opened), when the server closes the connection. */
  closed: Promise<number>;
}

function openConnection(port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buffer = '';
    let since = performance.now();
    let waiting: ((text: string) => void) | undefined;
    const take = () => {
      if (!waiting) return;
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.slice(0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buffer.length < end + 4 + length) return;
      const whole = buffer.slice(0, end + 4 + length);
      buffer = buffer.slice(end + 4 + length);
      const done = waiting;
      waiting = undefined;
      since = performance.now();
      done(whole);
    };
    socket.on('data', (d) => {
      buffer += d.toString('latin1');
      take();
    });
    const closed = new Promise<number>((res) => socket.on('close', () => res(performance.now() - since)));
    socket.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ECONNRESET' && code !== 'EPIPE') reject(err);
    });
    socket.once('connect', () => {
      since = performance.now();
      resolve({
        socket,
        closed,
        get(path) {
          return new Promise((res, rej) => {
            const started = performance.now();
            if (socket.destroyed) return rej(new Error('the connection is closed'));
            const onClose = () => rej(new Error(`the connection closed before the answer to GET ${path}`));
            socket.once('close', onClose);
            waiting = (whole) => {
              socket.off('close', onClose);
              const end = whole.indexOf('\r\n\r\n');
              const head = whole.slice(0, end);
              res({ status: Number(head.split(' ')[1]), head, body: whole.slice(end + 4), ms: performance.now() - started });
            };
            socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
          });
        },
      });
    });
  });
}

/** The `q` quantile of `xs` (nearest rank). */
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!;

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
    let sending = true;
    const senders = Promise.all(Array.from({ length: 64 }, () => raw(portOf(svc.url), head, body, 15_000))).finally(() => {
      sending = false;
    });
    // The health check, asked again and again on a connection of its own while the 64 clients push.
    const probe = await openConnection(portOf(svc.url));
    const latencies: number[] = [];
    try {
      while (sending || latencies.length < 20) {
        const health = await probe.get('/health/live');
        assert.equal(health.status, 200, 'the health check is answered while 64 clients push 5 MB each');
        assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
        latencies.push(health.ms);
        if (latencies.length >= 2000) break;
      }
    } finally {
      probe.socket.destroy();
    }
    const answers = await senders;
    const p99 = quantile(latencies, 0.99);
    console.log(
      `/health/live under 64 unknown-path uploads: ${latencies.length} answers, p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`,
    );
    assert.ok(p99 < 500, `/health/live p99 ${p99.toFixed(0)} ms over ${latencies.length} answers (the bound: 500 ms)`);
    // The server closes each connection with the body unread; a client still writing may see the
    // reset before the 404 it was sent, so an answer is either that 404 or nothing. On a machine busy
    // enough that a connection's head waits past this suite's REQUEST_TIMEOUT (1 s), Node answers it
    // 408 instead: refused unread all the same.
    const unexpected = answers.filter((a) => !(a.closed && (a.answer === '' || /^HTTP\/1\.1 40[48] /.test(a.answer))));
    assert.deepEqual(
      unexpected.map((a) => ({ closed: a.closed, answer: a.answer.slice(0, 120) })),
      [],
      'every connection is answered 404 (or 408, or reset) and closed by the server',
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

  it('a body trickled a byte every 100 ms (never idle) is cut off after REQUEST_TIMEOUT (1s): 408 and closed', async () => {
    const { answer, closedAfterMs } = await trickle(
      portOf(svc.url),
      `POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${WEBHOOK_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`,
      100,
      10_000,
    );
    assert.ok(closedAfterMs !== undefined, `the server closes the trickling connection (answer: ${JSON.stringify(answer.slice(0, 200))})`);
    assert.match(answer, /^HTTP\/1\.1 408 /, answer);
    // Not before the timeout (the client was never idle, its body still arriving), and well within a generous bound after it.
    assert.ok(closedAfterMs >= 900, `closed after ${closedAfterMs.toFixed(0)} ms, not before REQUEST_TIMEOUT`);
    assert.ok(closedAfterMs < 6000, `closed after ${closedAfterMs.toFixed(0)} ms (REQUEST_TIMEOUT 1s)`);
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

describe('HTTP settings from configuration', () => {
  const iso = isolation('httpsettings');
  after(() => iso.drop());
  const start = (t: TestContext, env: Record<string, string>) =>
    startService(t, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env });

  it('KEEP_ALIVE_TIMEOUT=1s: an idle keep-alive connection is closed about 1 s after its last answer', async (t) => {
    const svc = await start(t, { KEEP_ALIVE_TIMEOUT: '1s', CONNECTION_TIMEOUT: '60s', REQUEST_TIMEOUT: '60s' });
    const conn = await openConnection(portOf(svc.url));
    try {
      const first = await conn.get('/health/live');
      assert.equal(first.status, 200);
      assert.match(first.head, /\r\nconnection: keep-alive/i, first.head);
      assert.match(first.head, /\r\nkeep-alive: timeout=1\b/i, first.head);
      // Still open within the timeout: a second request on it is answered.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await conn.get('/health/live')).status, 200, 'the connection is kept alive between requests');
      const idleMs = await Promise.race([conn.closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 8000))]);
      assert.ok(idleMs !== Infinity, 'the server closes the idle keep-alive connection');
      assert.ok(idleMs >= 800 && idleMs < 5000, `closed ${idleMs.toFixed(0)} ms after its last answer (KEEP_ALIVE_TIMEOUT 1s)`);
    } finally {
      conn.socket.destroy();
    }
  });

  it('CONNECTION_TIMEOUT=1s: a connection that stops sending halfway through its headers is closed after about 1 s', async (t) => {
    const svc = await start(t, { CONNECTION_TIMEOUT: '1s', KEEP_ALIVE_TIMEOUT: '60s', REQUEST_TIMEOUT: '60s' });
    const started = performance.now();
    const { answer, closed } = await raw(portOf(svc.url), 'GET /health/live HTTP/1.1\r\nHost: x\r\n', undefined, 8000);
    const ms = performance.now() - started;
    assert.ok(closed, 'the server closes the silent connection');
    assert.equal(answer, '', 'nothing is answered to an incomplete request');
    assert.ok(
      ms >= 800 && ms < 5000,
      `closed after ${ms.toFixed(0)} ms (CONNECTION_TIMEOUT 1s; REQUEST_TIMEOUT and KEEP_ALIVE_TIMEOUT 60s)`,
    );
  });

  it('the defaults do not cut a silent connection within seconds (the timeouts above come from configuration)', async (t) => {
    const svc = await start(t, {});
    assert.equal(svc.services.config.requestTimeoutMs, 30_000);
    assert.equal(svc.services.config.connectionTimeoutMs, 60_000);
    assert.equal(svc.services.config.keepAliveTimeoutMs, 72_000);
    assert.equal(svc.services.config.maxConnections, 1024);
    const { closed } = await raw(portOf(svc.url), 'GET /health/live HTTP/1.1\r\nHost: x\r\n', undefined, 2500);
    assert.ok(!closed, 'a connection silent for 2.5 s is still open with the default timeouts');
    const conn = await openConnection(portOf(svc.url));
    try {
      const res = await conn.get('/health/live');
      assert.match(res.head, /\r\nkeep-alive: timeout=72\b/i, res.head);
    } finally {
      conn.socket.destroy();
    }
  });

  it('MAX_CONNECTIONS=4: the fifth concurrent connection is closed unanswered, the four open ones still answer /health/live', async (t) => {
    const svc = await start(t, { MAX_CONNECTIONS: '4' });
    const port = portOf(svc.url);
    const open: Connection[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const conn = await openConnection(port);
        open.push(conn);
        assert.equal((await conn.get('/health/live')).status, 200, `connection ${i + 1} of 4 is served`);
      }
      const fifth = await raw(port, 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n', undefined, 5000);
      assert.ok(fifth.closed, 'the fifth connection is closed by the server');
      assert.equal(fifth.answer, '', 'and answered nothing');
      for (const [i, conn] of open.entries()) {
        const res = await conn.get('/health/live');
        assert.equal(res.status, 200, `connection ${i + 1} still answers /health/live`);
        assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
      }
      // A place freed is taken again: the cap counts open connections, it does not refuse for good.
      open.pop()!.socket.destroy();
      const again = await eventually(
        async () => {
          const conn = await openConnection(port);
          const res = await conn.get('/health/live').catch(() => undefined);
          if (!res) {
            conn.socket.destroy();
            return undefined;
          }
          open.push(conn);
          return res;
        },
        5000,
        'a new connection served once one of the four closed',
      );
      assert.equal(again.status, 200);
    } finally {
      for (const conn of open) conn.socket.destroy();
    }
  });
});
