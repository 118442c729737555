/**
 * One clock: approval expiry and worker leases are set and compared with PostgreSQL's `now()`, so a
 * replica whose wall clock is 11 minutes behind or ahead neither expires an approval early or late
 * nor takes a dead worker's run over late.
 *
 * The service runs in child processes preloaded with `test/support/skewed-clock.cjs`, which shifts
 * the process's `Date` by CLOCK_SKEW_MS. `SHOW_TIMINGS=1` prints how long each takeover took.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startConduitAdmin, type ConduitAdmin } from '../support/conduit-admin.js';
import {
  alertMessage,
  API_TOKENS,
  eventually,
  isolation,
  REDIS_URL,
  removeMatrix,
  startService,
  TOKENS,
  WEBHOOK_TOKEN,
  writeMatrix,
} from '../support/harness.js';
import { freePort } from '../support/redis-server.js';
import { executionsKey } from '../support/test-remediations.js';
import { spawnWorker } from '../support/worker-child.js';

const SKEWED_CLOCK = fileURLToPath(new URL('../support/skewed-clock.cjs', import.meta.url));
const MINUTE = 60_000;
const SKEWS = [-11 * MINUTE, 11 * MINUTE];
const label = (skewMs: number) => `${skewMs < 0 ? '' : '+'}${skewMs / MINUTE} min`;

/** The environment that makes a Node child start with its clock shifted by `skewMs`. */
const skewedEnv = (skewMs: number) => ({
  NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --require ${SKEWED_CLOCK}`.trim(),
  CLOCK_SKEW_MS: String(skewMs),
});

/** What `Date.now()` minus the real time is in a child started with `skewedEnv(skewMs)`. */
function childSkew(skewMs: number): number {
  const before = Date.now();
  const out = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], {
    env: { ...process.env, ...skewedEnv(skewMs) },
  });
  return Number(String(out)) - (before + Date.now()) / 2;
}

interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  stop(): Promise<void>;
}

/** `src/server.ts` in a child process with its clock shifted by `skewMs`. */
async function startSkewedServer(skewMs: number, env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env, ...skewedEnv(skewMs) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}: ${out.slice(-2000)}`);
        return (await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) })).status === 200;
      },
      30_000,
      `the skewed server (${label(skewMs)}) to be ready`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, output: () => out, stop };
}

