/**
 * One contract for the counter gates, run against the real counters in Redis (src/gates/counters.ts
 * with its Lua scripts) and against the in-memory twin of test/support/fake-counters.ts: the same
 * sequences must get the same verdicts from both, which is what lets the unit tests trust the twin.
 * Redis keeps its own time, so a sequence waits for real there and moves the twin's clock instead.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { GateSubject } from '../../src/gates/counter-gate.js';
import { createCounters, type CounterReason, type Counters, type CounterVerdict } from '../../src/gates/counters.js';
import { createFailureStreak } from '../../src/gates/escalation.js';
import type { GlobalLimit, Limit } from '../../src/matrix/types.js';
import { createFakeCounters, fakeClock } from '../support/fake-counters.js';
import { REDIS_URL, uniqueName } from '../support/harness.js';

interface Streak {
  recordFailure(remediation: string, target: string): Promise<number>;
  recordSuccess(remediation: string, target: string): Promise<void>;
}

/** One implementation under the contract: fresh counters per test, and a way to let time pass. */
interface Subject {
  counters: Counters;
  streak: Streak;
  wait(ms: number): Promise<void>;
  /** The keys the counters hold now, without the instance's prefix, sorted. */
  keys(): Promise<string[]>;
}

interface Implementation {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  create(globalLimit?: GlobalLimit): Subject;
}

const prefix = uniqueName('rt_counters');
let redis: Redis;
let instances = 0;

