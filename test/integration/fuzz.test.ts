/**
 * Mutated bodies, queries and headers on every route of a real server process (each route of its
 * OpenAPI document is checked to be in the list), bounded in time: no answer is a 5xx, the process
 * stays alive and answers its health check, and nothing a refused request carried is stored: the runs
 * in PostgreSQL are exactly those the 200 answers announced, no run is decided (none needs approval),
 * and the kill switch changed exactly with the pauses and resumes answered 200, each by the admin.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { isolation, TOKENS, WEBHOOK_TOKEN, writeMatrix } from '../support/harness.js';
import { serviceEnv, startServerProcess } from '../support/server-process.js';
import { blockActions, SIGNING_SECRET, slackSignature } from '../support/slack.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: fuzz
    matchers: ['alertname=~".+"']
    actions:
      - remediation: notify.webhook
        params: { text: 'fuzz {{ labels.alertname }}' }
        dryRun: true
`;

/** A small deterministic generator, so a failure can be replayed from its seed. */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

type Rand = ReturnType<typeof prng>;

const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1e308,
  -0,
  '',
  ' ',
  'x'.repeat(10_000),
  '\u0000',
  '\ud800',
  '<!channel>',
  '{{ labels.alertname }}',
  '../../etc/passwd',
  "'; DROP TABLE runs; --",
  '2026-13-45T99:99:99Z',
  '0001-01-01T00:00:00Z',
  [],
  [[[]]],
  {},
  { __proto__: { polluted: true } },
  { constructor: { prototype: { polluted: true } } },
];

/** One mutation of a JSON value: a key dropped, a value replaced, an array emptied or repeated. */
function mutate(value: unknown, r: Rand, depth = 0): unknown {
  if (depth > 6 || r.next() < 0.15) return r.pick(ODD_VALUES);
  if (Array.isArray(value)) {
    if (value.length === 0 || r.next() < 0.2) return r.next() < 0.5 ? [] : Array.from({ length: 1 + r.int(3) }, () => r.pick(ODD_VALUES));
    const copy = [...value];
    const i = r.int(copy.length);
    copy[i] = mutate(copy[i], r, depth + 1);
    if (r.next() < 0.2) copy.push(copy[i]);
    return copy;
  }
  if (value && typeof value === 'object') {
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(copy);
    const roll = r.next();
    if (keys.length === 0 || roll < 0.2) copy[r.pick(['__proto__', 'constructor', 'extra', '', 'status', 'labels'])] = r.pick(ODD_VALUES);
    else if (roll < 0.4) delete copy[r.pick(keys)];
    else {
      const k = r.pick(keys);
      copy[k] = mutate(copy[k], r, depth + 1);
    }
    return copy;
  }
  return r.pick(ODD_VALUES);
}

/** The body as sent: JSON of a mutation, or its text broken (cut, a byte flipped, deeply nested). */
function bodyText(base: unknown, r: Rand): string {
  const text = JSON.stringify(mutate(base, r)) ?? 'null';
  const roll = r.next();
  if (roll < 0.08) return text.slice(0, r.int(text.length));
  if (roll < 0.14) {
    const i = r.int(Math.max(1, text.length));
    return text.slice(0, i) + String.fromCharCode(r.int(256)) + text.slice(i + 1);
  }
  if (roll < 0.17) return '['.repeat(5000 + r.int(20_000)) + ']'.repeat(5000);
  if (roll < 0.19) return '';
  return text;
}

/** A query value as sent; a lone surrogate goes as the invalid UTF-8 a client could send. */
const queryValue = (v: string) => {
  try {
    return encodeURIComponent(v);
  } catch {
    return '%ED%A0%80';
  }
};

interface Route {
  method: 'GET' | 'HEAD' | 'POST';
  /** The route as the app registers it, in OpenAPI's spelling (`/api/runs/{id}`). */
  route: string;
  path: (r: Rand) => string;
  token: string | undefined;
  base?: unknown;
  /** The body and its headers, made by the route's own client (Slack signs its form) instead of JSON with a bearer token. */
  build?: (r: Rand) => { body: string; headers: Record<string, string> };
}

/** The Slack user SLACK_APPROVERS maps to an approver, and one it does not list. */
const SLACK_APPROVER = 'U0FUZZ001';
const SLACK_STRANGER = 'U0NOBODY1';

