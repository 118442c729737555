/**
 * The re-check that a run's alert is still firing (src/alertmanager/check.ts), against a REAL
 * Alertmanager (prometheus-alertmanager 0.25+) on 127.0.0.1, plus stand-ins for members that are
 * down, hang, fail or answer garbage.
 *
 * The alert a check is asked about is the one Alertmanager's webhook notification carried
 * (fingerprint, RFC 3339 startsAt with nanoseconds, labels), received here on a local listener.
 *
 * Skipped only when no Alertmanager binary is installed (and ALERTMANAGER_BIN is not set):
 * `apt-get install prometheus-alertmanager`.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlertmanagerUnavailable,
  createAlertCheck,
  parseAlertmanagerUrls,
  type AlertCheck,
  type AlertRef,
} from '../../src/alertmanager/check.js';
import { alertmanagerSkipReason, freePort, type RunningAlertmanager, startAlertmanager } from '../support/alertmanager.js';

/** An alert as a webhook notification carries it (the fields used here). */
interface NotifiedAlert {
  status: string;
  fingerprint: string;
  startsAt: string;
  labels: Record<string, string>;
}

/** An alert as GET /api/v2/alerts answers it (the fields used here). */
interface ApiAlert {
  fingerprint: string;
  startsAt: string;
  endsAt: string;
  labels: Record<string, string>;
  status: { state: string; silencedBy: string[] };
}

let sequence = 0;
/** An alertname no other test uses, so each test sees only its own alerts. */
const alertname = (what: string) => `AlertCheck_${what}_${process.pid}_${++sequence}`;

