import { createRequire } from 'node:module';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { on } from '../errors.js';
import { withTimeout } from '../kernel/timeout.js';

export const QUEUE_NAME = 'runs';

export interface RunJobData {
  runId: string;
}

/** Finished jobs kept in Redis (the worker removes older ones as jobs finish): a day of completed ones, a week of failed. */
export const KEEP_JOBS = {
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

export interface RunQueueOptions {
  prefix: string;
  /** Attempts per execution, retries use exponential backoff from `backoffMs`. */
  attempts: number;
  backoffMs: number;
  /** How long an enqueue may wait for Redis before the caller answers 503. */
  timeoutMs?: number;
}

/** EXISTS for each key, in one round trip. */
const EXISTS_EACH = `local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('EXISTS', key) end
return out`;

/** For each job key, 1 if the job is there and no worker has taken it yet (BullMQ sets `processedOn` when one does). */
const UNTAKEN_EACH = `local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('HEXISTS', key, 'processedOn') == 0 and redis.call('EXISTS', key) == 1 then out[i] = 1 else out[i] = 0 end
end
return out`;

/** Job ids looked up by one script call. */
const LOOKUP_SLICE = 1000;
/** Jobs added by one call: about 25 µs of Redis's time each, so one call holds Redis for some 12 ms at most. */
const ENQUEUE_SLICE = 500;

/** One of BullMQ's Lua scripts as its package defines it; `addStandardJob` adds one job to the wait list, as `Queue.add` and `addBulk` run it (9 keys). */
interface BullScript {
  name: string;
  content: string;
  keys: number;
}
const bullScripts = createRequire(import.meta.url)('bullmq/dist/cjs/scripts/index.js') as Record<string, BullScript | undefined>;

/**
 * BullMQ's addStandardJob script, unchanged, run once per job of the call: `addBulk` sends one script
 * call per job, each with a `Job` object, packed arguments and a pipeline around them, several times
 * the cost of the job itself. The keys are the queue's (the same for every job); ARGV[1] is what the
 * jobs share (key prefix, job name, timestamp, options) and then, per job, its id and its JSON data.
 * Each job gets the arguments BullMQ packs for it, so the job, the wait list, the marker and the event
 * stream are exactly as `addBulk` leaves them. Answers the job ids (or BullMQ's negative error codes).
 */
function addJobsScript(script: BullScript | undefined): string | undefined {
  if (!script || script.keys !== 9) return undefined;
  return `local function addStandardJob(KEYS, ARGV)
${script.content}
end
local shared = cjson.decode(ARGV[1])
local added = {}
for i = 2, #ARGV, 2 do
  local jobId = ARGV[i]
  local opts = {}
  for k, v in pairs(shared.opts) do opts[k] = v end
  opts.jobId = jobId
  added[#added + 1] = addStandardJob(KEYS, {
    cmsgpack.pack({ shared.prefix, jobId, shared.name, shared.timestamp }), ARGV[i + 1], cmsgpack.pack(opts) })
end
return added`;
}
const ADD_JOBS = 'remediatorAddJobs';
const ADD_JOBS_LUA = addJobsScript(bullScripts['addStandardJob']);

/**
 * The run queue. Job id = run id, so enqueueing a run twice while its job exists is a no-op;
 * the worker's claim in PostgreSQL makes a late second job harmless too.
 */
export function createRunQueue(connection: Redis, opts: RunQueueOptions) {
  const queue = new Queue<RunJobData>(QUEUE_NAME, {
    connection,
    prefix: opts.prefix,
    defaultJobOptions: {
      attempts: opts.attempts,
      backoff: { type: 'exponential', delay: opts.backoffMs },
      // How long finished jobs are kept is the worker's setting (KEEP_JOBS), not each job's: options a job
      // carries are packed into it and handled by its add script, about a third of that script's time.
    },
  });
  // Errors surface on the calls that hit them; the emitter must not crash the process.
  queue.on('error', () => {});
  const timeoutMs = opts.timeoutMs ?? 3000;

  // Defined when the queue is made, like BullMQ's own commands: never while commands are being pipelined.
  const client = connection as Redis & Record<string, ((...args: string[]) => Promise<Array<string | number>>) | undefined>;
  if (ADD_JOBS_LUA && typeof client[ADD_JOBS] !== 'function') connection.defineCommand(ADD_JOBS, { numberOfKeys: 9, lua: ADD_JOBS_LUA });
  const k = queue.keys;
  const addKeys = [k.wait!, k.paused!, k.meta!, k.id!, k.completed!, k.delayed!, k.active!, k.events!, k.marker!];
  const jobOpts = { ...queue.defaultJobOptions };

  /** One script call adding `runIds`' jobs; a job whose id exists is left as it is (BullMQ's own rule). */
  async function addJobs(runIds: readonly string[]): Promise<void> {
    const add = client[ADD_JOBS];
    if (!add) {
      // A BullMQ without the script this wraps: its own bulk add.
      await queue.addBulk(runIds.map((runId) => ({ name: 'run', data: { runId }, opts: { jobId: runId } })));
      return;
    }
    const argv = [JSON.stringify({ prefix: k['']!, name: 'run', timestamp: Date.now(), opts: jobOpts })];
    for (const runId of runIds) argv.push(runId, JSON.stringify({ runId }));
    const added = await add.call(connection, ...addKeys, ...argv);
    const refused = added.find((a) => typeof a === 'number' && a < 0);
    if (refused !== undefined) throw new Error(`BullMQ refused a job (code ${refused})`);
  }

  async function enqueue(runIds: readonly string[]): Promise<void> {
    if (runIds.length === 0) return;
    // In slices, each with the timeout: a large group (thousands of runs) is several calls that each
    // take milliseconds, not one whose time grows with its size.
    for (let i = 0; i < runIds.length; i += ENQUEUE_SLICE) {
      const slice = runIds.slice(i, i + ENQUEUE_SLICE);
      await on('Redis', `enqueue of ${slice.length} run(s)`, withTimeout(addJobs(slice), timeoutMs, 'enqueue'));
    }
  }

  /** One script call per slice of `runIds`, with each run's job key; the script's answer per key, in order. */
  async function perJob(script: string, what: string, runIds: readonly string[]): Promise<number[]> {
    const out: number[] = [];
    // In slices: a script's keys are its call's arguments, and spreading tens of thousands of them
    // overflows the stack.
    for (let i = 0; i < runIds.length; i += LOOKUP_SLICE) {
      const keys = runIds.slice(i, i + LOOKUP_SLICE).map((id) => queue.toKey(id));
      const answers = (await on(
        'Redis',
        `${what} of ${keys.length} job(s)`,
        withTimeout(connection.eval(script, keys.length, ...keys), timeoutMs, `job ${what}`),
      )) as number[];
      out.push(...answers);
    }
    return out;
  }

  /** Enqueues those of `runIds` whose job is not in Redis (lost with a Redis restart, or never added). */
  async function enqueueMissing(runIds: readonly string[]): Promise<void> {
    if (runIds.length === 0) return;
    const exists = await perJob(EXISTS_EACH, 'lookup', runIds);
    await enqueue(runIds.filter((_, i) => exists[i] === 0));
  }

  /**
   * For each of `runIds`, whether its job is in Redis and still waits for a worker: such a run is
   * still `queued`, since only a worker that took its job moves a queued run on.
   */
  async function untaken(runIds: readonly string[]): Promise<boolean[]> {
    if (runIds.length === 0) return [];
    return (await perJob(UNTAKEN_EACH, 'check', runIds)).map((v) => v === 1);
  }

  /**
   * Re-adds a run whose job may be gone. A job that already finished is removed first, because
   * BullMQ ignores an add whose id exists; the worker's claim decides whether it still runs.
   */
  async function requeue(runId: string): Promise<void> {
    const job = await queue.getJob(runId);
    if (job) {
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed') return;
      await job.remove();
    }
    await enqueue([runId]);
  }

  /**
   * Remembers that a run's remediation finished, with its result, before the outcome is written to
   * PostgreSQL: if that write fails, the job's retry records the outcome instead of executing again.
   */
  const executedKey = (runId: string) => `${opts.prefix}:executed:${runId}`;
  async function markExecuted(runId: string, result: Record<string, unknown>): Promise<void> {
    await connection.set(executedKey(runId), JSON.stringify(result), 'PX', 7 * 24 * 3600_000);
  }
  async function executedResult(runId: string): Promise<Record<string, unknown> | undefined> {
    const stored = await connection.get(executedKey(runId));
    return stored === null ? undefined : (JSON.parse(stored) as Record<string, unknown>);
  }

  async function counts(): Promise<Record<string, number>> {
    return queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'paused', 'prioritized');
  }

  return { queue, enqueue, enqueueMissing, untaken, requeue, markExecuted, executedResult, counts, close: () => queue.close() };
}

export type RunQueue = ReturnType<typeof createRunQueue>;
