import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** Writes a matrix to a temporary file and returns its path. */
export function writeMatrix(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'remediator-matrix-'));
  const path = join(dir, 'matrix.yaml');
  writeFileSync(path, yaml);
  return path;
}

/**
 * Starts the whole service (store, queue, worker, HTTP) on a random loopback port, against the real
 * Redis and PostgreSQL, with the environment a deployment would give it.
 */
export async function startService(opts: {
  databaseUrl: string;
  prefix: string;
  matrix: string;
  env?: Record<string, string>;
  extraRemediations?: Remediation[];
}): Promise<TestService> {
  const matrixPath = writeMatrix(opts.matrix);
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
  const app = await buildApp(services, { logger: silent });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    services,
    async close() {
      await app.close();
      await services.close();
      rmSync(matrixPath, { force: true });
    },
  };
}

/** Polls until `check` returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
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
export function alertMessage(alerts: Array<{ labels: Record<string, string>; status?: 'firing' | 'resolved'; startsAt?: string; fingerprint?: string; annotations?: Record<string, string> }>) {
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
