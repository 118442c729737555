/**
 * Instant queries (src/prometheus/client.ts) against a REAL Prometheus scraping a test exporter, served under a
 * route prefix as behind a proxy, plus stand-ins for a Prometheus that hangs, fails or answers garbage. Values
 * escaped by promqlString (src/prometheus/promql.ts) are shown to select exactly their own series.
 *
 * The real-Prometheus part is skipped only when no Prometheus binary is installed (and PROMETHEUS_BIN is not
 * set): `apt-get install prometheus`.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { compileTemplate, type TemplateScope } from '../../src/matrix/template.js';
import {
  createPrometheusClient,
  parsePrometheusUrl,
  PrometheusUnavailable,
  QueryFailed,
  type PrometheusClient,
  type Sample,
} from '../../src/prometheus/client.js';
import { checkTemplatePlacement, promqlString } from '../../src/prometheus/promql.js';
import { startExporter, type RunningExporter } from '../support/exporter.js';
import { prometheusSkipReason, type RunningPrometheus, startPrometheus } from '../support/prometheus.js';

async function listen(server: Server | HttpServer): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A Prometheus stand-in answering every request with `handler`; records what it was asked. */
async function standIn(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void) {
  const requests: Array<{ method: string; url: string; contentType: string | undefined; body: string }> = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body });
      handler(req, body, res);
    });
  });
  const url = await listen(server);
  return {
    url,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

const VECTOR_ONE = { status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 'b' }, value: [1700000000.5, '1'] }] } };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the query to fail');
}

describe('parsePrometheusUrl', () => {
  it('takes one http(s) base URL, trimmed, without trailing slashes, keeping a path prefix', () => {
    assert.equal(parsePrometheusUrl('http://prometheus:9090'), 'http://prometheus:9090');
    assert.equal(parsePrometheusUrl(' https://example.com/prometheus/ '), 'https://example.com/prometheus');
    assert.equal(parsePrometheusUrl('http://127.0.0.1:9090//'), 'http://127.0.0.1:9090');
    assert.equal(parsePrometheusUrl('HTTP://Prometheus.Example:80/a/b'), 'http://prometheus.example/a/b');
  });

  it('rejects anything else, saying why, never repeating credentials', () => {
    assert.throws(() => parsePrometheusUrl(''), /PROMETHEUS_URL: no URL given/);
    assert.throws(() => parsePrometheusUrl('prometheus:9090'), /PROMETHEUS_URL \("prometheus:9090"\) is not an http\(s\):\/\/ URL/);
    assert.throws(() => parsePrometheusUrl('localhost'), /PROMETHEUS_URL \("localhost"\) is not a URL/);
    assert.throws(() => parsePrometheusUrl('http://a:9090,http://b:9090'), /PROMETHEUS_URL .*one URL is expected, not a list/);
    assert.throws(() => parsePrometheusUrl('http://a:9090/?x=1'), /must be a base URL, without query or fragment/);
    assert.throws(() => parsePrometheusUrl('http://a:9090/#top'), /must be a base URL, without query or fragment/);
    for (const text of ['http://user:s3cret@a:9090', 'http://:s3cret@a:9090/x', 'ftp://user:s3cret@a', 'user:s3cret@a:9090']) {
      assert.throws(
        () => parsePrometheusUrl(text),
        (err: Error) => err.message.startsWith('PROMETHEUS_URL') && !err.message.includes('s3cret'),
        text,
      );
    }
  });

  it('is what createPrometheusClient takes', () => {
    assert.equal(createPrometheusClient({ url: 'http://p:9090/prefix/' }).url, 'http://p:9090/prefix');
    assert.throws(() => createPrometheusClient({ url: 'p:9090' }), /Prometheus URL .* is not an http\(s\):\/\/ URL/);
    assert.throws(
      () => createPrometheusClient({ url: 'http://p:9090', requestTimeoutMs: 0 }),
      /requestTimeoutMs must be a positive number/,
    );
  });
});