/** `date` as RFC 3339 in a +02:00 offset with the given sub-millisecond digits, as a Prometheus in that zone might send it. */
function rfc3339Nano(date: Date, subMillis: string, offsetMinutes = 120): string {
  const local = new Date(date.getTime() + offsetMinutes * 60_000).toISOString(); // YYYY-MM-DDTHH:mm:ss.sssZ
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${local.slice(0, -1)}${subMillis}${zone}`;
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('parseAlertmanagerUrls', () => {
  it('takes one URL or an HA pair, trimmed, without trailing slashes', () => {
    assert.deepEqual(parseAlertmanagerUrls('http://am:9093'), ['http://am:9093']);
    assert.deepEqual(parseAlertmanagerUrls(' http://am-0:9093/ , https://am-1.example:9093// '), [
      'http://am-0:9093',
      'https://am-1.example:9093',
    ]);
    assert.deepEqual(parseAlertmanagerUrls('http://proxy/alertmanager/'), ['http://proxy/alertmanager']);
    assert.deepEqual(parseAlertmanagerUrls('http://a:9093,,http://a:9093/'), ['http://a:9093']);
  });

  it('rejects anything that is not an http(s) base URL, saying why', () => {
    assert.throws(() => parseAlertmanagerUrls(''), /ALERTMANAGER_URL: no URL given/);
    assert.throws(() => parseAlertmanagerUrls(' , '), /ALERTMANAGER_URL: no URL given/);
    assert.throws(() => parseAlertmanagerUrls('am:9093'), /ALERTMANAGER_URL: entry 1 \("am:9093"\) is not an http\(s\):\/\/ URL/);
    assert.throws(
      () => parseAlertmanagerUrls('http://a:9093,ftp://b'),
      /ALERTMANAGER_URL: entry 2 \("ftp:\/\/b"\) is not an http\(s\):\/\/ URL/,
    );
    assert.throws(() => parseAlertmanagerUrls('localhost'), /ALERTMANAGER_URL: entry 1 \("localhost"\) is not a URL/);
    assert.throws(() => parseAlertmanagerUrls('http://a:9093/?x=1'), /must be a base URL, without query or fragment/);
    assert.throws(
      () => parseAlertmanagerUrls('http://user:s3cret@a:9093'),
      (err: Error) => /credentials in the URL are not supported/.test(err.message) && !err.message.includes('s3cret'),
    );
  });
});

describe('alert check against a real Alertmanager', { skip: alertmanagerSkipReason() }, () => {
  const notified: NotifiedAlert[] = [];
  let receiver: HttpServer | undefined;
  let am: RunningAlertmanager | undefined;
  let check: AlertCheck | undefined;

  const alertmanager = () => {
    assert.ok(am, 'Alertmanager not started');
    return am;
  };
  const single = () => {
    assert.ok(check, 'check not created');
    return check;
  };

  /** The notification Alertmanager delivered for this alertname (firing unless said otherwise). */
  const notification = (name: string, status = 'firing') =>
    until(`a ${status} notification for ${name}`, () => notified.find((a) => a.labels['alertname'] === name && a.status === status));

  /** What Alertmanager's API lists for this alertname. */
  async function listed(name: string): Promise<ApiAlert[]> {
    const all = (await alertmanager().alerts()) as ApiAlert[];
    return all.filter((a) => a.labels['alertname'] === name);
  }

  const refOf = (a: { fingerprint: string; startsAt: string; labels: Record<string, string> }): AlertRef => ({
    fingerprint: a.fingerprint,
    startsAt: a.startsAt,
    labels: a.labels,
  });

  before(async () => {
    receiver = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alerts?: NotifiedAlert[] };
          notified.push(...(body.alerts ?? []));
        } catch {
          // not a notification: ignored
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const receiverUrl = await listen(receiver);
    // Every alert its own group, so each one is notified at once and separately.
    am = await startAlertmanager({ webhookUrl: `${receiverUrl}/hook`, token: 'alert-check-token-0123456789', groupBy: ['...'] });
    check = createAlertCheck({ urls: [am.url], requestTimeoutMs: 3000 });
  });

  after(async () => {
    await am?.close();
    if (receiver) {
      receiver.closeAllConnections();
      await closeServer(receiver);
    }
  });

  it('finds a firing alert by the fingerprint and startsAt its webhook notification carried', async () => {
    const name = alertname('firing');
    const startsAt = rfc3339Nano(new Date(Date.now() - 2000), '456789');
    await alertmanager().postAlerts([{ labels: { alertname: name, provider: 'openai', severity: 'critical' }, startsAt }]);

    const sent = await notification(name);
    const [held] = await listed(name);
    assert.ok(held, 'Alertmanager lists the alert');
    // The fingerprint of the webhook is the API's; the times are the same instant at different precisions.
    assert.equal(sent.fingerprint, held.fingerprint);
    assert.equal(sent.startsAt, startsAt, 'the webhook sends startsAt with nanoseconds, in the offset it was posted with');
    assert.match(held.startsAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+02:00$/, 'the API sends milliseconds');
    assert.equal(held.startsAt, `${startsAt.slice(0, 23)}+02:00`);

    assert.deepEqual(await single().isFiring(refOf(sent)), { firing: true, source: alertmanager().url, state: 'active' });
    // The same instant written in UTC is the same episode.
    const utc = new Date(held.startsAt).toISOString().replace('Z', '999999Z');
    assert.equal((await single().isFiring({ ...refOf(sent), startsAt: utc })).firing, true);
    // A millisecond off is not.
    const off = new Date(new Date(held.startsAt).getTime() + 1).toISOString();
    assert.deepEqual(await single().isFiring({ ...refOf(sent), startsAt: off }), {
      firing: false,
      source: alertmanager().url,
      state: null,
    });
    // Nor is another fingerprint with the same labels and time.
    assert.equal((await single().isFiring({ ...refOf(sent), fingerprint: '0123456789abcdef' })).firing, false);
  });

  it('does not see a resolved alert (endsAt in the past) as firing', async () => {
    const name = alertname('resolved');
    const alert = { labels: { alertname: name, provider: 'anthropic', severity: 'critical' } };
    await alertmanager().postAlerts([alert]);
    const sent = await notification(name);
    assert.equal((await single().isFiring(refOf(sent))).firing, true);

    await alertmanager().resolveAlerts([alert]);
    const resolved = await notification(name, 'resolved');
    assert.equal(resolved.fingerprint, sent.fingerprint);
    assert.equal(resolved.startsAt, sent.startsAt);
    // GET /api/v2/alerts leaves out alerts whose endsAt has passed, whatever the filters.
    assert.deepEqual(await listed(name), []);
    assert.deepEqual(await single().isFiring(refOf(sent)), { firing: false, source: alertmanager().url, state: null });
    assert.deepEqual(await single().isFiring(refOf(resolved)), { firing: false, source: alertmanager().url, state: null });
  });

  it('takes the same labels firing again with another startsAt as another episode', async () => {
    const name = alertname('episode');
    const labels = { alertname: name, provider: 'azure', severity: 'critical' };
    const first = new Date(Date.now() - 60_000);
    await alertmanager().postAlerts([{ labels, startsAt: first }]);
    const [one] = await listed(name);
    assert.ok(one);
    await alertmanager().resolveAlerts([{ labels, startsAt: first }]);
    await until('the first episode resolved', async () => ((await listed(name)).length === 0 ? true : undefined));

    // Prometheus starts the next episode after the resolution. (A startsAt before the resolved alert's endsAt
    // would overlap it, and Alertmanager would merge the two, keeping the first startsAt.)
    await sleep(20);
    const second = new Date();
    await alertmanager().postAlerts([{ labels, startsAt: second }]);
    const [two] = await listed(name);
    assert.ok(two);
    assert.equal(two.fingerprint, one.fingerprint, 'same labels, same fingerprint');
    assert.equal(new Date(two.startsAt).getTime(), second.getTime());

    assert.deepEqual(await single().isFiring(refOf(one)), { firing: false, source: alertmanager().url, state: null });
    assert.deepEqual(await single().isFiring(refOf(two)), { firing: true, source: alertmanager().url, state: 'active' });
  });

  it('selects alerts whose labels hold quotes, backslashes, spaces and line feeds', async () => {
    const name = alertname('escaping');
    const labels = {
      alertname: name,
      path: 'C:\\Program Files\\conduit "prod"\\',
      summary: 'say "hi"\nthen \\n and \\" literally',
      spaced: '  leading and trailing  ',
    };
    // A neighbour differing only in how its path is written: the filters must tell the two apart.
    const neighbour = { ...labels, path: 'C:\\\\Program Files\\\\conduit \\"prod\\"\\\\' };
    await alertmanager().postAlerts([{ labels }, { labels: neighbour }]);
    const sent = await until('the notification of the alert', () =>
      notified.find((a) => a.labels['alertname'] === name && a.labels['path'] === labels.path && a.status === 'firing'),
    );
    assert.deepEqual(sent.labels, labels, 'Alertmanager keeps the values as posted');
    const held = await listed(name);
    assert.equal(held.length, 2);
    const mine = held.find((a) => a.labels['path'] === labels.path);
    const other = held.find((a) => a.labels['path'] === neighbour.path);
    assert.ok(mine && other);
    assert.equal(sent.fingerprint, mine.fingerprint);

    assert.deepEqual(await single().isFiring(refOf(sent)), { firing: true, source: alertmanager().url, state: 'active' });
    assert.equal((await single().isFiring(refOf(other))).firing, true);
    // With the neighbour's labels the answer holds only the neighbour, not this fingerprint.
    assert.equal((await single().isFiring({ ...refOf(sent), labels: other.labels })).firing, false);
  });

  it('still sees a silenced alert as firing, suppressed', async () => {
    const name = alertname('silenced');
    await alertmanager().postAlerts([{ labels: { alertname: name, provider: 'openai', severity: 'critical' } }]);
    const sent = await notification(name);

    const now = Date.now();
    const res = await fetch(`${alertmanager().url}/api/v2/silences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        matchers: [{ name: 'alertname', value: name, isRegex: false, isEqual: true }],
        startsAt: new Date(now - 1000).toISOString(),
        endsAt: new Date(now + 3_600_000).toISOString(),
        createdBy: 'alert-check test',
        comment: 'maintenance',
      }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const { silenceID } = (await res.json()) as { silenceID: string };
    try {
      const [held] = await listed(name);
      assert.ok(held);
      assert.equal(held.status.state, 'suppressed');
      assert.deepEqual(held.status.silencedBy, [silenceID]);
      assert.deepEqual(await single().isFiring(refOf(sent)), { firing: true, source: alertmanager().url, state: 'suppressed' });
    } finally {
      const expired = await fetch(`${alertmanager().url}/api/v2/silence/${silenceID}`, {
        method: 'DELETE',
        signal: AbortSignal.timeout(5000),
      });
      await expired.arrayBuffer();
    }
  });

  it('answers from the member that is up when the other one of an HA pair is a closed port', async () => {
    const name = alertname('ha');
    await alertmanager().postAlerts([{ labels: { alertname: name, provider: 'openai', severity: 'critical' } }]);
    const sent = await notification(name);
    const closed = `http://127.0.0.1:${await freePort()}`;

    for (const urls of [
      [closed, alertmanager().url],
      [alertmanager().url, closed],
    ]) {
      const pair = createAlertCheck({ urls, requestTimeoutMs: 3000 });
      assert.deepEqual(pair.urls, urls);
      assert.deepEqual(await pair.isFiring(refOf(sent)), { firing: true, source: alertmanager().url, state: 'active' });
      assert.deepEqual(await pair.isFiring({ ...refOf(sent), fingerprint: 'ffffffffffffffff' }), {
        firing: false,
        source: alertmanager().url,
        state: null,
      });
    }
  });

  it('sees an alert firing when only one member of a pair lists it', { timeout: 30_000 }, async () => {
    const name = alertname('one-member');
    const labels = { alertname: name, provider: 'openai', severity: 'critical' };
    const other = await startAlertmanager({ webhookUrl: `http://127.0.0.1:${await freePort()}/hook`, token: 'unused-token-0123456789' });
    try {
      await other.postAlerts([{ labels }]);
      const [held] = (await other.alerts()) as ApiAlert[];
      assert.ok(held);
      const pair = createAlertCheck({ urls: [alertmanager().url, other.url] });
      assert.deepEqual(await pair.isFiring(refOf(held)), { firing: true, source: other.url, state: 'active' });

      await other.resolveAlerts([{ labels }]);
      // Both answered, neither lists it: the first configured one is named.
      assert.deepEqual(await pair.isFiring(refOf(held)), { firing: false, source: alertmanager().url, state: null });
    } finally {
      await other.close();
    }
  });

  it('counts HTTP errors and answers that are not JSON as not answering', async () => {
    const name = alertname('garbage');
    await alertmanager().postAlerts([{ labels: { alertname: name, severity: 'critical' } }]);
    const sent = await notification(name);
    const standIn = createHttpServer((req, res) => {
      if (req.url?.startsWith('/down/')) res.writeHead(503, { 'content-type': 'text/plain' }).end('Alertmanager is not ready\n');
      else if (req.url?.startsWith('/html/')) res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"not":"a list"}');
    });
    const base = await listen(standIn);
    try {
      const bad = [`${base}/down`, `${base}/html`, `${base}/object`];
      const pair = createAlertCheck({ urls: [...bad, alertmanager().url] });
      assert.deepEqual(await pair.isFiring(refOf(sent)), { firing: true, source: alertmanager().url, state: 'active' });

      const none = createAlertCheck({ urls: bad });
      const err = await none.isFiring(refOf(sent)).then(
        () => assert.fail('expected AlertmanagerUnavailable'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof AlertmanagerUnavailable, String(err));
      assert.deepEqual(err.errors, [
        `${base}/down: HTTP 503: Alertmanager is not ready`,
        `${base}/html: answer is not JSON`,
        `${base}/object: answer is not a list of alerts`,
      ]);
    } finally {
      standIn.closeAllConnections();
      await closeServer(standIn);
    }
  });

  it('throws AlertmanagerUnavailable naming every member when all are down, within the timeout', { timeout: 15_000 }, async () => {
    const name = alertname('all-down');
    const ref: AlertRef = { fingerprint: '0123456789abcdef', startsAt: new Date().toISOString(), labels: { alertname: name } };
    const a = `http://127.0.0.1:${await freePort()}`;
    let b = a;
    while (b === a) b = `http://127.0.0.1:${await freePort()}`;

    const refused = await createAlertCheck({ urls: [a, b] })
      .isFiring(ref)
      .then(
        () => assert.fail('expected AlertmanagerUnavailable'),
        (e: unknown) => e,
      );
    assert.ok(refused instanceof AlertmanagerUnavailable, String(refused));
    assert.deepEqual(refused.errors, [`${a}: ECONNREFUSED`, `${b}: ECONNREFUSED`]);
    assert.match(refused.message, /ECONNREFUSED.*ECONNREFUSED/);

    // A member that accepts connections and never answers is bounded by requestTimeoutMs.
    const sockets = new Set<Socket>();
    const blackHole = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    const hanging = await listen(blackHole);
    try {
      const started = Date.now();
      const timedOut = await createAlertCheck({ urls: [hanging, a], requestTimeoutMs: 300 })
        .isFiring(ref)
        .then(
          () => assert.fail('expected AlertmanagerUnavailable'),
          (e: unknown) => e,
        );
      const took = Date.now() - started;
      assert.ok(timedOut instanceof AlertmanagerUnavailable, String(timedOut));
      assert.deepEqual(timedOut.errors, [`${hanging}: no answer within 300 ms`, `${a}: ECONNREFUSED`]);
      assert.ok(took >= 250 && took < 2000, `took ${took} ms`);

      // The caller's signal ends the check too, with the caller's reason rather than AlertmanagerUnavailable.
      const controller = new AbortController();
      const aborted = createAlertCheck({ urls: [hanging] }).isFiring(ref, controller.signal);
      setTimeout(() => controller.abort(new Error('shutting down')), 50);
      const abortStarted = Date.now();
      await assert.rejects(aborted, /shutting down/);
      assert.ok(Date.now() - abortStarted < 2000);
      await assert.rejects(createAlertCheck({ urls: [hanging] }).isFiring(ref, AbortSignal.abort(new Error('gone'))), /gone/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await closeServer(blackHole);
    }
  });

  it('rejects a startsAt that is not an RFC 3339 time', async () => {
    await assert.rejects(single().isFiring({ fingerprint: 'x', startsAt: 'yesterday', labels: {} }), TypeError);
  });
});
