/**
 * Natural batching: items submitted while a batch is being processed wait and go together in the
 * next one. Under no load a batch is one item and adds no delay; under load, one statement and one
 * commit serve many requests. Each submitter gets its own result, or the batch's error. `drop` takes
 * an item that still waits out of the queue: a delivery already answered 503 is not processed behind
 * the fresh ones.
 */
export function createBatcher<I, O>(
  processBatch: (items: I[]) => Promise<O[]>,
  opts: { weight: (item: I) => number; maxWeight: number; concurrency: number },
) {
  const waiting: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  let active = 0;

  function take() {
    const batch = [waiting.shift()!];
    let weight = opts.weight(batch[0]!.item);
    while (waiting.length > 0 && weight + opts.weight(waiting[0]!.item) <= opts.maxWeight) {
      const next = waiting.shift()!;
      weight += opts.weight(next.item);
      batch.push(next);
    }
    return batch;
  }

  async function run(): Promise<void> {
    active++;
    try {
      while (waiting.length > 0) {
        const batch = take();
        try {
          const results = await processBatch(batch.map((b) => b.item));
          batch.forEach((b, i) => b.resolve(results[i]!));
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      active--;
    }
  }

  function submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      if (active < opts.concurrency) void run();
    });
  }

  /** Takes `item` out of the queue if it still waits (not in a batch yet): its submitter gets `reason`. */
  function drop(item: I, reason: unknown): boolean {
    const at = waiting.findIndex((w) => w.item === item);
    if (at < 0) return false;
    waiting.splice(at, 1)[0]!.reject(reason);
    return true;
  }

  return Object.assign(submit, { drop });
}