/** A Slack interaction as sent: the payload mutated (or broken), form-encoded, signed, dated, typed; each part sometimes wrong. */
function slackRequest(bases: readonly unknown[], r: Rand): { body: string; headers: Record<string, string> } {
  const payload = bodyText(r.pick(bases), r);
  let body: string;
  try {
    body = r.next() < 0.95 ? `payload=${encodeURIComponent(payload)}` : payload;
  } catch {
    body = 'payload=%ED%A0%80';
  }
  const now = Math.floor(Date.now() / 1000);
  const tsRoll = r.next();
  const timestamp = tsRoll < 0.9 ? String(now) : tsRoll < 0.95 ? String(now - 3600) : r.pick(['', 'abc', '-1', '9'.repeat(20)]);
  const sigRoll = r.next();
  const headers: Record<string, string> = {
    'content-type':
      r.next() < 0.9 ? 'application/x-www-form-urlencoded' : r.pick(['application/json', 'text/plain', 'multipart/form-data', '']),
    'x-slack-request-timestamp': timestamp,
  };
  if (sigRoll < 0.85) headers['x-slack-signature'] = slackSignature(SIGNING_SECRET, timestamp, body);
  else if (sigRoll < 0.9) headers['x-slack-signature'] = slackSignature('another-apps-signing-secret', timestamp, body);
  else if (sigRoll < 0.95) headers['x-slack-signature'] = r.pick(['v0=', 'v0=zz', 'v1=' + '0'.repeat(64), 'x'.repeat(5000)]);
  return { body, headers };
}

