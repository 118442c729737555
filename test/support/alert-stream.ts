/**
 * Alerts streamed to a service as Alertmanager would deliver them through an outage: one new alert
 * at a time, each retried every 100 ms until it is acknowledged (200), while /health/ready is probed
 * every 100 ms. For failover tests: stop a dependency meanwhile, then check that every acknowledged
 * alert became its run.
 *
 *   const stream = streamAlerts(svc, { suite: 'failover' });
 *   await eventually(async () => stream.acknowledged.size >= 10, ...);
 *   ... kill something, bring it back ...
 *   await stream.stop();
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { webhook, type Api } from './api.js';
import { alertMessage, eventually, REDIS_URL } from './harness.js';
import { executionsKey } from './test-remediations.js';

export interface AlertStream {
  /** The `key` labels of the alerts answered 200. */
  acknowledged: Set<string>;
  /** Every status the webhook answered (0: no answer). */
  answers: Set<number>;
  /** /health/ready's status at each probe (0: no answer). */
  readiness: number[];
  /** How many alerts were started. */
  sent(): number;
  /** Stops after the alert in flight is acknowledged (or given up after `maxAttempts`). */
  stop(): Promise<void>;
}

export function streamAlerts(svc: Api, labels: Record<string, string>, maxAttempts = 300): AlertStream {
  const acknowledged = new Set<string>();
  const answers = new Set<number>();
  const readiness: number[] = [];
  let sent = 0;
  let stopped = false;
  const deliveries = (async () => {
    while (!stopped) {
      const key = `a${sent++}`;
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        const res = await webhook(svc)
          .send(alertMessage([{ labels: { ...labels, key } }]))
          .catch(() => undefined);
        answers.add(res?.status ?? 0);
        if (res?.status === 200) {
          acknowledged.add(key);
          break;
        }
        await sleep(100);
      }
      await sleep(20);
    }
  })();
  const probes = (async () => {
    while (!stopped) {
      readiness.push((await fetch(`${svc.url}/health/ready`).catch(() => undefined))?.status ?? 0);
      await sleep(100);
    }
  })();
  return {
    acknowledged,
    answers,
    readiness,
    sent: () => sent,
    async stop() {
      stopped = true;
      await Promise.all([deliveries, probes]);
    },
  };
}

/**
 * After the stream: waits until every run of the database has succeeded and there is one for each
 * acknowledged alert, then asserts one run per alert and that each `test.count` run executed exactly
 * once (its counters are removed). Resolves with the number of runs.
 */
export async function assertEachAcknowledgedRanOnce(
  databaseUrl: string,
  prefix: string,
  acknowledged: ReadonlySet<string>,
  after: string,
): Promise<number> {
  const db = new pg.Client({ connectionString: databaseUrl });
  const counter = new Redis(REDIS_URL);
  await db.connect();
  try {
    const settled = await eventually(
      async () => {
        const { rows } = await db.query("SELECT id, status, alert->'labels'->>'key' AS key FROM runs");
        return rows.length >= acknowledged.size && rows.every((r) => r.status === 'succeeded') ? rows : undefined;
      },
      60_000,
      `every run succeeded after ${after}`,
    );
    const keys = settled.map((r) => r.key as string);
    assert.equal(new Set(keys).size, keys.length, 'one run per alert');
    for (const key of acknowledged) assert.ok(keys.includes(key), `acknowledged alert ${key} has its run`);
    const counts = await Promise.all(settled.map((r) => counter.get(executionsKey(prefix, 'count', r.id))));
    assert.deepEqual([...new Set(counts)], ['1'], 'each run executed exactly once');
    await counter.del(...settled.map((r) => executionsKey(prefix, 'count', r.id)));
    return settled.length;
  } finally {
    counter.disconnect();
    await db.end();
  }
}
