import { DelayedError, Worker, type Job, type KeepJobs } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Log } from '../kernel/log.js';
import type { Executor } from '../execution/executor.js';
import { KEEP_JOBS, QUEUE_NAME, type RunJobData } from './queue.js';

export interface RunWorkerOptions {
  prefix: string;
  concurrency: number;
  /** Lock duration and stalled-check interval: a worker that died is noticed after about this long. */
  stalledIntervalMs: number;
  /** While the kill switch is on, a job fetched anyway is put back for this long. */
  pauseRecheckMs?: number;
  /** Finished jobs kept; KEEP_JOBS by default. */
  keepJobs?: { removeOnComplete: KeepJobs; removeOnFail: KeepJobs };
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
      ...(opts.keepJobs ?? KEEP_JOBS),
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
  const watchdog = watchConnections(worker, log);
  worker.on('closing', () => clearInterval(watchdog));
  return worker;
}

/** BullMQ's blocking fetch waits at most this long (`drainDelay`, 5 s) before Redis answers it. */
const BLOCK_MS = 5000;
const WATCH_EVERY_MS = 5000;

/**
 * A path to Redis that holds bytes without closing (a partition, a stalled proxy) leaves a connection
 * open and silent: its commands never answer and TCP keepalive does not notice. Every few seconds
 * each worker connection is pinged; one that does not answer in time (the blocking one gets its
 * blocking wait on top) is dropped and made anew, and BullMQ carries on over the new one.
 */
function watchConnections(worker: Worker<RunJobData>, log: Log): NodeJS.Timeout {
  const checking = new Set<string>();
  const watch = async (name: string, client: Promise<Redis>, withinMs: number) => {
    if (checking.has(name)) return;
    checking.add(name);
    const redis = await client.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    try {
      if (!redis || redis.status !== 'ready') return;
      const silent = await Promise.race([
        redis.ping().then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), withinMs))),
      ]);
      if (silent) {
        log.warn({ connection: name, withinMs }, 'Redis connection silent; reconnecting');
        redis.disconnect(true);
      }
    } catch {
      // An error is the connection's own to report (and to reconnect from).
    } finally {
      clearTimeout(timer);
      checking.delete(name);
    }
  };
  const timer = setInterval(() => {
    if (worker.closing) return;
    void watch('worker', worker.client as unknown as Promise<Redis>, 3000);
    void watch('worker-blocking', worker.waitUntilReady() as unknown as Promise<Redis>, BLOCK_MS + 3000);
  }, WATCH_EVERY_MS);
  timer.unref();
  return timer;
}
