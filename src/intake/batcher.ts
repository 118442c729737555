/**
 * Natural batching: items submitted while a batch is being processed wait and go together in the
 * next one. Under no load a batch is one item and adds no delay; under load, one statement and one
 * commit serve many requests. Each submitter gets its own result, or the batch's error. An item whose
 * `signal` aborts while it still waits leaves the queue (its submitter gets the abort's reason): a
 * delivery already answered 503 is not processed behind the fresh ones.
 */
export function createBatcher<I, O>(
  processBatch: (items: I[]) => Promise<O[]>,
  opts: { weight: (item: I) => number; maxWeight: number; concurrency: number },
) {
  interface Waiting {
    item: I;
    resolve: (o: O) => void;
    reject: (e: unknown) => void;
  }
  const waiting: Waiting[] = [];
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

  return function submit(item: I, signal?: AbortSignal): Promise<O> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<O>((resolve, reject) => {
      const entry: Waiting = { item, resolve, reject };
      if (signal) {
        const onAbort = () => {
          const at = waiting.indexOf(entry);
          // Taken into a batch already: its outcome is the batch's.
          if (at < 0) return;
          waiting.splice(at, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const settled = () => signal.removeEventListener('abort', onAbort);
        entry.resolve = (o) => {
          settled();
          resolve(o);
        };
        entry.reject = (e) => {
          settled();
          reject(e);
        };
      }
      waiting.push(entry);
      if (active < opts.concurrency) void run();
    });
  };
}
