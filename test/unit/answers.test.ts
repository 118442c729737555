import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createAnswers, type Answer } from '../../src/intake/answers.js';
import type { RunStatus } from '../../src/schemas/runs.js';

/** Stable ids per name, so that expectations can name them. */
const ids = new Map<string, string>();
const idOf = (name: string) => ids.get(name) ?? (ids.set(name, randomUUID()), ids.get(name)!);
const run = (name: string, status: RunStatus, rule = 'r', remediation = 'test.count'): Answer => ({
  id: idOf(name),
  rule,
  remediation,
  status,
});

describe('recent answers', () => {
  it('keeps final and queued answers, and never one that can change without a worker taking a job', () => {
    const answers = createAnswers({ max: 10, ttlMs: 1000 });
    for (const status of ['succeeded', 'failed', 'suppressed', 'cancelled', 'dry_run', 'queued'] as const) {
      answers.remember(status, run(status, status));
      assert.deepEqual(answers.recall(status), run(status, status), status);
    }
    for (const status of ['pending_approval', 'waiting', 'running'] as const) {
      answers.remember(status, run(status, status));
      assert.equal(answers.recall(status), undefined, status);
    }
  });

  it('answers each key with its own run, rule and remediation', () => {
    const answers = createAnswers({ max: 1000, ttlMs: 60_000 });
    const runs = Array.from({ length: 400 }, (_, i) => run(`k${i}`, i % 2 ? 'queued' : 'failed', `rule-${i % 7}`, `remediation.${i % 5}`));
    runs.forEach((r, i) => answers.remember(`key ${i}`, r));
    runs.forEach((r, i) => assert.deepEqual(answers.recall(`key ${i}`), r));
    assert.equal(answers.recall('key 400'), undefined);
    assert.equal(answers.size(), 400);
  });

  it('forgets a key whose run moved to a status it does not keep, or when told', () => {
    const answers = createAnswers({ max: 10, ttlMs: 1000 });
    answers.remember('k', run('1', 'queued'));
    answers.remember('k', run('1', 'running'));
    assert.equal(answers.recall('k'), undefined);
    answers.remember('k', run('1', 'succeeded'));
    assert.equal(answers.recall('k')?.status, 'succeeded');
    answers.forget('k');
    assert.equal(answers.recall('k'), undefined);
    // A forgotten slot is reused, and a key stored after it is still found.
    answers.remember('k', run('2', 'queued'));
    answers.remember('j', run('3', 'queued'));
    assert.equal(answers.recall('k')?.id, idOf('2'));
    assert.equal(answers.recall('j')?.id, idOf('3'));
    assert.equal(answers.size(), 2);
  });

  it('forgets answers after ttlMs', () => {
    let now = 0;
    const answers = createAnswers({ max: 10, ttlMs: 1000, now: () => now });
    answers.remember('k', run('1', 'queued'));
    now = 999;
    assert.ok(answers.recall('k'));
    now = 1000;
    assert.equal(answers.recall('k'), undefined);
    assert.equal(answers.size(), 0);
  });

  it('holds at most max answers, dropping the older half first; an answer given again counts as new', () => {
    const answers = createAnswers({ max: 4, ttlMs: 60_000 });
    for (const k of ['a', 'b', 'c']) answers.remember(k, run(k, 'queued'));
    answers.remember('a', run('a', 'succeeded'));
    for (const k of ['d', 'e']) answers.remember(k, run(k, 'queued'));
    assert.ok(answers.size() <= 4);
    assert.equal(answers.recall('b'), undefined);
    assert.deepEqual(
      ['a', 'c', 'd', 'e'].map((k) => answers.recall(k)?.id),
      ['a', 'c', 'd', 'e'].map(idOf),
    );
    assert.equal(answers.recall('a')?.status, 'succeeded');
  });

  it('keeps nothing per answer on the JavaScript heap: 50,000 answers in fixed tables', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const answers = createAnswers({ max: 100_000, ttlMs: 60_000 });
    const keys = Array.from({ length: 50_000 }, (_, i) =>
      JSON.stringify(['bench-noop', 'firing:0', i.toString(16).padStart(16, '0'), '2026-12-02T18:00:00.123456789Z']),
    );
    const runs = keys.map(() => ({ id: randomUUID(), rule: 'bench-noop', remediation: 'bench.noop', status: 'queued' as const }));
    gc();
    const before = process.memoryUsage();
    keys.forEach((k, i) => answers.remember(k, runs[i]!));
    gc();
    const after = process.memoryUsage();
    assert.equal(answers.size(), 50_000);
    const heapPerAnswer = (after.heapUsed - before.heapUsed) / 50_000;
    assert.ok(heapPerAnswer < 10, `${heapPerAnswer.toFixed(1)} bytes of heap per answer`);
    // The tables themselves: two generations of 131,072 slots of 28 bytes.
    assert.ok(after.arrayBuffers - before.arrayBuffers <= 2 * 131_072 * 28, `${after.arrayBuffers - before.arrayBuffers} bytes of tables`);
    assert.equal(answers.recall(keys[12_345]!)?.id, runs[12_345]!.id);
  });
});