describe('fuzz', () => {
  const iso = isolation('fuzz');
  after(() => iso.drop());

  it('thousands of mutated requests: no 5xx, the process alive, nothing refused is stored', async () => {
    const firing = JSON.parse(readFileSync(new URL('../fixtures/alertmanager/firing-provider-down.json', import.meta.url), 'utf8'));
    const resolved = JSON.parse(readFileSync(new URL('../fixtures/alertmanager/resolved-provider-down.json', import.meta.url), 'utf8'));
    const server = await startServerProcess(
      serviceEnv(iso, writeMatrix(MATRIX), {
        LOG_LEVEL: 'warn',
        ALERTMANAGER_URL: 'http://127.0.0.1:1',
        // The Slack interactions route is registered only with these.
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_APPROVERS: `${SLACK_APPROVER}:fuzzer`,
      }),
    );
    const { child, url } = server;
    try {
      await server.ready();
      const seeded = await fetch(`${url}/webhooks/alertmanager`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${WEBHOOK_TOKEN}` },
        body: JSON.stringify(firing),
      });
      assert.equal(seeded.status, 200);
      const seededRuns = ((await seeded.json()) as { runs: Array<{ id: string; duplicate: boolean }> }).runs;
      const runId = seededRuns[0]!.id;

      const ids = [runId, '00000000-0000-0000-0000-000000000000', 'not-a-uuid', '%00', '..%2f..', 'x'.repeat(300)];
      const queries = ['status', 'rule', 'remediation', 'alertname', 'fingerprint', 'target', 'since', 'until', 'limit', 'cursor'];
      const oddQuery = (r: Rand) =>
        r.next() < 0.7 ? '' : `?${r.pick(['x', 'limit', '__proto__', ''])}=${queryValue(String(r.pick(ODD_VALUES)))}`;
      // The console's assets are named by their content's hash: read the names off its page.
      const page = await (await fetch(`${url}/ui`)).text();
      const assets = [...page.matchAll(/\/ui\/assets\/[A-Za-z0-9._-]+/g)].map((m) => m[0]);
      assert.ok(assets.length >= 2, `the console page names its script and style sheet: ${page.slice(0, 300)}`);
      const assetPaths = [
        ...assets,
        '/ui/assets/nope.js',
        '/ui/assets/..%2f..%2fpackage.json',
        '/ui/assets/%00',
        '/ui/assets/.env',
        '/ui/assets/',
      ];
      const docPaths = ['/docs', '/docs/', '/docs/json', '/docs/yaml', '/docs/static/index.html', '/docs/static/swagger-initializer.js'];
      const docOdd = ['/docs/static/..%2f..%2fpackage.json', '/docs/static/%00', '/docs/nope', '/docs/static/'];
      const slackBases = [
        blockActions({ userId: SLACK_APPROVER, action: 'approve', value: runId, responseUrl: 'http://127.0.0.1:1/slack-response' }),
        blockActions({ userId: SLACK_APPROVER, action: 'reject', value: runId, responseUrl: 'http://127.0.0.1:1/slack-response' }),
        blockActions({ userId: SLACK_STRANGER, action: 'approve', value: runId, responseUrl: 'http://127.0.0.1:1/slack-response' }),
        blockActions({ userId: SLACK_APPROVER, action: 'approve', value: '00000000-0000-0000-0000-000000000000', responseUrl: 'ftp://x' }),
        { type: 'view_submission', user: { id: SLACK_APPROVER } },
      ];
      const routes: Route[] = [
        { method: 'POST', route: '/webhooks/alertmanager', path: () => '/webhooks/alertmanager', token: WEBHOOK_TOKEN, base: firing },
        { method: 'POST', route: '/webhooks/alertmanager', path: () => '/webhooks/alertmanager', token: WEBHOOK_TOKEN, base: resolved },
        { method: 'POST', route: '/api/simulate', path: () => '/api/simulate', token: TOKENS.viewer, base: firing },
        {
          method: 'POST',
          route: '/api/runs/{id}/approve',
          path: (r) => `/api/runs/${r.pick(ids)}/approve`,
          token: TOKENS.approver,
          base: { comment: 'ok' },
        },
        {
          method: 'POST',
          route: '/api/runs/{id}/reject',
          path: (r) => `/api/runs/${r.pick(ids)}/reject`,
          token: TOKENS.approver,
          base: { reason: 'no' },
        },
        {
          method: 'POST',
          route: '/api/runs/{id}/revert',
          path: (r) => `/api/runs/${r.pick(ids)}/revert`,
          token: TOKENS.approver,
          base: {},
        },
        { method: 'GET', route: '/api/runs/{id}', path: (r) => `/api/runs/${r.pick(ids)}`, token: TOKENS.viewer },
        { method: 'HEAD', route: '/api/runs/{id}', path: (r) => `/api/runs/${r.pick(ids)}`, token: TOKENS.viewer },
        {
          method: 'GET',
          route: '/api/runs',
          path: (r) =>
            `/api/runs?${Array.from({ length: 1 + r.int(3) }, () => `${r.pick(queries)}=${queryValue(String(r.pick(ODD_VALUES)))}`).join('&')}`,
          token: TOKENS.viewer,
        },
        { method: 'HEAD', route: '/api/runs', path: (r) => `/api/runs${oddQuery(r)}`, token: TOKENS.viewer },
        {
          method: 'POST',
          route: '/api/control/pause',
          path: () => '/api/control/pause',
          token: TOKENS.admin,
          base: { reason: 'fuzz pause' },
        },
        // An approver may not pause, whatever the body.
        {
          method: 'POST',
          route: '/api/control/pause',
          path: () => '/api/control/pause',
          token: TOKENS.approver,
          base: { reason: 'not mine' },
        },
        { method: 'POST', route: '/api/control/resume', path: () => '/api/control/resume', token: TOKENS.admin, base: {} },
        { method: 'POST', route: '/api/control/resume', path: () => '/api/control/resume', token: TOKENS.viewer, base: {} },
        { method: 'GET', route: '/api/control', path: (r) => `/api/control${oddQuery(r)}`, token: TOKENS.viewer },
        {
          method: 'GET',
          route: '/api/whoami',
          path: (r) => `/api/whoami${oddQuery(r)}`,
          token: TOKENS.viewer,
        },
        { method: 'GET', route: '/api/whoami', path: () => '/api/whoami', token: TOKENS.admin },
        { method: 'HEAD', route: '/api/whoami', path: () => '/api/whoami', token: TOKENS.approver },
        { method: 'POST', route: '/-/reload', path: () => '/-/reload', token: TOKENS.admin, base: {} },
        {
          method: 'POST',
          route: '/integrations/slack/interactions',
          path: () => '/integrations/slack/interactions',
          token: undefined,
          base: {},
          build: (r) => slackRequest(slackBases, r),
        },
        {
          method: 'POST',
          route: '(no such route)',
          path: (r) => r.pick(['/nope', '/api', '/api/runs/x/y/z', '/webhooks', '/%ff', '//']),
          token: undefined,
          base: firing,
        },
        { method: 'GET', route: '/metrics', path: (r) => `/metrics${oddQuery(r)}`, token: undefined },
        { method: 'GET', route: '/health/live', path: (r) => `/health/live${oddQuery(r)}`, token: undefined },
        { method: 'HEAD', route: '/health/live', path: () => '/health/live', token: undefined },
        { method: 'GET', route: '/health/ready', path: (r) => `/health/ready${oddQuery(r)}`, token: undefined },
        { method: 'GET', route: '/ui', path: (r) => `/ui${oddQuery(r)}`, token: undefined },
        { method: 'GET', route: '/ui/', path: (r) => `/ui/${oddQuery(r)}`, token: undefined },
        { method: 'HEAD', route: '/ui', path: () => '/ui', token: undefined },
        { method: 'GET', route: '/ui/assets/*', path: (r) => r.pick(assetPaths), token: undefined },
        { method: 'HEAD', route: '/ui/assets/*', path: (r) => r.pick(assetPaths), token: undefined },
        { method: 'GET', route: '/docs', path: (r) => r.pick(docPaths) + oddQuery(r), token: undefined },
        { method: 'GET', route: '/docs/*', path: (r) => r.pick(docOdd), token: undefined },
        { method: 'HEAD', route: '/docs', path: (r) => r.pick(docPaths), token: undefined },
      ];

      // Every route of the OpenAPI document (every route not hidden from it) is fuzzed.
      const openapi = (await (await fetch(`${url}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
      const documented = Object.entries(openapi.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
      assert.ok(documented.length >= 15, `the OpenAPI document lists the routes: ${documented.join(', ')}`);
      const fuzzed = new Set(routes.map((x) => `${x.method} ${x.route}`));
      assert.deepEqual(
        documented.filter((d) => !fuzzed.has(d)),
        [],
        'every documented route is in the fuzz list',
      );

      /** Each request to the kill switch's POST routes: who asked, what it asked for, what it was answered. */
      const control: Array<{ type: 'paused' | 'resumed'; admin: boolean; status: number; reason: unknown }> = [];

      const r = prng(0x5eed);
      const deadline = Date.now() + 45_000;
      const counts = new Map<number, number>();
      const perRoute = new Map<string, Map<number, number>>();
      const serverErrors: string[] = [];
      let announced = 0;
      let sent = 0;
      const one = async () => {
        const route = r.pick(routes);
        const path = route.path(r);
        const headers: Record<string, string> = {};
        const tokenRoll = r.next();
        if (route.token && tokenRoll < 0.9) headers['authorization'] = `Bearer ${route.token}`;
        else if (tokenRoll < 0.95)
          headers['authorization'] = r.pick(['Bearer', 'Basic abc', `Bearer ${'x'.repeat(5000)}`, 'Bearer \u00ff']);
        let body: string | undefined;
        if (route.build) {
          const built = route.build(r);
          body = built.body;
          Object.assign(headers, built.headers);
        } else if (route.method === 'POST' && route.base !== undefined) {
          body = bodyText(route.base, r);
          headers['content-type'] =
            r.next() < 0.9
              ? 'application/json'
              : r.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', '']);
        }
        // Redirects are answers too: the server's, not followed.
        const res = await fetch(`${url}${path}`, {
          method: route.method,
          headers,
          redirect: 'manual',
          ...(body !== undefined ? { body } : {}),
        }).catch((err: Error) => ({ status: -1, text: async () => err.message, json: async () => ({}) }) as unknown as Response);
        sent += 1;
        counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
        const key = `${route.method} ${route.route}`;
        const byStatus = perRoute.get(key) ?? new Map<number, number>();
        byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
        perRoute.set(key, byStatus);
        const text = await res.text();
        if (res.status >= 500 || res.status === -1)
          serverErrors.push(`${route.method} ${path.slice(0, 80)} -> ${res.status} ${text.slice(0, 200)}`);
        if (path === '/api/control/pause' || path === '/api/control/resume') {
          let reason: unknown = null;
          try {
            reason = (JSON.parse(body ?? 'null') as { reason?: unknown } | null)?.reason ?? null;
          } catch {
            reason = undefined;
          }
          control.push({
            type: path.endsWith('pause') ? 'paused' : 'resumed',
            admin: headers['authorization'] === `Bearer ${TOKENS.admin}`,
            status: res.status,
            reason,
          });
        }
        if (res.status === 200 && path === '/webhooks/alertmanager') {
          const runs = (JSON.parse(text) as { runs: Array<{ duplicate: boolean }> }).runs;
          announced += runs.filter((x) => !x.duplicate).length;
        }
      };
      const lanes = Array.from({ length: 6 }, async () => {
        while (Date.now() < deadline && sent < 3000) await one();
      });
      await Promise.all(lanes);
      console.log(
        `# ${sent} requests: ${[...counts]
          .sort((a, b) => a[0] - b[0])
          .map(([c, n]) => `${c}x${n}`)
          .join(' ')}`,
      );

      for (const [key, byStatus] of [...perRoute].sort()) {
        console.log(
          `#   ${key}: ${[...byStatus]
            .sort((a, b) => a[0] - b[0])
            .map(([c, n]) => `${c}x${n}`)
            .join(' ')}`,
        );
      }
      console.log(`# documented routes: ${documented.join(', ')}`);
      assert.equal(perRoute.size, fuzzed.size, 'every route of the list was sent requests');

      assert.ok(sent >= 1000, `at least a thousand requests within the time (${sent})`);
      assert.deepEqual(serverErrors.slice(0, 10), [], `no 5xx and no dropped connection (${serverErrors.length} in all)`);
      assert.equal(child.exitCode, null, 'the process is alive');
      assert.equal((await fetch(`${url}/health/live`)).status, 200);

      const db = new pg.Client({ connectionString: iso.databaseUrl });
      await db.connect();
      try {
        const { rows } = await db.query('SELECT count(*)::int AS n FROM runs');
        assert.equal(
          rows[0].n,
          seededRuns.filter((x) => !x.duplicate).length + announced,
          'the runs stored are the ones 200 answers announced',
        );
        // No run of this matrix needs approval: no request, over the API or from Slack, decided one.
        const decided = await db.query(
          "SELECT (SELECT count(*)::int FROM run_events WHERE type IN ('approved', 'rejected')) AS events, (SELECT count(*)::int FROM runs WHERE decided_by IS NOT NULL) AS runs",
        );
        assert.deepEqual(decided.rows[0], { events: 0, runs: 0 }, 'no run decided');

        // The kill switch moved only with the pauses and resumes answered 200, and those were the admin's.
        const answered = control.filter((c) => c.status === 200);
        assert.deepEqual(
          answered.filter((c) => !c.admin),
          [],
          'only the admin token pauses or resumes',
        );
        assert.ok(
          control.some((c) => c.type === 'paused' && c.status === 200) && control.some((c) => c.type === 'paused' && c.status !== 200),
          `the fuzz both paused and was refused a pause: ${JSON.stringify([...new Set(control.map((c) => `${c.type} ${c.status}`))])}`,
        );
        const events = await db.query<{ actor: string; type: string; reason: unknown }>(
          "SELECT actor, type, detail->'reason' AS reason FROM control_events ORDER BY id",
        );
        assert.ok(
          events.rows.every((e) => e.actor === 'root'),
          "every change of the kill switch is the admin's",
        );
        const tally = (xs: Array<{ type: string; reason: unknown }>) =>
          xs.map((x) => `${x.type} ${x.type === 'paused' ? JSON.stringify(x.reason ?? null) : ''}`).sort();
        assert.deepEqual(tally(events.rows), tally(answered), 'one kill-switch change per pause or resume answered 200, with its reason');
        const state = await db.query<{ paused: boolean }>('SELECT paused FROM control');
        assert.equal(state.rows[0]!.paused, events.rows.at(-1)?.type === 'paused', 'the kill switch is where its last change put it');
      } finally {
        await db.end();
      }
    } finally {
      await server.stop();
    }
    const errorLines = server
      .output()
      .split('\n')
      .filter((l) => /"level":(50|60)/.test(l));
    assert.deepEqual(errorLines.slice(0, 5), [], 'no error or fatal line');
  });
});
