/**
 * Mutated bodies, queries and headers on every route of a real server process, bounded in time: no
 * answer is a 5xx, the process stays alive and answers its health check, and nothing a refused
 * request carried is stored (the runs in PostgreSQL are exactly those the 200 answers announced).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { isolation, TOKENS, WEBHOOK_TOKEN, writeMatrix } from '../support/harness.js';
import { serviceEnv, startServerProcess } from '../support/server-process.js';

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
  method: 'GET' | 'POST';
  path: (r: Rand) => string;
  token: string | undefined;
  base?: unknown;
}

describe('fuzz', () => {
  const iso = isolation('fuzz');
  after(() => iso.drop());

  it('thousands of mutated requests: no 5xx, the process alive, nothing refused is stored', async () => {
    const firing = JSON.parse(readFileSync(new URL('../fixtures/alertmanager/firing-provider-down.json', import.meta.url), 'utf8'));
    const resolved = JSON.parse(readFileSync(new URL('../fixtures/alertmanager/resolved-provider-down.json', import.meta.url), 'utf8'));
    const server = await startServerProcess(
      serviceEnv(iso, writeMatrix(MATRIX), { LOG_LEVEL: 'warn', ALERTMANAGER_URL: 'http://127.0.0.1:1' }),
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
      const routes: Route[] = [
        { method: 'POST', path: () => '/webhooks/alertmanager', token: WEBHOOK_TOKEN, base: firing },
        { method: 'POST', path: () => '/webhooks/alertmanager', token: WEBHOOK_TOKEN, base: resolved },
        { method: 'POST', path: () => '/api/simulate', token: TOKENS.viewer, base: firing },
        { method: 'POST', path: (r) => `/api/runs/${r.pick(ids)}/approve`, token: TOKENS.approver, base: { comment: 'ok' } },
        { method: 'POST', path: (r) => `/api/runs/${r.pick(ids)}/reject`, token: TOKENS.approver, base: { reason: 'no' } },
        { method: 'POST', path: (r) => `/api/runs/${r.pick(ids)}/revert`, token: TOKENS.approver, base: {} },
        { method: 'GET', path: (r) => `/api/runs/${r.pick(ids)}`, token: TOKENS.viewer },
        {
          method: 'GET',
          path: (r) =>
            `/api/runs?${Array.from({ length: 1 + r.int(3) }, () => `${r.pick(queries)}=${queryValue(String(r.pick(ODD_VALUES)))}`).join('&')}`,
          token: TOKENS.viewer,
        },
        { method: 'POST', path: () => '/api/control/resume', token: TOKENS.admin, base: {} },
        { method: 'GET', path: () => '/api/control', token: TOKENS.viewer },
        { method: 'POST', path: () => '/-/reload', token: TOKENS.admin, base: {} },
        {
          method: 'POST',
          path: (r) => r.pick(['/nope', '/api', '/api/runs/x/y/z', '/webhooks', '/%ff', '//']),
          token: undefined,
          base: firing,
        },
        { method: 'GET', path: () => '/metrics', token: undefined },
      ];

      const r = prng(0x5eed);
      const deadline = Date.now() + 45_000;
      const counts = new Map<number, number>();
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
        if (route.method === 'POST' && route.base !== undefined) {
          body = bodyText(route.base, r);
          headers['content-type'] =
            r.next() < 0.9
              ? 'application/json'
              : r.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', '']);
        }
        const res = await fetch(`${url}${path}`, { method: route.method, headers, ...(body !== undefined ? { body } : {}) }).catch(
          (err: Error) => ({ status: -1, text: async () => err.message, json: async () => ({}) }) as unknown as Response,
        );
        sent += 1;
        counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
        const text = await res.text();
        if (res.status >= 500 || res.status === -1)
          serverErrors.push(`${route.method} ${path.slice(0, 80)} -> ${res.status} ${text.slice(0, 200)}`);
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
