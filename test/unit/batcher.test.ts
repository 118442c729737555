import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBatcher } from '../../src/intake/batcher.js';

/** A batch processor that holds each batch until `release()` and records the batches it was given. */
function gated() {
  const batches: number[][] = [];
  const gates: Array<() => void> = [];
  const process = (items: number[]) => {
    batches.push(items);
    return new Promise<number[]>((resolve) => gates.push(() => resolve(items.map((i) => i * 10))));
  };
  const release = async () => {
    gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { batches, process, release };
}

describe('the intake batcher', () => {
  it('sends what arrives while a batch is processed as the next batch, each submitter its own result', async () => {
    const g = gated();
    const submit = createBatcher(g.process, { weight: () => 1, maxWeight: 100, concurrency: 1 });
    const first = submit(1);
    const rest = [submit(2), submit(3), submit(4)];
    assert.deepEqual(g.batches, [[1]], 'the first item goes at once, alone');
    await g.release();
    assert.deepEqual(g.batches, [[1], [2, 3, 4]], 'what waited goes together');
    await g.release();
    assert.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40]);
  });

  it('keeps a batch within maxWeight and runs at most `concurrency` batches at once', async () => {
    const g = gated();
    const submit = createBatcher(g.process, { weight: (n) => n, maxWeight: 5, concurrency: 2 });
    const all = [submit(1), submit(2), submit(3), submit(2), submit(4)];
    assert.deepEqual(g.batches, [[1], [2]], 'two batches in flight, each started with what was there');
    await g.release();
    assert.deepEqual(g.batches, [[1], [2], [3, 2]], 'the next batch takes items up to the weight cap');
    await g.release();
    await g.release();
    await g.release();
    assert.deepEqual(g.batches, [[1], [2], [3, 2], [4]]);
    assert.deepEqual(await Promise.all(all), [10, 20, 30, 20, 40]);
  });

  it('gives each submitter of a failed batch its error, and goes on with the next batch', async () => {
    let calls = 0;
    const submit = createBatcher(
      async (items: number[]) => {
        calls++;
        if (calls === 1) throw new Error('PostgreSQL: connection terminated');
        return items;
      },
      { weight: () => 1, maxWeight: 10, concurrency: 1 },
    );
    const failing = submit(1);
    const next = submit(2);
    await assert.rejects(failing, /connection terminated/);
    assert.equal(await next, 2);
  });

  it('drops an item that still waits: it is never processed, its submitter gets the reason', async () => {
    const g = gated();
    const submit = createBatcher(g.process, { weight: () => 1, maxWeight: 100, concurrency: 1 });
    const first = submit(1);
    const dropped = submit(2);
    const kept = submit(3);
    const timedOut = new Error('delivery not stored within INTAKE_TIMEOUT');
    assert.equal(submit.drop(2, timedOut), true);
    await assert.rejects(dropped, (err) => err === timedOut);
    // An item already in a batch is not taken back: its outcome is the batch's.
    assert.equal(submit.drop(1, new Error('too late')), false);
    await g.release();
    assert.deepEqual(g.batches, [[1], [3]], 'the dropped item never reached a batch');
    await g.release();
    assert.equal(await first, 10);
    assert.equal(await kept, 30);
    assert.equal(submit.drop(9, timedOut), false, 'an item never submitted: nothing to drop');
  });
});
