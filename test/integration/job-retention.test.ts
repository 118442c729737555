/** Finished jobs: kept by the worker's setting, which no job carries in its own options. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { Executor } from '../../src/execution/executor.js';
import { createRunQueue } from '../../src/queue/queue.js';
import { createRunWorker } from '../../src/queue/worker.js';
import { eventually, isolation, REDIS_URL } from '../support/harness.js';

describe('finished jobs', () => {
  const iso = isolation('jobs');
  after(() => iso.drop());

  it('are pruned to the worker keepJobs as they finish, while a job carries only its attempts and backoff', async () => {
    const queueRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const workerRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = createRunQueue(queueRedis, { prefix: iso.prefix, attempts: 3, backoffMs: 100 });
    const executed: string[] = [];
    // The worker's job here is to finish jobs; what a run does is not under test.
    const executor = { execute: async (runId: string) => (executed.push(runId), { kind: 'done' as const }) } as unknown as Executor;
    const worker = createRunWorker(workerRedis, executor, pino({ level: 'silent' }), {
      prefix: iso.prefix,
      concurrency: 1,
      stalledIntervalMs: 5000,
      keepJobs: { removeOnComplete: { count: 2 }, removeOnFail: { count: 2 } },
    });
    try {
      const ids = Array.from({ length: 5 }, () => randomUUID());
      await queue.enqueue(ids);
      const job = await queue.queue.getJob(ids[0]!);
      assert.equal(job!.opts.attempts, 3);
      assert.deepEqual(job!.opts.backoff, { type: 'exponential', delay: 100 });
      assert.equal(job!.opts.removeOnComplete, undefined);
      assert.equal(job!.opts.removeOnFail, undefined);
      await eventually(async () => executed.length === 5, 10_000, 'five jobs executed');
      await eventually(async () => (await queue.counts())['completed'] === 2, 5000, 'two completed jobs kept');
      assert.equal((await queue.untaken(ids)).filter(Boolean).length, 0, 'no job waits untaken');
    } finally {
      await worker.close();
      await queue.close();
      queueRedis.disconnect();
      workerRedis.disconnect();
    }
  });
});
