import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, type SuiteContext, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import { createCatalogue, remediations } from '../../remediations/catalogue.js';
import type { Remediation } from '../../remediations/types.js';
import { buildApp } from '../../src/app.js';
import { testRemediations } from './test-remediations.js';
import { loadConfig } from '../../src/config.js';
import { createServices, type Services } from '../../src/services.js';

export const PG_ADMIN_URL = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const WEBHOOK_TOKEN = 'test-webhook-token-0123456789';
export const TOKENS = {
  viewer: 'viewer-token-0123456789abcdef',
  approver: 'approver-token-0123456789abcdef',
  alice: 'alice-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
};
export const API_TOKENS = `viewer:viewer:${TOKENS.viewer},bob:approver:${TOKENS.approver},alice:approver:${TOKENS.alice},root:admin:${TOKENS.admin}`;

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

/** A database and a Redis key prefix of this test file's own; `drop` removes both. */
export function isolation(label: string) {
  const database = uniqueName(`remediator_test_${label}`).toLowerCase();
  const prefix = uniqueName(`rt_${label}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${database}`;
  return {
    database,
    prefix,
    databaseUrl: url.toString(),
    async drop() {
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      // A pool's end() resolves before its sessions have closed on the server: give them a moment, so
      // that FORCE terminates only sessions left open, not ones already on their way out (a terminated
      // session reports an error to a client that may no longer listen for one).
      for (let i = 0; i < 40; i++) {
        const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [database]);
        if (rows[0].n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
      await admin.end();
      const redis = new Redis(REDIS_URL);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    },
  };
}

export interface TestService {
  url: string;
  services: Services;
  close(): Promise<void>;
}

const silent = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

/** The temporary directories `writeMatrix` made and nobody removed yet; whatever is left goes when the process exits. */
const matrixDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of matrixDirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes a matrix to a file in a temporary directory of its own and returns the file's path. */
export function writeMatrix(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'remediator-matrix-'));
  matrixDirs.add(dir);
  const path = join(dir, 'matrix.yaml');
  writeFileSync(path, yaml);
  return path;
}

/** Removes the directory `writeMatrix` made for `path`, with the file in it. */
export function removeMatrix(path: string): void {
  const dir = dirname(path);
  rmSync(dir, { recursive: true, force: true });
  matrixDirs.delete(dir);
}

export interface ServiceOptions {
  databaseUrl: string;
  prefix: string;
  matrix: string;
  env?: Record<string, string>;
  extraRemediations?: Remediation[];
}

/**
 * Starts the whole service (store, queue, worker, HTTP) on a random loopback port, against the real
 * Redis and PostgreSQL, with the environment a deployment would give it. Three ways to call it:
 *
 * - `await startService(opts)`: the caller closes it.
 * - `await startService(t, opts)` inside a test (`t` its `TestContext`): closed by `t.after`, once the
 *   test is done, whatever its outcome.
 * - `const svc = startService(s, opts)` in a `describe` body (`s` its `SuiteContext`; `opts` may be a
 *   function, read when the service starts): started by a `before` hook and closed by an `after` hook
 *   of that suite, both registered here, in the order of the suite's other hooks. It answers at once
 *   with a handle whose `url` and `services` are there from the suite's first test on. Node 20's
 *   `SuiteContext` has no `after`, and the `after()` of `node:test` called inside a `before` hook
 *   belongs to that hook (it runs as soon as the hook ends), so this form must be called in the
 *   `describe` body itself; the handle throws if used before it started or after it closed.
 *
 * `close()` may be called early; it runs once.
 */
export function startService(opts: ServiceOptions): Promise<TestService>;
export function startService(t: TestContext, opts: ServiceOptions): Promise<TestService>;
export function startService(suite: SuiteContext, opts: ServiceOptions | (() => ServiceOptions)): TestService;
export function startService(
  first: ServiceOptions | TestContext | SuiteContext,
  second?: ServiceOptions | (() => ServiceOptions),
): Promise<TestService> | TestService {
  if (!second) return launch(first as ServiceOptions);
  if (typeof (first as Partial<TestContext>).after === 'function') {
    const t = first as TestContext;
    return launch(typeof second === 'function' ? second() : second).then((svc) => {
      t.after(() => svc.close());
      return svc;
    });
  }
  return suiteService((first as SuiteContext).name, second);
}

