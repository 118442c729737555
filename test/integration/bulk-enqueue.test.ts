/** The queue's enqueue: one script call for many jobs, each job as BullMQ's own add leaves it. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRunQueue, type RunQueue } from '../../src/queue/queue.js';
import { isolation, REDIS_URL } from '../support/harness.js';

describe('enqueue', () => {
  const iso = isolation('enqueue');
  let redis: Redis;
  let queue: RunQueue;
  let sent = 0;
  before(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, enableAutoPipelining: true });
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => (sent++, send(...args))) as Redis['sendCommand'];
    queue = createRunQueue(redis, { prefix: iso.prefix, attempts: 4, backoffMs: 250 });
    await queue.queue.waitUntilReady();
  });
  after(async () => {
    await queue.close();
    redis.disconnect();
    await iso.drop();
  });

  const jobKey = (id: string) => queue.queue.toKey(id);
  /** The job's hash without what differs between two jobs added at different times. */
  async function stored(id: string) {
    const hash = await redis.hgetall(jobKey(id));
    const opts = JSON.parse(hash['opts']!) as Record<string, unknown>;
    assert.equal(opts['jobId'], id);
    assert.match(hash['timestamp']!, /^\d{13}$/);
    assert.deepEqual(JSON.parse(hash['data']!), { runId: id });
    return { ...hash, timestamp: 'ts', data: 'data', opts: { ...opts, jobId: 'id' } };
  }
  const waitingEvents = async () =>
    (await redis.xrange(queue.queue.keys.events!, '-', '+'))
      .map(([, fields]) => Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]])))
      .filter((e) => e['event'] === 'waiting')
      .map((e) => e['jobId']);

  it('adds many jobs in one Redis command, each stored, listed, marked and announced as BullMQ adds one', async () => {
    const ours = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    // The first call loads the script (EVALSHA, then EVAL); later ones are one EVALSHA each.
    await queue.enqueue(ours.slice(0, 2));
    const before = sent;
    await queue.enqueue(ours.slice(2));
    assert.equal(sent - before, 1, 'one command for three jobs');
    const theirs = randomUUID();
    await queue.queue.addBulk([{ name: 'run', data: { runId: theirs }, opts: { jobId: theirs } }]);

    const reference = await stored(theirs);
    assert.deepEqual(reference.opts, { jobId: 'id', attempts: 4, backoff: { type: 'exponential', delay: 250 } });
    for (const id of ours) assert.deepEqual(await stored(id), reference, `job ${id} as addBulk stores one`);
    assert.deepEqual((await redis.lrange(queue.queue.keys.wait!, 0, -1)).sort(), [...ours, theirs].sort());
    assert.equal(await redis.zcard(queue.queue.keys.marker!), 1, 'the marker that wakes a blocked worker');
    assert.deepEqual((await waitingEvents()).sort(), [...ours, theirs].sort());
    const job = await queue.queue.getJob(ours[0]!);
    assert.equal(job!.name, 'run');
    assert.deepEqual(job!.data, { runId: ours[0] });
    assert.equal(await job!.getState(), 'waiting');
    assert.deepEqual(await queue.untaken(ours), [true, true, true, true, true]);
  });

  it('leaves a job whose id exists as it is', async () => {
    const id = randomUUID();
    await queue.enqueue([id]);
    const first = await redis.hgetall(jobKey(id));
    const listed = await redis.llen(queue.queue.keys.wait!);
    await new Promise((r) => setTimeout(r, 5));
    await queue.enqueue([id, id]);
    assert.deepEqual(await redis.hgetall(jobKey(id)), first);
    assert.equal(await redis.llen(queue.queue.keys.wait!), listed, 'not listed again');
  });

  it('adds to the paused list while the queue is paused', async () => {
    await queue.queue.pause();
    try {
      const id = randomUUID();
      await queue.enqueue([id]);
      assert.equal(await queue.queue.getJob(id).then((j) => j!.getState()), 'waiting');
      assert.ok((await redis.lrange(queue.queue.keys.paused!, 0, -1)).includes(id), 'in the paused list');
      assert.ok(!(await redis.lrange(queue.queue.keys.wait!, 0, -1)).includes(id), 'not in the wait list');
    } finally {
      await queue.queue.resume();
    }
  });

  it('adds a group larger than one call takes, every job once', async () => {
    const ids = Array.from({ length: 1234 }, () => randomUUID());
    const before = sent;
    await queue.enqueue(ids);
    assert.equal(sent - before, 3, 'slices of 500');
    const listed = new Set(await redis.lrange(queue.queue.keys.wait!, 0, -1));
    assert.equal(ids.filter((id) => listed.has(id)).length, ids.length);
    assert.deepEqual(await queue.untaken(ids.slice(-3)), [true, true, true]);
  });

  it("falls back to BullMQ's own bulk add on a connection without the add script, with the same jobs", async () => {
    const other = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const fallback = createRunQueue(other, { prefix: iso.prefix, attempts: 4, backoffMs: 250 });
    try {
      // As a BullMQ whose scripts lack `addStandardJob` would leave it: the command is not defined.
      delete (other as unknown as Record<string, unknown>)['remediatorAddJobs'];
      const ids = [randomUUID(), randomUUID()];
      await fallback.enqueue(ids);
      const reference = randomUUID();
      await queue.enqueue([reference]);
      for (const id of ids) assert.deepEqual(await stored(id), await stored(reference), `job ${id} as the script stores one`);
      const listed = await redis.lrange(queue.queue.keys.wait!, 0, -1);
      assert.ok(
        ids.every((id) => listed.includes(id)),
        'in the wait list',
      );
      assert.deepEqual(await fallback.untaken(ids), [true, true]);
    } finally {
      await fallback.close();
      other.disconnect();
    }
  });
});
