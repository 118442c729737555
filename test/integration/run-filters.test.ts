import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { validationMessage } from '../../src/errors.js';
import { RUN_STATUSES } from '../../src/schemas/runs.js';
import { deliver, type DeliveredRun } from '../support/api.js';
import {
  alertMessage,
  eventually,
  fingerprintOf,
  isolation,
  REDIS_URL,
  startService,
  TOKENS,
  type TestService,
} from '../support/harness.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: filters
    matchers: ['suite="filters"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

const EARLY_START = '2026-11-27T13:31:39.202045328Z';
const LATE_START = '2026-11-27T14:00:00Z';

interface Listed {
  id: string;
  status: string;
  target: string | null;
  createdAt: string;
  alert: { fingerprint: string; labels: Record<string, string> };
}

describe('GET /api/runs filters by alert, fingerprint, target and creation time', () => {
  const iso = isolation('filters');
  let svc: TestService;
  /** Run ids by the alert's name in this file: A = DiskFull, B = HighLatency; A6 is A1's alert firing again. */
  const ids: Record<string, string> = {};
  let lateFrom = '';

  const labels = (alertname: string, key: string, n: string) => ({ suite: 'filters', alertname, key, n });
  const A1 = labels('DiskFull', 'db1', '1');

  const list = async (query: Record<string, string>, expect = 200) => {
    const res = await request(svc.url).get('/api/runs').query(query).set('Authorization', `Bearer ${TOKENS.viewer}`);
    assert.equal(res.status, expect, JSON.stringify(res.body));
    return res.body as { runs: Listed[]; nextCursor: string | null };
  };
  /** Every page of a listing, following nextCursor. */
  const all = async (query: Record<string, string>) => {
    const runs: Listed[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await list(cursor ? { ...query, cursor } : query);
      runs.push(...page.runs);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    return { runs, pages };
  };
  const named = (runs: Listed[]) => {
    const byId = new Map(Object.entries(ids).map(([name, id]) => [id, name]));
    return runs.map((r) => byId.get(r.id) ?? r.id);
  };
  /** The names in `names`, newest run first (as listed). */
  const newestFirst = (...names: string[]) => [...names].sort((x, y) => order.get(ids[y]!)! - order.get(ids[x]!)!);
  const order = new Map<string, number>();
  const record = (names: string[], runs: DeliveredRun[]) => {
    assert.equal(runs.length, names.length);
    runs.forEach((r, i) => (ids[names[i]!] = r.id));
  };

  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { TARGET_REDIS_URL: REDIS_URL } });
    // One delivery per alert, so the creation order (and seq) is the order below.
    const early: Array<[string, Record<string, string>]> = [
      ['A1', A1],
      ['A2', labels('DiskFull', 'db2', '2')],
      ['B1', labels('HighLatency', 'db1', '1')],
      ['B2', labels('HighLatency', 'cache', '2')],
    ];
    for (const [name, l] of early) record([name], await deliver(svc, alertMessage([{ labels: l, startsAt: EARLY_START }])));
    await new Promise((r) => setTimeout(r, 2000));
    const late: Array<[string, Record<string, string>]> = [
      ['A3', labels('DiskFull', 'db1', '3')],
      ['A4', labels('DiskFull', 'db1', '4')],
      ['A5', labels('DiskFull', 'cache', '5')],
      ['B3', labels('HighLatency', 'cache', '3')],
      ['A6', A1],
    ];
    for (const [name, l] of late) record([name], await deliver(svc, alertMessage([{ labels: l, startsAt: LATE_START }])));
    Object.values(ids).forEach((id, i) => order.set(id, i));
  });
  after(async () => {
    await svc?.close();
    await iso.drop();
  });

  it('filters by a duration back from now, by PostgreSQL clock (run right after the late alerts)', async () => {
    const late = await list({ since: '1s' });
    assert.deepEqual(named(late.runs), ['A6', 'B3', 'A5', 'A4', 'A3']);
    const early = await list({ until: '1s' });
    assert.deepEqual(named(early.runs), ['B2', 'B1', 'A2', 'A1']);
    assert.equal((await list({ since: '1h' })).runs.length, 9);
    assert.equal((await list({ since: '0s' })).runs.length, 0);
    assert.equal((await list({ until: '1d' })).runs.length, 0);
    assert.deepEqual(named((await list({ since: '1h', until: '1s', alertname: 'DiskFull' })).runs), ['A2', 'A1']);
    lateFrom = late.runs.at(-1)!.createdAt;
  });

  it('filters by alertname alone', async () => {
    assert.deepEqual(named((await list({ alertname: 'DiskFull' })).runs), newestFirst('A1', 'A2', 'A3', 'A4', 'A5', 'A6'));
    assert.deepEqual(named((await list({ alertname: 'HighLatency' })).runs), newestFirst('B1', 'B2', 'B3'));
    assert.deepEqual((await list({ alertname: 'NoSuchAlert' })).runs, []);
    for (const r of (await list({ alertname: 'HighLatency' })).runs) assert.equal(r.alert.labels['alertname'], 'HighLatency');
  });

  it('filters by fingerprint alone: every episode of one alert', async () => {
    const fp = fingerprintOf(A1);
    const runs = (await list({ fingerprint: fp })).runs;
    assert.deepEqual(named(runs), ['A6', 'A1']);
    for (const r of runs) assert.equal(r.alert.fingerprint, fp);
  });

  it('filters by target alone', async () => {
    const runs = (await list({ target: 'test/db1' })).runs;
    assert.deepEqual(named(runs), newestFirst('A1', 'B1', 'A3', 'A4', 'A6'));
    for (const r of runs) assert.equal(r.target, 'test/db1');
    assert.deepEqual(named((await list({ target: 'test/db2' })).runs), ['A2']);
  });

  it('combines filters with AND, with the existing ones too', async () => {
    assert.deepEqual(named((await list({ alertname: 'DiskFull', target: 'test/db1' })).runs), newestFirst('A1', 'A3', 'A4', 'A6'));
    assert.deepEqual(named((await list({ alertname: 'HighLatency', target: 'test/db2' })).runs), []);
    assert.deepEqual(
      named((await list({ alertname: 'DiskFull', fingerprint: fingerprintOf(A1), target: 'test/db1', rule: 'filters' })).runs),
      ['A6', 'A1'],
    );
    assert.deepEqual((await list({ alertname: 'DiskFull', rule: 'other' })).runs, []);
    await eventually(async () => (await list({ status: 'succeeded' })).runs.length === 9, 15_000, 'every run succeeded');
    assert.deepEqual(
      named((await list({ status: 'succeeded', alertname: 'HighLatency', remediation: 'test.count' })).runs),
      newestFirst('B1', 'B2', 'B3'),
    );
    assert.deepEqual((await list({ status: 'queued', alertname: 'HighLatency' })).runs, []);
  });

  it('pages a filtered listing newest first, across pages, without gaps or repeats', async () => {
    const want = newestFirst('A1', 'A2', 'A3', 'A4', 'A5', 'A6');
    for (const limit of ['1', '2', '4', '6']) {
      const { runs, pages } = await all({ alertname: 'DiskFull', limit });
      assert.deepEqual(named(runs), want, `limit ${limit}`);
      assert.equal(pages, Math.ceil(6 / Number(limit)), `limit ${limit}`);
    }
    const first = await list({ target: 'test/db1', alertname: 'DiskFull', limit: '3' });
    assert.deepEqual(named(first.runs), ['A6', 'A4', 'A3']);
    assert.ok(first.nextCursor);
    const second = await list({ target: 'test/db1', alertname: 'DiskFull', limit: '3', cursor: first.nextCursor });
    assert.deepEqual(named(second.runs), ['A1']);
    assert.equal(second.nextCursor, null);
    const windowed = await all({ since: '1h', until: lateFrom, limit: '3' });
    assert.deepEqual(named(windowed.runs), ['B2', 'B1', 'A2', 'A1']);
  });

  it('filters by RFC 3339 times, in UTC or with an offset', async () => {
    assert.ok(lateFrom, 'the duration test ran first');
    assert.deepEqual(named((await list({ since: lateFrom })).runs), ['A6', 'B3', 'A5', 'A4', 'A3']);
    assert.deepEqual(named((await list({ until: lateFrom })).runs), ['B2', 'B1', 'A2', 'A1']);
    // The same instant, two hours ahead.
    const t = new Date(Date.parse(lateFrom) + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    assert.deepEqual(named((await list({ since: t, alertname: 'DiskFull' })).runs), ['A6', 'A5', 'A4', 'A3']);
    assert.deepEqual(named((await list({ since: '2000-01-01T00:00:00Z', until: '2000-01-02 00:00:00z' })).runs), []);
    assert.equal((await list({ since: '2000-01-01T00:00:00.123456789Z' })).runs.length, 9);
    // The widest offsets PostgreSQL takes, and a year below 100 (not read as 19xx).
    assert.equal((await list({ since: '2000-01-01T00:00:00+15:59' })).runs.length, 9);
    assert.equal((await list({ until: '2000-01-01T00:00:00-15:59' })).runs.length, 0);
    assert.equal((await list({ since: '0001-01-01T00:00:00Z' })).runs.length, 9);
  });

  it('answers 400 VALIDATION naming the parameter, with the allowed values of an enum in one message', async () => {
    const status = await list({ status: 'bogus' }, 400);
    assert.equal((status as unknown as { code: string }).code, 'VALIDATION');
    assert.equal((status as unknown as { message: string }).message, `querystring/status must be one of: ${RUN_STATUSES.join(', ')}`);
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ since: 'yesterday' }, /^querystring\/since must be an RFC 3339 time .* or a duration/],
      [{ until: 'yesterday' }, /^querystring\/until must be an RFC 3339 time/],
      [{ since: '1h5' }, /^querystring\/since /],
      [{ since: '2026-02-30T00:00:00Z' }, /^querystring\/since /],
      [{ until: '2026-01-01T24:00:00Z' }, /^querystring\/until /],
      [{ until: '2026-01-01T10:00:00' }, /^querystring\/until /],
      // A valid RFC 3339 offset PostgreSQL cannot take: refused here, not answered 503.
      [{ until: '2026-01-01T00:00:00+16:00' }, /^querystring\/until must be an RFC 3339 time .*at most 15:59/],
      [{ since: '2026-01-01T00:00:00-23:59' }, /^querystring\/since /],
      [{ since: '0099-02-29T00:00:00Z' }, /^querystring\/since /],
      [{ since: '99999999y' }, /^querystring\/since must be a duration of at most/],
      [{ since: 'x'.repeat(65) }, /^querystring\/since must NOT have more than 64 characters$/],
      [{ alertname: '' }, /^querystring\/alertname must NOT have fewer than 1 characters$/],
      [{ limit: '0' }, /^querystring\/limit must be a whole number from 1 to 200 \(default 50\)$/],
      [{ limit: '201' }, /^querystring\/limit must be a whole number from 1 to 200 /],
      [{ limit: '500' }, /^querystring\/limit must be a whole number from 1 to 200 /],
      [{ limit: '050' }, /^querystring\/limit must be a whole number from 1 to 200 /],
      [{ limit: '1e2' }, /^querystring\/limit must be a whole number from 1 to 200 /],
      [{ limit: ['5', '6'] as unknown as string }, /^querystring\/limit must be a whole number from 1 to 200 /],
      [{ cursor: 'abc' }, /^querystring\/cursor must match pattern/],
      [{ cursor: '99999999999999999999' }, /^querystring\/cursor must match pattern/],
      [{ colour: 'red' }, /^querystring must NOT have additional properties \('colour'\)$/],
    ];
    for (const [query, message] of cases) {
      const res = await request(svc.url).get('/api/runs').query(query).set('Authorization', `Bearer ${TOKENS.viewer}`);
      assert.deepEqual([res.status, res.body.code], [400, 'VALIDATION'], JSON.stringify(query));
      assert.match(res.body.message, message, JSON.stringify(query));
    }
  });

  it('takes limit from 1 to 200: a page of 200 runs at most', async () => {
    assert.equal((await list({ limit: '200' })).runs.length, 9);
    assert.equal((await list({ limit: '1' })).runs.length, 1);
    assert.equal((await list({})).runs.length, 9, 'default 50');
  });

  it('lists each run with the summary of its alert: its labels, no annotations', async () => {
    const { runs } = await list({ fingerprint: fingerprintOf(A1) });
    for (const r of runs) {
      assert.deepEqual(r.alert.labels, A1);
      assert.equal((r.alert as { labelCount?: number }).labelCount, 4);
      assert.equal((r.alert as { annotations?: unknown }).annotations, undefined);
    }
    const full = await request(svc.url).get(`/api/runs/${ids['A1']}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.deepEqual(full.body.alert.labels, A1);
    assert.equal(typeof full.body.alert.annotations, 'object', 'the run read on its own has the whole alert');
  });

  it('formats schema violations: constants grouped per field, other messages each once', () => {
    const constant = (path: string, v: string) => ({
      instancePath: path,
      keyword: 'const',
      params: { allowedValue: v },
      message: 'must be equal to constant',
    });
    assert.equal(
      validationMessage(
        [
          constant('/status', 'a'),
          constant('/status', 'b'),
          { instancePath: '/status', keyword: 'anyOf', message: 'must match a schema in anyOf' },
        ],
        'querystring',
      ),
      'querystring/status must be one of: a, b',
    );
    assert.equal(
      validationMessage(
        [
          {
            instancePath: '/phase',
            keyword: 'enum',
            params: { allowedValues: ['x', 'y'] },
            message: 'must be equal to one of the allowed values',
          },
        ],
        'body',
      ),
      'body/phase must be one of: x, y',
    );
    assert.equal(
      validationMessage(
        [
          { instancePath: '/comment', keyword: 'type', message: 'must be string' },
          { instancePath: '/comment', keyword: 'type', message: 'must be string' },
          { instancePath: '', keyword: 'required', message: "must have required property 'alerts'" },
        ],
        'body',
      ),
      "body/comment must be string, body must have required property 'alerts'",
    );
    assert.equal(validationMessage([], 'body'), undefined);
    assert.equal(validationMessage(undefined, 'body'), undefined);
  });
});