function suiteService(suite: string, opts: ServiceOptions | (() => ServiceOptions)): TestService {
  let svc: TestService | undefined;
  let closed = false;
  before(async () => {
    svc = await launch(typeof opts === 'function' ? opts() : opts);
  });
  after(async () => {
    closed = true;
    await svc?.close();
  });
  const current = (): TestService => {
    if (svc && !closed) return svc;
    throw new Error(
      `the service of suite "${suite}" is ${closed ? 'closed' : 'not started yet'}: call startService(suite, opts) in the describe body, ` +
        'not in a hook, and use it from the tests',
    );
  };
  return {
    get url() {
      return current().url;
    },
    get services() {
      return current().services;
    },
    async close() {
      closed = true;
      await svc?.close();
    },
  };
}

async function launch(opts: ServiceOptions): Promise<TestService> {
  const matrixPath = writeMatrix(opts.matrix);
  try {
    const { config } = loadConfig({
      DATABASE_URL: opts.databaseUrl,
      REDIS_URL,
      QUEUE_PREFIX: opts.prefix,
      MATRIX_PATH: matrixPath,
      WEBHOOK_TOKEN,
      API_TOKENS,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      JOB_BACKOFF: '100ms',
      SWEEP_INTERVAL: '200ms',
      REQUEUE_AFTER: '1s',
      STALLED_INTERVAL: '5s',
      SHUTDOWN_TIMEOUT: '2s',
      REMEDIATION_TIMEOUT: '5s',
      ...opts.env,
    });
    const catalogue = createCatalogue([...remediations, ...testRemediations, ...(opts.extraRemediations ?? [])]);
    const services = await createServices(config, { log: silent, catalogue });
    let app: Awaited<ReturnType<typeof buildApp>>;
    try {
      app = await buildApp(services, { logger: silent });
      await app.listen({ port: 0, host: '127.0.0.1' });
    } catch (err) {
      await services.close().catch(() => undefined);
      throw err;
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    let closing: Promise<void> | undefined;
    return {
      url: `http://127.0.0.1:${port}`,
      services,
      close() {
        closing ??= (async () => {
          try {
            await app.close();
            await services.close();
          } finally {
            removeMatrix(matrixPath);
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    removeMatrix(matrixPath);
    throw err;
  }
}

/** Polls until `check` returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** An Alertmanager v4 message with one alert per entry, shaped exactly as Alertmanager 0.25 sends it. */
export function alertMessage(
  alerts: Array<{
    labels: Record<string, string>;
    status?: 'firing' | 'resolved';
    startsAt?: string;
    fingerprint?: string;
    annotations?: Record<string, string>;
  }>,
) {
  const built = alerts.map((a) => {
    const status = a.status ?? 'firing';
    return {
      status,
      labels: a.labels,
      annotations: a.annotations ?? { summary: `${a.labels['alertname'] ?? 'alert'} summary` },
      startsAt: a.startsAt ?? '2026-11-27T13:31:39.202045328Z',
      endsAt: status === 'firing' ? '0001-01-01T00:00:00Z' : new Date().toISOString(),
      generatorURL: 'http://prometheus:9090/graph?g0.expr=x',
      fingerprint: a.fingerprint ?? fingerprintOf(a.labels),
    };
  });
  const common = alerts[0]?.labels ?? {};
  return {
    receiver: 'remediator',
    status: built.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    alerts: built,
    groupLabels: { alertname: common['alertname'] ?? '' },
    commonLabels: common,
    commonAnnotations: {},
    externalURL: 'http://am.example:9093',
    version: '4',
    groupKey: `{}:{alertname="${common['alertname'] ?? ''}"}`,
    truncatedAlerts: 0,
  };
}

/** A stable 16-hex-digit fingerprint of a label set, like Alertmanager's. */
export function fingerprintOf(labels: Record<string, string>): string {
  let h = 0xcbf29ce484222325n;
  for (const [k, v] of Object.entries(labels).sort()) {
    for (const ch of `${k}\u00ff${v}\u00ff`) {
      h ^= BigInt(ch.codePointAt(0)!);
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    }
  }
  return h.toString(16).padStart(16, '0');
}