const real: Implementation = {
  name: 'Redis (src/gates/counters.ts and lua/*.lua)',
  async setup() {
    redis = new Redis(REDIS_URL);
  },
  async teardown() {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
    const [, left] = await redis.scan('0', 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    assert.deepEqual(left, [], 'no key of this file is left in Redis');
    redis.disconnect();
  },
  create(globalLimit) {
    // Each test its own keys, all under this file's prefix.
    const own = `${prefix}:${++instances}`;
    const counters = createCounters(redis, own, globalLimit);
    return {
      counters,
      streak: createFailureStreak(redis, counters.key),
      wait: (ms) => new Promise((r) => setTimeout(r, ms)),
      keys: async () => (await redis.keys(`${own}:*`)).map((k) => k.slice(own.length + 1)).sort(),
    };
  },
};

const fake: Implementation = {
  name: 'the in-memory twin (test/support/fake-counters.ts)',
  async setup() {},
  async teardown() {},
  create(globalLimit) {
    const clock = fakeClock();
    const counters = createFakeCounters({ clock, prefix: 'fake', ...(globalLimit ? { globalLimit } : {}) });
    return {
      counters,
      streak: counters,
      keys: async () => counters.keys().map((k) => k.slice('fake:'.length)),
      async wait(ms) {
        clock.advance(ms);
      },
    };
  },
};

const HOUR = 3_600_000;

function subject(
  over: Partial<Omit<GateSubject, 'gates'>> & { cooldownMs?: number; limit?: Limit | null; severity?: string; notice?: boolean } = {},
): GateSubject {
  const { cooldownMs = 0, limit = null, severity, notice = false, ...rest } = over;
  return {
    runId: randomUUID(),
    rule: 'rule',
    action: 'firing:0',
    remediation: 'test.count',
    target: 'test/a',
    approved: false,
    ...rest,
    gates: {
      cooldownMs,
      limit,
      approvalTimeoutMs: 1_800_000,
      ...(severity !== undefined ? { severity } : {}),
      ...(notice ? { globalBudget: false as const } : {}),
    },
  };
}

function passes(v: CounterVerdict | undefined, took: boolean, what = 'the verdict'): void {
  assert.deepEqual(v, { ok: true, took }, what);
}

/** Stopped by `reason`, passing again within `(0, maxMs]`. */
function stops(v: CounterVerdict | undefined, reason: CounterReason, maxMs: number, what = 'the verdict'): void {
  assert.ok(v && !v.ok, `${what}: expected a stop by ${reason}, got ${JSON.stringify(v)}`);
  assert.equal(v.reason, reason, what);
  assert.ok(v.retryInMs > 0 && v.retryInMs <= maxMs, `${what}: retryInMs ${v.retryInMs} not in (0, ${maxMs}]`);
}

for (const impl of [real, fake]) {
  describe(`counter gates contract: ${impl.name}`, () => {
    before(() => impl.setup());
    after(() => impl.teardown());

    it('keeps a cooldown per (remediation, target) and lets the next run through once it is over', async () => {
      const { counters, wait } = impl.create();
      passes(await counters.take(subject({ cooldownMs: 600 })), true, 'the first run');
      stops(await counters.take(subject({ cooldownMs: 600 })), 'cooldown', 600, 'a second run on the same target');
      stops((await counters.peek([subject({ cooldownMs: 600 })]))[0], 'cooldown', 600, 'a peek');
      passes(await counters.take(subject({ cooldownMs: 600, target: 'test/b' })), true, 'another target');
      passes(await counters.take(subject({ cooldownMs: 600, remediation: 'test.slow' })), true, 'another remediation on the same target');
      passes(await counters.take(subject({ cooldownMs: 0 })), true, 'a run without cooldown');
      await wait(700);
      passes(await counters.take(subject({ cooldownMs: 600 })), true, 'after the cooldown');
      stops(await counters.take(subject({ cooldownMs: 600 })), 'cooldown', 600, 'inside the new cooldown');
    });

    it('limits an action over all its targets in a sliding window', async () => {
      const { counters, wait } = impl.create();
      const limit = { max: 2, perMs: 1000 };
      passes(await counters.take(subject({ limit, target: 'test/1' })), true, 'first');
      await wait(500);
      passes(await counters.take(subject({ limit, target: 'test/2' })), true, 'second');
      stops(await counters.take(subject({ limit, target: 'test/3' })), 'rate_limit', 500, 'third, until the first leaves the window');
      passes(await counters.take(subject({ limit, target: 'test/3', action: 'firing:1' })), true, 'another action of the rule');
      passes(await counters.take(subject({ limit, target: 'test/3', rule: 'other' })), true, 'the same action key in another rule');
      await wait(600);
      passes(await counters.take(subject({ limit, target: 'test/3' })), true, 'the first left the window');
      stops(await counters.take(subject({ limit, target: 'test/4' })), 'rate_limit', 400, 'the second is still in it');
    });

    it('spends the global budget over every rule and action', async () => {
      const { counters } = impl.create({ max: 2, perMs: HOUR });
      passes(await counters.take(subject({ rule: 'r1', target: 'test/1' })), true);
      passes(await counters.take(subject({ rule: 'r2', action: 'resolved:0', target: 'test/2' })), true);
      const over = await counters.take(subject({ rule: 'r3', target: 'test/3' }));
      stops(over, 'global_budget', HOUR);
      assert.ok(!over.ok && over.retryInMs > HOUR - 10_000, `the oldest run leaves the budget in about an hour: ${JSON.stringify(over)}`);
    });

    it('keeps the last slots of the global budget for higher severities, nested, in peek and take alike', async () => {
      // 5 slots: the last 2 for critical, the one before them for high (and critical); the others fill 2.
      const { counters } = impl.create({ max: 5, perMs: HOUR, reserve: { critical: 2, high: 1 } });
      const run = (severity: string | undefined, n: number) => subject({ severity, target: `test/${severity}-${n}` });
      passes(await counters.take(run('low', 1)), true, 'low 1');
      passes(await counters.take(run('medium', 1)), true, 'medium 1');
      stops(await counters.take(run('low', 2)), 'global_budget', HOUR, 'low 2: what is left is reserved');
      stops(await counters.take(run(undefined, 1)), 'global_budget', HOUR, 'a rule without severity counts as the lowest');
      stops(await counters.take(run('urgent', 1)), 'global_budget', HOUR, 'so does an unknown severity');
      const [high, critical, low] = await counters.peek([run('high', 1), run('critical', 1), run('info', 1)]);
      passes(high, false, 'a peek: high may take the slot reserved for it');
      passes(critical, false, 'a peek: critical too');
      stops(low, 'global_budget', HOUR, 'a peek: info may not');
      passes(await counters.take(run('high', 1)), true, 'high 1 takes the slot kept for high');
      stops(await counters.take(run('high', 2)), 'global_budget', HOUR, "high 2: the rest is critical's");
      passes(await counters.take(run('critical', 1)), true, 'critical 1');
      passes(await counters.take(run('CRITICAL', 2)), true, 'critical 2: severities compare case-insensitively');
      stops(await counters.take(run('critical', 3)), 'global_budget', HOUR, 'critical 3: the whole budget is spent');
    });

    it('neither counts a notice against the global budget nor stops one by it', async () => {
      const { counters, keys } = impl.create({ max: 1, perMs: HOUR });
      const notice = subject({ notice: true, remediation: 'notify.webhook', target: 'notify/1' });
      passes(await counters.take(notice), true, 'a notice');
      assert.ok(!(await keys()).includes('gates:global'), 'it took nothing of the budget');
      const first = subject({ target: 'test/1' });
      passes(await counters.take(first), true, 'the budget of 1 had room: the notice did not count');
      stops(await counters.take(subject({ target: 'test/2' })), 'global_budget', HOUR, 'now it is spent');
      passes((await counters.peek([subject({ notice: true, target: 'notify/2' })]))[0], false, 'a peek of a notice');
      passes(await counters.take(subject({ notice: true, remediation: 'notify.webhook', target: 'notify/3' })), true, 'another notice');
      // Its other gates still hold: a notice's cooldown (per remediation and target) is kept.
      passes(await counters.take(subject({ notice: true, remediation: 'notify.webhook', target: 'notify/4', cooldownMs: 60_000 })), true);
      stops(
        await counters.take(subject({ notice: true, remediation: 'notify.webhook', target: 'notify/4', cooldownMs: 60_000 })),
        'cooldown',
        60_000,
        'the same notice again',
      );
    });

    it('escalates a target after three failures in a row, and a success clears it', async () => {
      const { counters, streak } = impl.create();
      assert.equal(await streak.recordFailure('test.fail', 'test/esc'), 1);
      assert.equal(await streak.recordFailure('test.fail', 'test/esc'), 2);
      passes((await counters.peek([subject({ remediation: 'test.fail', target: 'test/esc' })]))[0], false, 'two failures');
      assert.equal(await streak.recordFailure('test.fail', 'test/esc'), 3);
      const [escalated] = await counters.peek([subject({ remediation: 'test.fail', target: 'test/esc' })]);
      assert.deepEqual(escalated, { ok: false, reason: 'escalated', retryInMs: 3 }, 'the streak is the answer');
      assert.deepEqual(await counters.take(subject({ remediation: 'test.fail', target: 'test/esc' })), {
        ok: false,
        reason: 'escalated',
        retryInMs: 3,
      });
      passes(await counters.take(subject({ remediation: 'test.fail', target: 'test/other' })), true, 'another target');
      passes(await counters.take(subject({ remediation: 'test.count', target: 'test/esc' })), true, 'another remediation');
      await streak.recordSuccess('test.fail', 'test/esc');
      passes(await counters.take(subject({ remediation: 'test.fail', target: 'test/esc' })), true, 'after a success');
      assert.equal(await streak.recordFailure('test.fail', 'test/esc'), 1, 'the streak starts again');
    });

    it('lets an approved run skip escalation, but not the other gates', async () => {
      const { counters, streak } = impl.create();
      for (let i = 0; i < 3; i++) await streak.recordFailure('test.fail', 'test/esc');
      const approved = subject({ remediation: 'test.fail', target: 'test/esc', approved: true, cooldownMs: 60_000 });
      passes((await counters.peek([approved]))[0], false, 'peek');
      passes(await counters.take(approved), true, 'take');
      stops(
        await counters.take(subject({ remediation: 'test.fail', target: 'test/esc', approved: true, cooldownMs: 60_000 })),
        'cooldown',
        60_000,
        'another approved run',
      );
    });

    it('checks escalation, then cooldown, then rate limit, then global budget', async () => {
      const { counters, streak } = impl.create({ max: 2, perMs: HOUR });
      const limit = { max: 1, perMs: HOUR };
      passes(await counters.take(subject({ cooldownMs: 60_000, limit })), true);
      passes(await counters.take(subject({ rule: 'r2', target: 'test/b' })), true, 'the budget is now spent');
      stops(await counters.take(subject({ cooldownMs: 60_000, limit })), 'cooldown', 60_000, 'cooldown before rate limit and budget');
      stops(await counters.take(subject({ target: 'test/c', cooldownMs: 60_000, limit })), 'rate_limit', HOUR, 'rate limit before budget');
      for (let i = 0; i < 3; i++) await streak.recordFailure('test.count', 'test/a');
      assert.deepEqual(
        await counters.take(subject({ cooldownMs: 60_000, limit })),
        { ok: false, reason: 'escalated', retryInMs: 3 },
        'escalation first',
      );
    });

    it('takes from every gate or from none', async () => {
      const { counters } = impl.create({ max: 2, perMs: HOUR });
      const limit = { max: 1, perMs: HOUR };
      passes(await counters.take(subject({ target: 'test/1', limit })), true);
      stops(await counters.take(subject({ target: 'test/2', limit, cooldownMs: 60_000 })), 'rate_limit', HOUR, 'stopped by the rate limit');
      passes(
        await counters.take(subject({ target: 'test/2', action: 'firing:1', cooldownMs: 60_000 })),
        true,
        'the stopped run took neither its cooldown nor the budget',
      );
      stops(await counters.take(subject({ target: 'test/3', action: 'firing:2' })), 'global_budget', HOUR, 'now the budget is spent');
    });

    it('peeks without taking, for many runs at once', async () => {
      const { counters } = impl.create();
      const limit = { max: 1, perMs: HOUR };
      const many = [
        subject({ target: 'test/1', limit, cooldownMs: 60_000 }),
        subject({ target: 'test/1', limit, cooldownMs: 60_000 }),
        subject({ target: 'test/2', limit }),
      ];
      assert.deepEqual(await counters.peek(many), [
        { ok: true, took: false },
        { ok: true, took: false },
        { ok: true, took: false },
      ]);
      assert.deepEqual(await counters.peek([]), []);
      passes(await counters.take(many[0]!), true);
      const after = await counters.peek(many);
      assert.deepEqual(after[0], { ok: true, took: false }, 'the run that took keeps its place');
      stops(after[1], 'cooldown', 60_000);
      stops(after[2], 'rate_limit', HOUR);
    });

    it('is idempotent per run: a retry keeps its place and counts once', async () => {
      const { counters } = impl.create();
      const limit = { max: 2, perMs: HOUR };
      const run = subject({ cooldownMs: 60_000, limit });
      passes(await counters.take(run), true, 'first take');
      passes(await counters.take(run), false, 'a retry is not stopped by its own cooldown');
      passes((await counters.peek([run]))[0], false, 'nor is a peek');
      passes(await counters.take(subject({ target: 'test/b', limit })), true, 'the retry did not count against the limit');
      stops(await counters.take(subject({ target: 'test/c', limit })), 'rate_limit', HOUR);
      passes(await counters.take(run), false, 'still held, with the limit spent');
    });

    it('gives back on release only what that run took', async () => {
      const { counters } = impl.create({ max: 3, perMs: HOUR });
      const limit = { max: 2, perMs: HOUR };
      const first = subject({ cooldownMs: 60_000, limit });
      passes(await counters.take(first), true);
      await counters.release(first);
      const second = subject({ cooldownMs: 60_000, limit });
      passes(await counters.take(second), true, 'the cooldown was given back');
      await counters.release(first);
      stops(
        await counters.take(subject({ cooldownMs: 60_000, limit })),
        'cooldown',
        60_000,
        'releasing the first again leaves the second its cooldown',
      );
      await counters.release(subject({ cooldownMs: 60_000, limit }));
      stops(await counters.take(subject({ cooldownMs: 60_000, limit })), 'cooldown', 60_000, 'nor does a run that never took');
      passes(await counters.take(subject({ target: 'test/b', limit })), true, 'the released run left the rate limit');
      stops(await counters.take(subject({ target: 'test/c', limit })), 'rate_limit', HOUR, 'the others still count');
      stops(await counters.take(first), 'cooldown', 60_000, "the released run holds no place any more: the second one's cooldown stops it");
      passes(
        await counters.take(subject({ target: 'test/d', action: 'firing:1' })),
        true,
        'the budget has room for one more: the first gave its place back',
      );
      stops(await counters.take(subject({ target: 'test/e', action: 'firing:2' })), 'global_budget', HOUR);
    });

    it('keeps the same keys, and removes on release and success what it took', async () => {
      const { counters, streak, keys } = impl.create({ max: 5, perMs: HOUR });
      const run = subject({ cooldownMs: 60_000, limit: { max: 2, perMs: HOUR } });
      await counters.peek([run]);
      assert.deepEqual(await keys(), [], 'a peek writes nothing');
      await counters.take(run);
      await streak.recordFailure('test.count', 'test/a');
      assert.deepEqual(await keys(), [
        'gates:cooldown:test.count:test/a',
        'gates:global',
        `gates:held:${run.runId}`,
        'gates:limit:rule:firing:0',
        'gates:streak:test.count:test/a',
      ]);
      await counters.release(run);
      assert.deepEqual(await keys(), ['gates:streak:test.count:test/a']);
      await streak.recordSuccess('test.count', 'test/a');
      assert.deepEqual(await keys(), []);
    });
  });
}

describe('the global budget in Redis: the wait of a run stopped by a reserve', () => {
  before(() => real.setup());
  after(() => real.teardown());

  it('is until enough runs left the window for its share, not until the oldest did', async () => {
    // 4 slots, the last 2 critical's: a low run passes while fewer than 2 are in the window, whatever their severity.
    const { counters, wait } = real.create({ max: 4, perMs: 2000, reserve: { critical: 2 } });
    passes(await counters.take(subject({ severity: 'low', target: 'test/l1' })), true, 'low 1 at 0');
    await wait(600);
    passes(await counters.take(subject({ severity: 'low', target: 'test/l2' })), true, 'low 2 at 600');
    passes(await counters.take(subject({ severity: 'critical', target: 'test/c1' })), true, 'critical 1 at 600');
    // Three in the window: a low run passes once two have left, low 1 (at 2000) and then one taken at 600 (at 2600).
    const stopped = await counters.take(subject({ severity: 'low', target: 'test/l3' }));
    stops(stopped, 'global_budget', 2000);
    assert.ok(!stopped.ok && stopped.retryInMs > 1700, `until about 2600, not 2000: ${JSON.stringify(stopped)}`);
    await wait(1500);
    // Low 1 left: two in the window, still no room for a low run, room for a critical one.
    const still = await counters.take(subject({ severity: 'low', target: 'test/l3' }));
    stops(still, 'global_budget', 600, 'low 1 has left, two are still in the window');
    passes(await counters.take(subject({ severity: 'critical', target: 'test/c2' })), true, 'a critical run has room');
    await wait(still.ok ? 0 : still.retryInMs + 50);
    passes(
      await counters.take(subject({ severity: 'low', target: 'test/l3' })),
      true,
      'once low 2 and critical 1 left: only critical 2 is in',
    );
  });
});

describe('the in-memory twin on its own clock', () => {
  it('answers exact waits while the clock stands still', async () => {
    const clock = fakeClock();
    const counters = createFakeCounters({ clock, globalLimit: { max: 1, perMs: 10_000 } });
    passes(await counters.take(subject({ cooldownMs: 5000 })), true);
    clock.advance(1234);
    assert.deepEqual(await counters.take(subject({ cooldownMs: 5000 })), { ok: false, reason: 'cooldown', retryInMs: 3766 });
    assert.deepEqual(await counters.take(subject({ target: 'test/b' })), { ok: false, reason: 'global_budget', retryInMs: 8766 });
    clock.advance(3766);
    assert.deepEqual(
      await counters.take(subject({ cooldownMs: 5000 })),
      { ok: false, reason: 'global_budget', retryInMs: 5000 },
      'the cooldown is over at its last millisecond',
    );
    clock.advance(5000);
    passes(await counters.take(subject({ cooldownMs: 5000 })), true, 'the budget window slid past the first run');
  });

  it('records every call, in order, with the runs it was for', async () => {
    const counters = createFakeCounters();
    const [one, two] = [subject(), subject({ target: 'test/b' })];
    await counters.take(one);
    await counters.peek([one, two]);
    await counters.peek([]);
    await counters.release(one);
    assert.deepEqual(counters.calls, [
      { mode: 'take', runIds: [one.runId] },
      { mode: 'peek', runIds: [one.runId, two.runId] },
      { mode: 'release', runIds: [one.runId] },
    ]);
  });
});
