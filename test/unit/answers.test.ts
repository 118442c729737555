import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createAnswers, type Answer } from '../../src/intake/answers.js';
import type { RunStatus } from '../../src/schemas/runs.js';

/** What `recall` answers, without the bookkeeping it carries. */
const recalled = (a: Answer | undefined) => a && { id: a.id, rule: a.rule, remediation: a.remediation, status: a.status };

const run = (id: string, status: RunStatus): Answer => ({ id, rule: 'r', remediation: 'test.count', status });

describe('recent answers', () => {
  it('keeps final and queued answers, and never one that can change without a worker taking a job', () => {
    const answers = createAnswers({ max: 10, ttlMs: 1000 });
    for (const status of ['succeeded', 'failed', 'suppressed', 'cancelled', 'queued'] as const) {
      answers.remember(status, run(status, status));
      assert.deepEqual(recalled(answers.recall(status)), run(status, status), status);
    }
    for (const status of ['pending_approval', 'waiting', 'running'] as const) {
      answers.remember(status, run(status, status));
      assert.equal(answers.recall(status), undefined, status);
    }
  });

  it('forgets a key whose run moved to a status it does not keep', () => {
    const answers = createAnswers({ max: 10, ttlMs: 1000 });
    answers.remember('k', run('1', 'queued'));
    answers.remember('k', run('1', 'running'));
    assert.equal(answers.recall('k'), undefined);
    answers.remember('k', run('1', 'succeeded'));
    assert.equal(answers.recall('k')?.status, 'succeeded');
    answers.forget('k');
    assert.equal(answers.recall('k'), undefined);
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
      ['a', 'c', 'd', 'e'],
    );
    assert.equal(answers.recall('a')?.status, 'succeeded');
  });

  it('holds 20,000 answers with randomUUID ids in under 400 bytes each (an id made by concatenation alone is about 500)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const answers = createAnswers({ max: 50_000, ttlMs: 60_000 });
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 20_000; i++) {
      const key = JSON.stringify(['bench-noop', 'firing:0', i.toString(16).padStart(16, '0'), '2026-12-02T18:00:00.123456789Z']);
      answers.remember(key, run(randomUUID(), 'queued'));
    }
    gc();
    const perAnswer = (process.memoryUsage().heapUsed - before) / 20_000;
    assert.equal(answers.size(), 20_000);
    assert.ok(perAnswer < 400, `${perAnswer.toFixed(0)} bytes per answer`);
  });
});
