/**
 * Deadlines: while Redis or PostgreSQL stalls (a frozen process, a network path that holds bytes
 * without closing) or cannot be reached, the webhook answers 503 naming it within INTAKE_TIMEOUT,
 * every API route answers 503 naming PostgreSQL while it is down, and once new connections are
 * possible the service recovers without a restart and executes the re-delivered alert once.
 *
 * The faults are the test's own: a private redis-server that is SIGSTOPped, and a TCP proxy in front
 * of the shared PostgreSQL and Redis that stalls or refuses. `SHOW_TIMINGS=1` prints, per fault, the
 * time to the first 503 and the time to recovery.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  alertMessage,
  eventually,
  isolation,
  PG_ADMIN_URL,
  REDIS_URL,
  startService,
  TOKENS,
  WEBHOOK_TOKEN,
  type TestService,
} from '../support/harness.js';
import { startRedisServer } from '../support/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { executionsKey } from '../support/test-remediations.js';

const INTAKE_TIMEOUT_MS = 2000;
/** How late past INTAKE_TIMEOUT a 503 may come. */
const MARGIN_MS = 1500;
const DEADLINE_MS = INTAKE_TIMEOUT_MS + MARGIN_MS;
/** How long after new connections are possible a delivery must be accepted again. */
const RECOVERY_BOUND_MS = 20_000;

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: count
    matchers: ['alertname="Count"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
  - name: gated
    matchers: ['alertname="Gated"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        approvalTimeout: 10m
`;

const countAlert = (key: string) => alertMessage([{ labels: { alertname: 'Count', key } }]);
const gatedAlert = (key: string) => alertMessage([{ labels: { alertname: 'Gated', key } }]);

interface Answer {
  status: number;
  body: { code?: string; message?: string; checks?: Record<string, string>; runs?: Array<{ id: string; status: string }> } & Record<
    string,
    unknown
  >;
  ms: number;
  error?: string;
}

/** One HTTP call, given up after `timeoutMs` (status 0 then), timed from just before it is sent. */
async function call(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  opts: { token?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<Answer> {
  const started = performance.now();
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      signal: AbortSignal.timeout(opts.timeoutMs ?? DEADLINE_MS + 5000),
    });
    const text = await res.text();
    let body: Answer['body'] = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = { raw: text };
    }
    return { status: res.status, body, ms: performance.now() - started };
  } catch (err) {
    return { status: 0, body: {}, ms: performance.now() - started, error: (err as Error).message };
  }
}

const deliverOnce = (svc: TestService, message: object, timeoutMs?: number) =>
  call(svc.url, 'POST', '/webhooks/alertmanager', { token: WEBHOOK_TOKEN, body: message, ...(timeoutMs ? { timeoutMs } : {}) });

const describeAnswer = (a: Answer) => `${a.status} after ${Math.round(a.ms)} ms: ${a.error ?? JSON.stringify(a.body)}`;

/** Asserts a 503 UNAVAILABLE naming `dependency`, answered within `withinMs`. */
function assertUnavailable(a: Answer, dependency: 'Redis' | 'PostgreSQL', withinMs: number, what: string): void {
  assert.equal(a.status, 503, `${what}: expected 503, got ${describeAnswer(a)}`);
  assert.equal(a.body.code, 'UNAVAILABLE', `${what}: ${describeAnswer(a)}`);
  assert.match(String(a.body.message), new RegExp(dependency), `${what}: the message names ${dependency}`);
  assert.ok(a.ms <= withinMs, `${what}: answered after ${Math.round(a.ms)} ms, more than ${withinMs} ms`);
}

/** Re-delivers as Alertmanager retries, until a 200; resolves with it and the time since `since`. */
async function redeliverUntilAccepted(svc: TestService, message: object, since: number, boundMs = RECOVERY_BOUND_MS) {
  const deadline = since + boundMs;
  const answers: string[] = [];
  while (performance.now() < deadline) {
    const a = await deliverOnce(svc, message, Math.max(1000, Math.min(DEADLINE_MS + 2000, deadline - performance.now())));
    if (a.status === 200) return { answer: a, recoveryMs: performance.now() - since, attempts: answers.length + 1 };
    answers.push(describeAnswer(a));
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no delivery accepted within ${boundMs} ms of recovery; answers: ${answers.slice(-5).join(' | ')}`);
}

const timings: Array<{ fault: string; firstUnavailableMs: number; recoveryMs?: number; executedMs?: number; note?: string }> = [];
const showTimings = () => {
  if (!process.env['SHOW_TIMINGS']) return;
  for (const t of timings) {
    const recovery = t.recoveryMs === undefined ? '' : `, recovery ${Math.round(t.recoveryMs)} ms`;
    const executed = t.executedMs === undefined ? '' : `, its run succeeded ${Math.round(t.executedMs)} ms after the accepted re-delivery`;
    process.stdout.write(
      `# timing ${t.fault}: first 503 after ${Math.round(t.firstUnavailableMs)} ms${recovery}${executed}${t.note ? ` (${t.note})` : ''}\n`,
    );
  }
};