describe('Prometheus client against stand-ins', () => {
  it('gives up on a server that accepts and never answers after requestTimeoutMs', { timeout: 10_000 }, async () => {
    const sockets = new Set<Socket>();
    const silent = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    const url = await listen(silent);
    try {
      const client = createPrometheusClient({ url, requestTimeoutMs: 300 });
      const started = Date.now();
      const err = await rejection(client.query('up'));
      const elapsed = Date.now() - started;
      assert.ok(err instanceof PrometheusUnavailable, String(err));
      assert.deepEqual(err.errors, [`${url}: no answer within 300 ms`]);
      assert.ok(elapsed >= 250 && elapsed < 1500, `gave up after ${elapsed} ms`);
      assert.ok(sockets.size >= 1, 'the request reached the server');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('rejects with the reason of the caller signal, not PrometheusUnavailable', { timeout: 10_000 }, async () => {
    const sockets = new Set<Socket>();
    const silent = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    const url = await listen(silent);
    try {
      const client = createPrometheusClient({ url, requestTimeoutMs: 5000 });
      const controller = new AbortController();
      const reason = new Error('shutting down');
      setTimeout(() => controller.abort(reason), 100);
      const started = Date.now();
      assert.equal(await rejection(client.query('up', controller.signal)), reason);
      assert.ok(Date.now() - started < 2000);
      assert.equal(await rejection(client.query('up', controller.signal)), reason, 'an aborted signal fails at once');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('takes 5xx, 408, 429, a proxy page, a cut answer and JSON that is no API answer as unavailable', { timeout: 10_000 }, async () => {
    const answers: Array<[string, (res: ServerResponse) => void, RegExp]> = [
      [
        'timeout',
        (res) => json(res, 503, { status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' }),
        /HTTP 503: timeout: query timed out/,
      ],
      ['canceled', (res) => json(res, 499, { status: 'error', errorType: 'canceled', error: 'context canceled' }), /HTTP 499: canceled/],
      ['internal', (res) => json(res, 500, { status: 'error', errorType: 'internal', error: 'boom' }), /HTTP 500: internal: boom/],
      ['rate limit', (res) => json(res, 429, { status: 'error', errorType: 'too_many_requests', error: 'slow down' }), /HTTP 429/],
      [
        'gateway',
        (res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html><h1>502 Bad Gateway</h1></html>'),
        /HTTP 502: <html>/,
      ],
      [
        'login page',
        (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>sign in</html>'),
        /not a Prometheus API response/,
      ],
      [
        'not found',
        (res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n'),
        /HTTP 404: 404 page not found/,
      ],
      ['other JSON', (res) => json(res, 200, { hello: 'world' }), /not a Prometheus API response/],
      ['no data', (res) => json(res, 200, { status: 'success' }), /not a query result/],
      [
        'bad value',
        (res) => json(res, 200, { status: 'success', data: { resultType: 'scalar', result: [1, 'one'] } }),
        /not a query result/,
      ],
      ['unknown type', (res) => json(res, 200, { status: 'success', data: { resultType: 'table', result: [] } }), /not a query result/],
      [
        'cut',
        (res) => {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
          res.write('{"status":"succ');
          setTimeout(() => res.socket?.destroy(), 20);
        },
        /: (terminated|ECONNRESET|UND_ERR_SOCKET)/,
      ],
    ];
    for (const [what, answer, expected] of answers) {
      const server = await standIn((_req, _body, res) => answer(res));
      try {
        const err = await rejection(createPrometheusClient({ url: server.url, requestTimeoutMs: 2000 }).query('up'));
        assert.ok(err instanceof PrometheusUnavailable, `${what}: ${String(err)}`);
        assert.equal(err.errors.length, 1);
        assert.ok(err.errors[0]?.startsWith(`${server.url}: `), err.errors[0]);
        assert.match(err.message, expected, what);
      } finally {
        await server.close();
      }
    }
  });

  it('sends short queries as GET and long ones as a form-encoded POST, with a timeout for Prometheus', { timeout: 10_000 }, async () => {
    const server = await standIn((_req, _body, res) => json(res, 200, VECTOR_ONE));
    try {
      const client = createPrometheusClient({ url: `${server.url}/prometheus/`, requestTimeoutMs: 1500 });
      const short = 'up{job="a b&c=d"}';
      assert.deepEqual((await client.query(short)).samples, [{ labels: { a: 'b' }, value: 1, at: '2023-11-14T22:13:20.500Z' }]);
      const long = `up{job=~"${Array.from({ length: 400 }, (_, i) => `job-${i}`).join('|')}"}`;
      await client.query(long);
      const [get, post] = server.requests;
      assert.equal(get?.method, 'GET');
      const getUrl = new URL(get?.url ?? '', server.url);
      assert.equal(getUrl.pathname, '/prometheus/api/v1/query');
      assert.equal(getUrl.searchParams.get('query'), short);
      assert.equal(getUrl.searchParams.get('timeout'), '1500ms');
      assert.equal(post?.method, 'POST');
      assert.equal(post?.url, '/prometheus/api/v1/query');
      assert.equal(post?.contentType, 'application/x-www-form-urlencoded');
      const form = new URLSearchParams(post?.body);
      assert.equal(form.get('query'), long);
      assert.equal(form.get('timeout'), '1500ms');
    } finally {
      await server.close();
    }
  });

  it('reads native histograms as their count, the latest point of a matrix, and passes warnings on', async () => {
    const histogram = { count: '12', sum: '3.5', buckets: [[0, '0', '1', '12']] };
    const bodies = [
      { status: 'success', data: { resultType: 'vector', result: [{ metric: { h: '1' }, histogram: [1700000000, histogram] }] } },
      {
        status: 'success',
        warnings: ['PromQL warning: partial answer'],
        data: {
          resultType: 'matrix',
          result: [
            {
              metric: { s: '1' },
              values: [
                [1700000000, '1'],
                [1700000002, '-Inf'],
              ],
              histograms: [[1700000001, histogram]],
            },
          ],
        },
      },
    ];
    let next = 0;
    const server = await standIn((_req, _body, res) => json(res, 200, bodies[next++]));
    try {
      const client = createPrometheusClient({ url: server.url });
      const vector = await client.query('h');
      assert.deepEqual(vector.samples, [{ labels: { h: '1' }, value: 12, at: '2023-11-14T22:13:20.000Z' }]);
      assert.equal(vector.warnings, undefined);
      const matrix = await client.query('s[5m]');
      assert.deepEqual(matrix.samples, [{ labels: { s: '1' }, value: -Infinity, at: '2023-11-14T22:13:22.000Z' }]);
      assert.deepEqual(matrix.warnings, ['PromQL warning: partial answer']);
    } finally {
      await server.close();
    }
  });
});

/** Label values that must select exactly their own series once escaped. */
const HOSTILE = [
  'x"} or vector(1) or remediator_hostile{case="y',
  'x"} or vector(1) or {a="',
  "x'} or vector(1) or remediator_hostile{case='y",
  '\\',
  'ends with a backslash\\',
  '\\\\',
  '\\"',
  "\\'",
  '"',
  "'",
  '`',
  'it\'s "quoted"',
  'line\nbreak',
  'tab\there',
  'carriage\rreturn',
  'bell\u0007 del\u007f',
  'next line\u0085 line separator\u2028',
  'replacement \uFFFD character',
  'lone \uD800 surrogate',
  '{{ labels.case }}',
  '} or vector(1) #',
  '.*',
  'héllo 日本 🎉',
  'y',
  '',
];

describe('Prometheus client against a real Prometheus', { skip: prometheusSkipReason() }, () => {
  let exporter: RunningExporter | undefined;
  let prom: RunningPrometheus | undefined;
  let client: PrometheusClient | undefined;

  const prometheus = () => {
    assert.ok(prom, 'Prometheus not started');
    return prom;
  };
  const queries = () => {
    assert.ok(client, 'client not created');
    return client;
  };

  before(
    async () => {
      exporter = await startExporter();
      exporter.set('remediator_test_gauge', { case: 'plain' }, 42.5);
      exporter.set('remediator_test_gauge', { case: 'nan' }, NaN);
      exporter.set('remediator_test_gauge', { case: 'inf' }, Infinity);
      exporter.set('remediator_test_gauge', { case: 'minus-inf' }, -Infinity);
      HOSTILE.forEach((value, i) => exporter?.set('remediator_hostile', { case: value }, i));
      prom = await startPrometheus({ scrapeTargets: [exporter.hostPort], routePrefix: '/prometheus' });
      // A trailing slash, as a PROMETHEUS_URL may be written.
      client = createPrometheusClient({ url: `${prom.url}/`, requestTimeoutMs: 3000 });
      await prom.waitForSample('count(remediator_hostile)', (s) => s.value === HOSTILE.length, 20_000);
      await prom.waitForSample('count(remediator_test_gauge)', (s) => s.value === 4, 20_000);
    },
    { timeout: 60_000 },
  );

  after(async () => {
    await prom?.close();
    await exporter?.close();
  });

  it('answers a vector query with its samples, labels and times', { timeout: 10_000 }, async () => {
    const answer = await queries().query('remediator_test_gauge{case="plain"}');
    assert.equal(answer.resultType, 'vector');
    assert.equal(answer.source, prometheus().url);
    assert.equal(answer.samples.length, 1);
    const [sample] = answer.samples as [Sample];
    assert.deepEqual(sample.labels, {
      __name__: 'remediator_test_gauge',
      case: 'plain',
      instance: exporter?.hostPort,
      job: 'exporter',
    });
    assert.equal(sample.value, 42.5);
    assert.match(sample.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(sample.at) - Date.now()) < 10_000, `evaluated at Prometheus' now: ${sample.at}`);

    const all = await queries().query('remediator_test_gauge');
    assert.deepEqual(all.samples.map((s) => s.labels['case']).sort(), ['inf', 'minus-inf', 'nan', 'plain']);
  });

  it('answers a query matching nothing with an empty vector', { timeout: 10_000 }, async () => {
    const answer = await queries().query('remediator_test_gauge{case="absent"}');
    assert.deepEqual({ resultType: answer.resultType, samples: answer.samples }, { resultType: 'vector', samples: [] });
    assert.deepEqual((await queries().query('remediator_test_gauge{case="plain"} > 1000')).samples, []);
  });

  it('reads NaN, +Inf and -Inf as numbers', { timeout: 10_000 }, async () => {
    const byCase = new Map((await queries().query('remediator_test_gauge')).samples.map((s) => [s.labels['case'], s.value]));
    assert.ok(Number.isNaN(byCase.get('nan')));
    assert.equal(byCase.get('inf'), Infinity);
    assert.equal(byCase.get('minus-inf'), -Infinity);
    const scalar = async (q: string) => (await queries().query(q)).samples[0]?.value;
    assert.equal(await scalar('1/0'), Infinity);
    assert.equal(await scalar('-1/0'), -Infinity);
    assert.ok(Number.isNaN(await scalar('0/0')));
  });

  it('answers a scalar, a string and a range vector as Prometheus types them', { timeout: 10_000 }, async () => {
    const scalar = await queries().query('scalar(remediator_test_gauge{case="plain"}) * 2');
    assert.equal(scalar.resultType, 'scalar');
    assert.equal(scalar.samples.length, 1);
    assert.deepEqual(scalar.samples[0]?.labels, {});
    assert.equal(scalar.samples[0]?.value, 85);
    assert.ok(Math.abs(Date.parse(scalar.samples[0]?.at ?? '') - Date.now()) < 10_000);

    const text = await queries().query('"conduit"');
    assert.equal(text.resultType, 'string');
    assert.equal(text.samples[0]?.text, 'conduit');
    assert.ok(Number.isNaN(text.samples[0]?.value));

    const range = await queries().query('remediator_test_gauge{case="plain"}[30s]');
    assert.equal(range.resultType, 'matrix');
    assert.equal(range.samples.length, 1);
    assert.equal(range.samples[0]?.value, 42.5);
    assert.equal(range.samples[0]?.labels['case'], 'plain');
  });

  it('runs a long query (sent as POST) as Prometheus reads it', { timeout: 10_000 }, async () => {
    const cases = ['plain', ...Array.from({ length: 500 }, (_, i) => `unused-${i}`)];
    const long = `remediator_test_gauge{case=~"${cases.join('|')}"}`;
    assert.ok(long.length > 2000);
    const answer = await queries().query(long);
    assert.deepEqual(
      answer.samples.map((s) => s.labels['case']),
      ['plain'],
    );
  });

  it('throws QueryFailed for a query Prometheus cannot parse or execute', { timeout: 10_000 }, async () => {
    const unparsable = await rejection(queries().query('remediator_test_gauge{case="plain"'));
    assert.ok(unparsable instanceof QueryFailed, String(unparsable));
    assert.equal(unparsable.errorType, 'bad_data');
    assert.match(unparsable.message, /^Prometheus rejected the query \(bad_data\): .*parse error/);

    const unknownEscape = await rejection(queries().query(`remediator_test_gauge{case="\\'"}`));
    assert.ok(unknownEscape instanceof QueryFailed);
    assert.match(unknownEscape.message, /unknown escape sequence/);

    const rawReplacement = await rejection(queries().query('remediator_hostile{case="replacement \uFFFD character"}'));
    assert.ok(rawReplacement instanceof QueryFailed, 'an unescaped U+FFFD does not parse');
    assert.match(rawReplacement.message, /invalid UTF-8 rune/);

    const manyToMany = await rejection(queries().query('remediator_test_gauge + on() remediator_test_gauge'));
    assert.ok(manyToMany instanceof QueryFailed, String(manyToMany));
    assert.equal(manyToMany.errorType, 'execution');
  });

  it('with promqlString, a hostile value selects exactly the series a literal match on it selects', { timeout: 30_000 }, async () => {
    const everything = (await queries().query('remediator_hostile')).samples;
    assert.equal(everything.length, HOSTILE.length);
    const key = (s: Sample) => JSON.stringify(Object.entries(s.labels).sort());
    const templates = [
      'remediator_hostile{case="{{ labels.case }}"}',
      "remediator_hostile{case='{{ labels.case }}'}",
      'remediator_hostile{job="exporter", case="{{ labels.case }}"} * 1',
    ];
    for (const template of templates) {
      assert.equal(checkTemplatePlacement(template), undefined);
      const render = compileTemplate(template);
      for (const value of HOSTILE) {
        const stored = value.replace(/[\uD800-\uDFFF]/gu, '\uFFFD'); // what UTF-8 makes of a lone surrogate
        const literal = everything.filter((s) => (s.labels['case'] ?? '') === stored);
        assert.equal(literal.length, 1, `one series has case=${JSON.stringify(stored)}`);
        const scope: TemplateScope = {
          labels: { case: promqlString(value) },
          annotations: {},
          alert: { fingerprint: '0', startsAt: '2026-01-01T00:00:00Z', status: 'firing' },
        };
        const query = render(scope);
        const answer = await queries().query(query);
        assert.deepEqual(
          answer.samples.map((s) => s.labels['case'] ?? ''),
          [stored],
          `${query} selects only case=${JSON.stringify(stored)}`,
        );
        if (template.endsWith('* 1')) {
          const { __name__: _dropped, ...rest } = literal[0]?.labels ?? {};
          assert.deepEqual(answer.samples[0]?.labels, rest);
        } else {
          assert.deepEqual(answer.samples.map(key), literal.map(key));
        }
        assert.equal(answer.samples[0]?.value, HOSTILE.indexOf(value));
      }
    }
  });

  it('without promqlString, the same values change the query (what the escaping prevents)', { timeout: 10_000 }, async () => {
    const render = compileTemplate('remediator_hostile{case="{{ labels.case }}"}');
    const raw = (value: string) =>
      render({ labels: { case: value }, annotations: {}, alert: { fingerprint: '0', startsAt: '2026-01-01T00:00:00Z', status: 'firing' } });
    const injected = await queries().query(raw(HOSTILE[0] ?? ''));
    assert.ok(injected.samples.length > 1, 'vector(1) and the case="y" series come along');
    assert.ok(injected.samples.some((s) => Object.keys(s.labels).length === 0));
    assert.ok((await rejection(queries().query(raw('ends with a backslash\\')))) instanceof QueryFailed);
  });

  it(
    'throws PrometheusUnavailable within the timeout while Prometheus is stopped, and answers after a restart',
    { timeout: 60_000 },
    async () => {
      await prometheus().stop();
      const down = createPrometheusClient({ url: prometheus().url, requestTimeoutMs: 2000 });
      const started = Date.now();
      const err = await rejection(down.query('remediator_test_gauge'));
      const elapsed = Date.now() - started;
      assert.ok(err instanceof PrometheusUnavailable, String(err));
      assert.deepEqual(err.errors, [`${prometheus().url}: ECONNREFUSED`]);
      assert.ok(elapsed < 2500, `failed after ${elapsed} ms`);

      await prometheus().restart();
      const sample = await prometheus().waitForSample('remediator_test_gauge{case="plain"}', (s) => s.value === 42.5, 20_000);
      assert.equal(sample.labels['case'], 'plain');
      assert.equal((await down.query('remediator_test_gauge{case="plain"}')).samples.length, 1);
    },
  );
});
