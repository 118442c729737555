import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Log } from '../kernel/log.js';
import type { Executor } from '../execution/executor.js';
import { QUEUE_NAME, type RunJobData } from './queue.js';

export interface RunWorkerOptions {
  prefix: string;
  concurrency: number;
  /** Lock duration and stalled-check interval: a worker that died is noticed after about this long. */
  stalledIntervalMs: number;
  /** While the kill switch is on, a job fetched anyway is put back for this long. */
  pauseRecheckMs?: number;
}

/**
 * The BullMQ worker around the executor. A job whose worker died is moved back to waiting by
 * BullMQ's stalled-job check and executed again (remediations are idempotent); retries come from
 * BullMQ's backoff when the executor asks for one.
 */
export function createRunWorker(connection: Redis, executor: Executor, log: Log, opts: RunWorkerOptions) {
  const pauseRecheckMs = opts.pauseRecheckMs ?? 2000;
  const worker = new Worker<RunJobData>(
    QUEUE_NAME,
    async (job: Job<RunJobData>, token?: string) => {
      const attempts = job.opts.attempts ?? 1;
      const number = job.attemptsMade + 1;
      const outcome = await executor.execute(job.data.runId, { number, last: number >= attempts });
      if (outcome.kind === 'paused' || outcome.kind === 'later') {
        await job.moveToDelayed(Date.now() + (outcome.kind === 'later' ? outcome.delayMs : pauseRecheckMs), token);
        throw new DelayedError();
      }
      if (outcome.kind === 'retry') throw outcome.error;
    },
    {
      connection,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      lockDuration: opts.stalledIntervalMs,
      stalledInterval: opts.stalledIntervalMs,
      maxStalledCount: 2,
      autorun: true,
    },
  );
  worker.on('failed', (job, err) => {
    if (!job) return;
    if (/stalled/i.test(err.message)) {
      executor
        .abandon(job.data.runId, err.message)
        .catch((e: Error) => log.error({ runId: job.data.runId, err: e.message }, 'could not record an abandoned run'));
    }
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker connection error'));
  return worker;
}