/** The `time` of the server's "started" log line minus the real time it was read at: the server's skew, give or take the delay. */
function loggedSkew(output: string, readAt: number): number | undefined {
  for (const line of output.split('\n')) {
    if (!line.includes('conduit-remediator started')) continue;
    try {
      return (JSON.parse(line) as { time: number }).time - readAt;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function call(base: string, method: 'GET' | 'POST', path: string, token: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
}

interface Event {
  at: string;
  type: string;
  detail: Record<string, unknown>;
}

const APPROVAL_MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: gated
    matchers: ['alertname="Gated"']
    actions:
      - id: long
        remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
        approval: required
        approvalTimeout: 10m
      - id: short
        remediation: conduit.test-provider
        params: { provider: '{{ labels.provider }}' }
        approval: required
        approvalTimeout: 3s
`;

const SLOW_MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: slow
    matchers: ['alertname="Slow"']
    actions:
      - remediation: test.slow
        params: { key: '{{ labels.key }}', firstMs: 60000 }
`;

const takeovers: string[] = [];

/** Where the run's BullMQ job is (and, when delayed, until when by the real clock), for failure messages. */
async function jobState(redis: Redis, prefix: string, id: string): Promise<string> {
  const base = `${prefix}:runs`;
  const [exists, wait, active, delayed] = await Promise.all([
    redis.exists(`${base}:${id}`),
    redis.lpos(`${base}:wait`, id),
    redis.lpos(`${base}:active`, id),
    redis.zscore(`${base}:delayed`, id),
  ]);
  if (!exists) return 'no job';
  if (wait !== null) return 'job waiting';
  if (active !== null) return 'job active';
  if (delayed !== null) {
    const until = Math.floor(Number(delayed) / 0x1000);
    return `job delayed until ${new Date(until).toISOString()} (${Math.round((until - Date.now()) / 1000)} s from now by the real clock)`;
  }
  return 'job in no list';
}

describe('one clock: expiry and leases follow PostgreSQL, whatever the replica clock says', { timeout: 300_000 }, () => {
  // Approvals and takeovers each have their own database and prefix: a worker's stalled check holds
  // a queue-wide key for its STALLED_INTERVAL, which must not delay another test's takeover.
  const iso = isolation('clock_approval');
  const leases = isolation('clock_lease');
  let db: pg.Pool;
  let conduit: ConduitAdmin;

  before(async () => {
    conduit = await startConduitAdmin();
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
  });
  after(async () => {
    if (process.env['SHOW_TIMINGS']) for (const t of takeovers) process.stdout.write(`# timing ${t}\n`);
    await db.end();
    await conduit.close();
    await iso.drop();
    await leases.drop();
  });

  it('the preload shifts a child process clock', () => {
    for (const skew of SKEWS) {
      const measured = childSkew(skew);
      assert.ok(Math.abs(measured - skew) < 2000, `a child with CLOCK_SKEW_MS=${skew} reads ${Math.round(measured)} ms off`);
    }
  });

  for (const [i, skew] of SKEWS.entries()) {
    const provider = ['openai', 'anthropic'][i]!;

    it(`a replica ${label(skew)} off: expiresAt is PostgreSQL's now + approvalTimeout, a 10m approval stays pending through many sweeps, a 3s one expires on time`, async () => {
      const matrixPath = writeMatrix(APPROVAL_MATRIX);
      const server = await startSkewedServer(skew, {
        DATABASE_URL: iso.databaseUrl,
        REDIS_URL,
        QUEUE_PREFIX: iso.prefix,
        MATRIX_PATH: matrixPath,
        WEBHOOK_TOKEN,
        API_TOKENS,
        CONDUIT_ADMIN_URL: conduit.url,
        CONDUIT_ADMIN_KEY: conduit.apiKey,
        SWEEP_INTERVAL: '200ms',
      });
      try {
        // Its start line follows the listening one: wait for it rather than read the output at once.
        const seen = await eventually(
          async () => {
            const skew = loggedSkew(server.output(), Date.now());
            return skew === undefined ? undefined : { skew };
          },
          10_000,
          'the server to log its start',
        ).catch(() => undefined);
        const logged = seen?.skew;
        assert.ok(logged !== undefined, `the server logged its start: ${server.output().slice(-1000)}`);
        assert.ok(logged - skew < 5000 && logged - skew > -30_000, `the server's clock is ${label(skew)} off (logged ${logged} ms)`);

        const delivered = await call(server.url, 'POST', '/webhooks/alertmanager', WEBHOOK_TOKEN, {
          ...alertMessage([{ labels: { alertname: 'Gated', provider } }]),
        });
        const { rows: nowRows } = await db.query<{ now: Date }>('SELECT now() AS now');
        const pgNow = nowRows[0]!.now.getTime();
        const deliveredAt = performance.now();
        assert.equal(delivered.status, 200, JSON.stringify(delivered.body));
        const runs = delivered.body['runs'] as Array<{ id: string; remediation: string; status: string }>;
        const long = runs.find((r) => r.remediation === 'conduit.disable-provider')!;
        const short = runs.find((r) => r.remediation === 'conduit.test-provider')!;
        assert.equal(long.status, 'pending_approval');
        assert.equal(short.status, 'pending_approval');

        const read = await call(server.url, 'GET', `/api/runs/${long.id}`, TOKENS.viewer);
        const expiresAt = Date.parse(read.body['approval'].expiresAt);
        assert.ok(
          Math.abs(expiresAt - (pgNow + 10 * MINUTE)) < 3000,
          `expiresAt ${read.body['approval'].expiresAt} is PostgreSQL's now (${new Date(pgNow).toISOString()}) + 10m`,
        );
        const { rows: stored } = await db.query<{ ms: number }>(
          `SELECT EXTRACT(EPOCH FROM (expires_at - created_at)) * 1000 AS ms FROM runs WHERE id = $1`,
          [long.id],
        );
        assert.ok(Math.abs(Number(stored[0]!.ms) - 10 * MINUTE) < 1000, `expires_at - created_at is 10m, got ${stored[0]!.ms} ms`);
        const pending = (read.body['events'] as Event[]).find((e) => e.type === 'pending_approval');
        assert.equal(pending?.detail['expiresAt'], read.body['approval'].expiresAt, 'the timeline shows the expiry that holds');

        // The 3s approval expires on time: the sweeper runs and compares with PostgreSQL's clock.
        await eventually(
          async () => (await call(server.url, 'GET', `/api/runs/${short.id}`, TOKENS.viewer)).body['status'] === 'expired',
          3000 + 3000,
          'the 3s approval to expire within 3s + 3s',
        );
        const expiredAfter = performance.now() - deliveredAt;
        // Many more sweeps (every 200 ms) go by; the 10m approval is still pending.
        await new Promise((r) => setTimeout(r, 3000));
        const still = await call(server.url, 'GET', `/api/runs/${long.id}`, TOKENS.viewer);
        assert.equal(
          still.body['status'],
          'pending_approval',
          `the 10m approval is still pending: ${JSON.stringify(still.body['events'])}`,
        );
        takeovers.push(`approval, clock ${label(skew)}: the 3s approval expired ${Math.round(expiredAfter)} ms after delivery`);

        const late = await call(server.url, 'POST', `/api/runs/${short.id}/approve`, TOKENS.approver, {});
        assert.equal(late.status, 409, 'an expired approval cannot be approved');
        const approved = await call(server.url, 'POST', `/api/runs/${long.id}/approve`, TOKENS.approver, { comment: 'go' });
        assert.equal(approved.status, 200, JSON.stringify(approved.body));
        await eventually(
          async () => (await call(server.url, 'GET', `/api/runs/${long.id}`, TOKENS.viewer)).body['status'] === 'succeeded',
          15_000,
          'the approved run to succeed',
        );
        assert.equal(conduit.providers.find((p) => p.providerName === provider)!.isEnabled, false);
      } finally {
        await server.stop();
        removeMatrix(matrixPath);
      }
    });

    it(`a worker ${label(skew)} off takes over a killed worker's run on time, with taken_over in the timeline`, async () => {
      // Lease: REMEDIATION_TIMEOUT (8s) + 2s. The first attempt must still be running when its worker is killed,
      // after the second worker has started (seconds on a loaded machine). The in-process API only creates runs:
      // its sweeper stays out of the way.
      const leaseMs = 8000 + 2000;
      const stalledMs = 1000;
      const marginMs = 3000;
      const workerEnv = {
        TARGET_REDIS_URL: REDIS_URL,
        STALLED_INTERVAL: `${stalledMs}ms`,
        REMEDIATION_TIMEOUT: '8s',
        SWEEP_INTERVAL: '200ms',
        REQUEUE_AFTER: '30s',
        ...skewedEnv(skew),
      };
      const api = await startService({
        databaseUrl: leases.databaseUrl,
        prefix: leases.prefix,
        matrix: SLOW_MATRIX,
        env: { ROLE: 'api', TARGET_REDIS_URL: REDIS_URL, SWEEP_INTERVAL: '1h' },
      });
      const matrixPath = writeMatrix(SLOW_MATRIX);
      const redis = new Redis(REDIS_URL);
      const children: ChildProcess[] = [];
      try {
        children.push(await spawnWorker({ databaseUrl: leases.databaseUrl, prefix: leases.prefix, matrixPath, env: workerEnv }));
        const first = children[0]!;
        const delivered = await call(api.url, 'POST', '/webhooks/alertmanager', WEBHOOK_TOKEN, {
          ...alertMessage([{ labels: { alertname: 'Slow', key: `skew${i}` } }]),
        });
        assert.equal(delivered.status, 200, JSON.stringify(delivered.body));
        const id = (delivered.body['runs'] as Array<{ id: string }>)[0]!.id;
        const key = executionsKey(leases.prefix, 'slow', id);
        await eventually(async () => (await redis.get(key)) === '1', 10_000, 'the first execution to start');
        const firstStarted = performance.now();

        // The worker that takes over is up before the first one dies, so its start-up is not counted.
        children.push(await spawnWorker({ databaseUrl: leases.databaseUrl, prefix: leases.prefix, matrixPath, env: workerEnv }));
        assert.equal((await call(api.url, 'GET', `/api/runs/${id}`, TOKENS.viewer)).body['status'], 'running');
        first.kill('SIGKILL');
        await once(first, 'exit');

        const boundMs = leaseMs + stalledMs + marginMs;
        await eventually(
          async () => (await redis.get(key)) === '2',
          Math.max(1000, boundMs - (performance.now() - firstStarted)),
          `the run to be executed again within lease ${leaseMs} + stalled interval ${stalledMs} + ${marginMs} ms of its first start`,
        ).catch(async (err: Error) => {
          const run = await call(api.url, 'GET', `/api/runs/${id}`, TOKENS.viewer);
          throw new Error(
            `${err.message}; status ${run.body['status']}, events ${JSON.stringify((run.body['events'] as Event[]).map((e) => e.type))}, ` +
              (await jobState(redis, leases.prefix, id)),
          );
        });
        const takenOverAfter = performance.now() - firstStarted;
        const run = await eventually(
          async () => {
            const r = await call(api.url, 'GET', `/api/runs/${id}`, TOKENS.viewer);
            return r.body['status'] === 'succeeded' ? r.body : undefined;
          },
          10_000,
          'the taken-over run to succeed',
        );
        const events = run['events'] as Event[];
        const types = events.map((e) => e.type);
        const starts = events.flatMap((e, n) => (e.type === 'started' ? [n] : []));
        assert.equal(starts.length, 2, `two starts: ${JSON.stringify(types)}`);
        const takenOver = events.findIndex((e) => e.type === 'taken_over');
        assert.ok(takenOver > starts[0]! && takenOver < starts[1]!, `taken_over comes between the two starts: ${JSON.stringify(types)}`);
        assert.equal(
          events[takenOver]!.detail['previousAttempt'],
          1,
          `taken_over names the previous attempt: ${JSON.stringify(events[takenOver])}`,
        );
        const gapMs = Date.parse(events[starts[1]!]!.at) - Date.parse(events[starts[0]!]!.at);
        assert.ok(gapMs >= leaseMs - 500, `not taken over before the lease ran out (${gapMs} ms after the first start)`);
        assert.ok(gapMs <= boundMs, `taken over ${gapMs} ms after the first start, more than ${boundMs} ms`);
        assert.equal(await redis.get(key), '2', 'executed twice: once by the dead worker, once after the takeover');
        takeovers.push(
          `takeover, clock ${label(skew)}: executed again ${Math.round(takenOverAfter)} ms after the first start; the timeline's starts ${gapMs} ms apart (lease ${leaseMs} ms)`,
        );
      } finally {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
        redis.disconnect();
        await api.close();
        removeMatrix(matrixPath);
      }
    });
  }
});