const portOf = (url: string, fallback: number) => Number(new URL(url).port || fallback);

describe('deadlines: stalled and unreachable dependencies answer 503 in time, and the service recovers', { timeout: 240_000 }, () => {
  const iso = isolation('deadlines');
  let db: pg.Pool;
  let target: Redis;

  before(() => {
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
    target = new Redis(REDIS_URL);
  });
  after(async () => {
    showTimings();
    await db.end();
    target.disconnect();
    await iso.drop();
  });

  const baseEnv = { TARGET_REDIS_URL: REDIS_URL, INTAKE_TIMEOUT: `${INTAKE_TIMEOUT_MS}ms` };
  const executions = (runId: string) => target.get(executionsKey(iso.prefix, 'count', runId)).then((n) => Number(n ?? 0));
  const runsOf = async (key: string) =>
    (await db.query<{ id: string; status: string }>(`SELECT id, status FROM runs WHERE alert->'labels'->>'key' = $1`, [key])).rows;
  const statusOf = async (svc: TestService, id: string) =>
    (await call(svc.url, 'GET', `/api/runs/${id}`, { token: TOKENS.viewer, timeoutMs: 5000 })).body['status'];

  /** The service's Redis clients on connections the proxy still stalls (name and last command, as Redis lists them). */
  async function stalledRedisClients(proxy: TcpProxy): Promise<string> {
    const ports = new Set(proxy.stalledUpstreamPorts());
    const list = String(await target.client('LIST'));
    const held = list
      .split('\n')
      .filter((line) => ports.has(Number(/ addr=[^ ]*:(\d+) /.exec(` ${line}`)?.[1])))
      .map((line) => `name=${/ name=(\S*)/.exec(line)?.[1] ?? ''} cmd=${/ cmd=(\S*)/.exec(line)?.[1] ?? ''}`);
    return held.length > 0 ? held.join(', ') : `${ports.size} (none listed by Redis)`;
  }

  /** Where the run's BullMQ job is, for failure messages. */
  async function jobState(queueRedisUrl: string, id: string): Promise<string> {
    const r = new Redis(queueRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      const base = `${iso.prefix}:runs`;
      const [exists, wait, active, delayed] = await Promise.all([
        r.exists(`${base}:${id}`),
        r.lpos(`${base}:wait`, id),
        r.lpos(`${base}:active`, id),
        r.zscore(`${base}:delayed`, id),
      ]);
      if (!exists) return 'no job';
      return wait !== null ? 'job waiting' : active !== null ? 'job active' : delayed !== null ? 'job delayed' : 'job in no list';
    } catch (err) {
      return `job state unknown (${(err as Error).message})`;
    } finally {
      r.disconnect();
    }
  }

  /** The run of `key` succeeded, was executed exactly once, and is the only run of its alert. */
  async function executedOnce(svc: TestService, key: string, id: string, queueRedisUrl = REDIS_URL): Promise<number> {
    const started = performance.now();
    let last: unknown;
    await eventually(async () => (last = await statusOf(svc, id)) === 'succeeded', 20_000, `run ${id} (${key}) to succeed`).catch(
      async (err: Error) => {
        const job = await jobState(queueRedisUrl, id);
        throw new Error(`${err.message}; its status: ${String(last)}, ${job}, executions: ${await executions(id)}`);
      },
    );
    const succeededAfter = performance.now() - started;
    // A late duplicate execution would show up here: give a stale job a moment.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await executions(id), 1, `run ${id} executed exactly once`);
    const rows = await runsOf(key);
    assert.equal(rows.length, 1, `one run for alert ${key}: ${JSON.stringify(rows)}`);
    return succeededAfter;
  }

  it('a SIGSTOPped Redis: 503 naming Redis within INTAKE_TIMEOUT, not ready; after SIGCONT the re-delivery is accepted and runs once', async () => {
    const redis = await startRedisServer();
    const probe = new Redis(redis.url);
    const info = await probe.info('server');
    probe.disconnect();
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    assert.ok(pid > 0, 'the private redis-server reports its pid');
    let stopped = false;
    const svc = await startService({
      databaseUrl: iso.databaseUrl,
      prefix: iso.prefix,
      matrix: MATRIX,
      env: { ...baseEnv, REDIS_URL: redis.url },
    });
    try {
      const warm = await deliverOnce(svc, countAlert('sigstop-warm'));
      assert.equal(warm.status, 200, describeAnswer(warm));

      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const message = countAlert('sigstop');
      const down = await deliverOnce(svc, message);
      assertUnavailable(down, 'Redis', DEADLINE_MS, 'delivery while Redis is stopped');
      const ready = await call(svc.url, 'GET', '/health/ready', { timeoutMs: DEADLINE_MS });
      assert.equal(ready.status, 503, `ready while Redis is stopped: ${describeAnswer(ready)}`);
      assert.equal(ready.body.checks?.['redis'], 'unreachable');
      assert.ok(
        (await runsOf('sigstop')).every((r) => r.status === 'queued'),
        'anything stored while Redis was stopped is still runnable',
      );

      process.kill(pid, 'SIGCONT');
      stopped = false;
      const resumed = performance.now();
      const { answer, recoveryMs } = await redeliverUntilAccepted(svc, message, resumed);
      const timing: (typeof timings)[number] = {
        fault: 'Redis SIGSTOP',
        firstUnavailableMs: down.ms,
        recoveryMs,
        note: 'recovery: SIGCONT to the first 200',
      };
      timings.push(timing);
      const id = answer.body.runs![0]!.id;
      timing.executedMs = await executedOnce(svc, 'sigstop', id, redis.url);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await svc.close();
      await redis.stop();
    }
  });

  it('Redis behind a path that stalls open connections: 503 in time; once new connections pass, it recovers without restart and runs once', async () => {
    const url = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: url.hostname, port: portOf(REDIS_URL, 6379) });
    let svc: TestService | undefined;
    try {
      svc = await startService({
        databaseUrl: iso.databaseUrl,
        prefix: iso.prefix,
        matrix: MATRIX,
        env: { ...baseEnv, REDIS_URL: proxy.via(REDIS_URL) },
      });
      const warm = await deliverOnce(svc, countAlert('redis-stall-warm'));
      assert.equal(warm.status, 200, describeAnswer(warm));
      await eventually(async () => (await statusOf(svc!, warm.body.runs![0]!.id)) === 'succeeded', 10_000, 'the warm-up run');

      proxy.stall();
      const message = countAlert('redis-stall');
      const down = await deliverOnce(svc, message);
      assertUnavailable(down, 'Redis', DEADLINE_MS, 'delivery while the path to Redis stalls');
      const ready = await call(svc.url, 'GET', '/health/ready', { timeoutMs: DEADLINE_MS });
      assert.equal(ready.status, 503, `ready while the path to Redis stalls: ${describeAnswer(ready)}`);

      proxy.admitNew();
      const admitted = performance.now();
      const { answer, recoveryMs } = await redeliverUntilAccepted(svc, message, admitted);
      const timing: (typeof timings)[number] = {
        fault: 'Redis path stalled',
        firstUnavailableMs: down.ms,
        recoveryMs,
        note: `recovery: new connections admitted to the first 200; ${proxy.connections().stalled} connections still stalled`,
      };
      timings.push(timing);
      const id = answer.body.runs![0]!.id;
      timing.executedMs = await executedOnce(svc, 'redis-stall', id).catch(async (err: Error) => {
        throw new Error(`${err.message}; connections still stalled: ${await stalledRedisClients(proxy)}`);
      });
    } finally {
      // Release what is held so closing the service does not wait on it.
      await proxy.resume();
      await svc?.close();
      await proxy.close();
    }
  });

  it('PostgreSQL behind a path that stalls open connections: 503 naming PostgreSQL in time; once new connections pass, it recovers without restart', async () => {
    const proxy = await startTcpProxy({ host: new URL(PG_ADMIN_URL).hostname, port: portOf(PG_ADMIN_URL, 5432) });
    let svc: TestService | undefined;
    try {
      svc = await startService({
        databaseUrl: proxy.via(iso.databaseUrl),
        prefix: iso.prefix,
        matrix: MATRIX,
        env: baseEnv,
      });
      const warm = await deliverOnce(svc, countAlert('pg-stall-warm'));
      assert.equal(warm.status, 200, describeAnswer(warm));
      await eventually(async () => (await statusOf(svc!, warm.body.runs![0]!.id)) === 'succeeded', 10_000, 'the warm-up run');

      proxy.stall();
      const message = countAlert('pg-stall');
      const down = await deliverOnce(svc, message);
      assertUnavailable(down, 'PostgreSQL', DEADLINE_MS, 'delivery while the path to PostgreSQL stalls');
      const list = await call(svc.url, 'GET', '/api/runs', { token: TOKENS.viewer });
      assertUnavailable(list, 'PostgreSQL', DEADLINE_MS, 'GET /api/runs while the path to PostgreSQL stalls');
      const ready = await call(svc.url, 'GET', '/health/ready', { timeoutMs: DEADLINE_MS });
      assert.equal(ready.status, 503, `ready while the path to PostgreSQL stalls: ${describeAnswer(ready)}`);
      assert.equal(ready.body.checks?.['postgres'], 'unreachable');

      proxy.admitNew();
      const admitted = performance.now();
      const { answer, recoveryMs } = await redeliverUntilAccepted(svc, message, admitted);
      const timing: (typeof timings)[number] = {
        fault: 'PostgreSQL path stalled',
        firstUnavailableMs: down.ms,
        recoveryMs,
        note: `recovery: new connections admitted to the first 200; ${proxy.connections().stalled} connections still stalled`,
      };
      timings.push(timing);
      const id = answer.body.runs![0]!.id;
      timing.executedMs = await executedOnce(svc, 'pg-stall', id);
    } finally {
      await proxy.resume();
      await svc?.close();
      await proxy.close();
    }
  });

  it('PostgreSQL refusing connections: the webhook and every API route answer 503 UNAVAILABLE naming PostgreSQL, never 500', async () => {
    const proxy = await startTcpProxy({ host: new URL(PG_ADMIN_URL).hostname, port: portOf(PG_ADMIN_URL, 5432) });
    let svc: TestService | undefined;
    try {
      svc = await startService({
        databaseUrl: proxy.via(iso.databaseUrl),
        prefix: iso.prefix,
        matrix: MATRIX,
        env: baseEnv,
      });
      const gated = await deliverOnce(svc, gatedAlert('pg-down'));
      assert.equal(gated.status, 200, describeAnswer(gated));
      const id = gated.body.runs![0]!.id;
      assert.equal(gated.body.runs![0]!.status, 'pending_approval');

      await proxy.refuse();
      const first = await call(svc.url, 'GET', '/api/runs', { token: TOKENS.viewer });
      assertUnavailable(first, 'PostgreSQL', DEADLINE_MS, 'GET /api/runs');
      const requests: Array<[string, 'GET' | 'POST', string, string, unknown]> = [
        ['GET /api/runs/:id', 'GET', `/api/runs/${id}`, TOKENS.viewer, undefined],
        ['POST /api/runs/:id/approve', 'POST', `/api/runs/${id}/approve`, TOKENS.approver, { comment: 'go' }],
        ['POST /api/runs/:id/reject', 'POST', `/api/runs/${id}/reject`, TOKENS.approver, { reason: 'no' }],
        ['GET /api/control', 'GET', '/api/control', TOKENS.viewer, undefined],
        ['POST /api/control/pause', 'POST', '/api/control/pause', TOKENS.admin, { reason: 'incident' }],
        ['POST /api/control/resume', 'POST', '/api/control/resume', TOKENS.admin, {}],
        ['POST /webhooks/alertmanager', 'POST', '/webhooks/alertmanager', WEBHOOK_TOKEN, countAlert('pg-down-delivery')],
      ];
      const failures: string[] = [];
      for (const [what, method, path, token, body] of requests) {
        const a = await call(svc.url, method, path, { token, ...(body !== undefined ? { body } : {}) });
        try {
          assertUnavailable(a, 'PostgreSQL', DEADLINE_MS, what);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
      const ready = await call(svc.url, 'GET', '/health/ready', { timeoutMs: DEADLINE_MS });
      if (ready.status !== 503 || ready.body.checks?.['postgres'] !== 'unreachable')
        failures.push(`GET /health/ready: ${describeAnswer(ready)}`);
      assert.deepEqual(failures, [], failures.join('\n'));

      await proxy.resume();
      const resumed = performance.now();
      await eventually(
        async () => (await call(svc!.url, 'GET', '/api/runs', { token: TOKENS.viewer })).status === 200,
        RECOVERY_BOUND_MS,
        'GET /api/runs to answer 200 again',
      );
      timings.push({
        fault: 'PostgreSQL refusing',
        firstUnavailableMs: first.ms,
        recoveryMs: performance.now() - resumed,
        note: 'recovery: connections accepted again to the first 200 of GET /api/runs',
      });
      // Nothing asked while PostgreSQL was down took effect: not paused, the run still pending, and approvable.
      const control = await call(svc.url, 'GET', '/api/control', { token: TOKENS.viewer });
      assert.equal(control.body['paused'], false);
      assert.equal(await statusOf(svc, id), 'pending_approval');
      const approved = await call(svc.url, 'POST', `/api/runs/${id}/approve`, { token: TOKENS.approver, body: {} });
      assert.equal(approved.status, 200, describeAnswer(approved));
      await executedOnce(svc, 'pg-down', id);
    } finally {
      await proxy.resume();
      await svc?.close();
      await proxy.close();
    }
  });
});
