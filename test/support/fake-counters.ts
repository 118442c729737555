/**
 * An in-memory twin of the counter gates of src/gates/counters.ts (`peek`, `take`, `release`, `key`)
 * and of the failure streak of src/gates/escalation.ts, on a clock the test moves. It asks each gate
 * of `COUNTER_GATES` for its `spec()`, as the real counters do, and then does what
 * src/gates/lua/*.lua do with it, on a small model of the Redis keys they touch (strings and sorted
 * sets, with expiry as Redis keeps it). test/integration/counters.test.ts runs the same sequences
 * against this and against Redis and asserts the same verdicts.
 */
import type { Redis } from 'ioredis';
import type { CounterContext, CounterGate, GateSubject } from '../../src/gates/counter-gate.js';
import { COUNTER_GATES, type CounterReason, type Counters, type CounterVerdict } from '../../src/gates/counters.js';
import { createFailureStreak } from '../../src/gates/escalation.js';
import type { Limit } from '../../src/matrix/types.js';

/** A clock that stands still until the test moves it. */
export interface FakeClock {
  /** Milliseconds since the epoch, like `Date.now()`. */
  now(): number;
  date(): Date;
  advance(ms: number): void;
  set(ms: number): void;
}

export function fakeClock(start: number | Date = Date.parse('2026-11-27T12:00:00Z')): FakeClock {
  let t = typeof start === 'number' ? start : start.getTime();
  return {
    now: () => t,
    date: () => new Date(t),
    advance(ms) {
      t += ms;
    },
    set(ms) {
      t = ms;
    },
  };
}

type Spec = Record<string, string | number>;

/** The keys the scripts touch. A key lives while `now <= expiresAt`, as in Redis (expired once `now > when`). */
class Keyspace {
  private readonly strings = new Map<string, { value: string; expiresAt: number | null }>();
  private readonly zsets = new Map<string, { members: Map<string, number>; expiresAt: number | null }>();

  constructor(private readonly now: () => number) {}

  private live<V extends { expiresAt: number | null }>(map: Map<string, V>, key: string): V | undefined {
    const entry = map.get(key);
    if (entry && entry.expiresAt !== null && this.now() > entry.expiresAt) {
      map.delete(key);
      return undefined;
    }
    return entry;
  }

  get = (key: string): string | null => this.live(this.strings, key)?.value ?? null;
  exists = (key: string): boolean => this.live(this.strings, key) !== undefined || this.live(this.zsets, key) !== undefined;
  /** SET key value [PX ms] */
  set(key: string, value: string, px?: number): void {
    this.zsets.delete(key);
    this.strings.set(key, { value, expiresAt: px === undefined ? null : this.now() + px });
  }
  del(key: string): void {
    this.strings.delete(key);
    this.zsets.delete(key);
  }
  /** PTTL: -2 when the key does not exist, -1 when it has no expiry. */
  pttl(key: string): number {
    const entry = this.live(this.strings, key) ?? this.live(this.zsets, key);
    if (!entry) return -2;
    return entry.expiresAt === null ? -1 : entry.expiresAt - this.now();
  }
  /** INCR, keeping the key's expiry. */
  incr(key: string): number {
    const entry = this.live(this.strings, key);
    const n = Number(entry?.value ?? '0') + 1;
    this.strings.set(key, { value: String(n), expiresAt: entry?.expiresAt ?? null });
    return n;
  }
  private zset(key: string) {
    return this.live(this.zsets, key);
  }
  zadd(key: string, score: number, member: string): void {
    let z = this.zset(key);
    if (!z) {
      this.strings.delete(key);
      z = { members: new Map(), expiresAt: null };
      this.zsets.set(key, z);
    }
    z.members.set(member, score);
  }
  zrem(key: string, member: string): void {
    const z = this.zset(key);
    if (!z) return;
    z.members.delete(member);
    if (z.members.size === 0) this.zsets.delete(key);
  }
  /** ZREMRANGEBYSCORE key -inf max (inclusive). */
  zremUpTo(key: string, max: number): void {
    const z = this.zset(key);
    if (!z) return;
    for (const [member, score] of z.members) if (score <= max) z.members.delete(member);
    if (z.members.size === 0) this.zsets.delete(key);
  }
  zcard = (key: string): number => this.zset(key)?.members.size ?? 0;
  /** The score at `index` in score order (ZRANGE key index index WITHSCORES; ties by member). */
  zscoreAt(key: string, index: number): number | undefined {
    const z = this.zset(key);
    if (!z) return undefined;
    return [...z.members.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))[index]?.[1];
  }
  /** The lowest score (ZRANGE key 0 0 WITHSCORES; ties by member, lexicographically). */
  zoldest(key: string): number | undefined {
    const z = this.zset(key);
    if (!z) return undefined;
    return [...z.members.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))[0]?.[1];
  }
  pexpire(key: string, ms: number): void {
    const entry = this.live(this.strings, key) ?? this.live(this.zsets, key);
    if (entry) entry.expiresAt = this.now() + ms;
  }
  keys(): string[] {
    return [...this.strings.keys(), ...this.zsets.keys()].filter((k) => this.exists(k)).sort();
  }
}

/** One gate of lua/*.lua: `check` answers the ms until it would pass (nil: it passes now). */
interface LuaGate {
  check(spec: Spec, now: number): number | null;
  take(spec: Spec, now: number, member: string): void;
  release(spec: Spec, member: string): void;
  hold(spec: Spec): number;
}

const num = (v: string | number | undefined): number => Number(v);
const str = (v: string | number | undefined): string => String(v);

/** lua/window.lua: the rate limit and the global budget. */
const windowGate = (redis: Keyspace): LuaGate => ({
  check(spec, now) {
    redis.zremUpTo(str(spec['key']), now - num(spec['per']));
    if (redis.zcard(str(spec['key'])) < num(spec['max'])) return null;
    return redis.zoldest(str(spec['key']))! + num(spec['per']) - now;
  },
  take(spec, now, member) {
    redis.zadd(str(spec['key']), now, member);
    redis.pexpire(str(spec['key']), num(spec['per']));
  },
  release(spec, member) {
    redis.zrem(str(spec['key']), member);
  },
  hold: (spec) => num(spec['per']),
});

/** lua/escalation.lua, lua/cooldown.lua, lua/rate-limit.lua, lua/global-budget.lua. */
function luaGates(redis: Keyspace): Record<CounterReason, LuaGate> {
  return {
    escalated: {
      check(spec) {
        const streak = Number(redis.get(str(spec['key'])) ?? '0');
        return streak >= num(spec['after']) ? streak : null;
      },
      take() {},
      release() {},
      hold: () => 0,
    },
    cooldown: {
      check(spec) {
        const ttl = redis.pttl(str(spec['key']));
        return ttl > 0 ? ttl : null;
      },
      take(spec, _now, member) {
        redis.set(str(spec['key']), member, num(spec['ms']));
      },
      release(spec, member) {
        if (redis.get(str(spec['key'])) === member) redis.del(str(spec['key']));
      },
      hold: (spec) => num(spec['ms']),
    },
    rate_limit: windowGate(redis),
    // lua/global-budget.lua: `max` is the run's share of the budget; it passes once count - max + 1 runs left the window.
    global_budget: {
      ...windowGate(redis),
      check(spec, now) {
        const key = str(spec['key']);
        redis.zremUpTo(key, now - num(spec['per']));
        const count = redis.zcard(key);
        const max = num(spec['max']);
        if (count < max) return null;
        if (max <= 0) return num(spec['per']);
        return redis.zscoreAt(key, count - max)! + num(spec['per']) - now;
      },
    },
  };
}

export interface FakeCountersOptions {
  /** What the Lua scripts read from Redis's `TIME`; `Date.now` by default. */
  clock?: Pick<FakeClock, 'now'>;
  /** The key prefix, as `QUEUE_PREFIX`. */
  prefix?: string;
  globalLimit?: Limit;
  gates?: readonly CounterGate[];
}

export type FakeCounters = Counters & {
  /** src/gates/escalation.ts's failure streak over the same keys. */
  recordFailure(remediation: string, target: string): Promise<number>;
  recordSuccess(remediation: string, target: string): Promise<void>;
  /** Every call, in order: which mode, for which runs. */
  readonly calls: Array<{ mode: 'peek' | 'take' | 'release'; runIds: string[] }>;
  /** The keys that exist now, sorted. */
  keys(): string[];
};

export function createFakeCounters(opts: FakeCountersOptions = {}): FakeCounters {
  const now = opts.clock ? () => opts.clock!.now() : () => Date.now();
  const prefix = opts.prefix ?? 'fake';
  const gates = opts.gates ?? COUNTER_GATES;
  const redis = new Keyspace(now);
  const lua = luaGates(redis);
  const ctx: CounterContext = { key: (...parts) => `${prefix}:gates:${parts.join(':')}`, globalLimit: opts.globalLimit };
  const order = gates.map((g) => g.name);
  const calls: FakeCounters['calls'] = [];

  const request = (s: GateSubject) => {
    const specs: Partial<Record<CounterReason, Spec>> = {};
    for (const gate of gates) {
      const spec = gate.spec(s, ctx);
      if (spec) specs[gate.name] = spec;
    }
    return { id: s.runId, held: ctx.key('held', s.runId), gates: specs };
  };

  /** lua/counters.lua. */
  function call(mode: 'peek' | 'take' | 'release', subjects: readonly GateSubject[]): CounterVerdict[] {
    if (subjects.length === 0) return [];
    calls.push({ mode, runIds: subjects.map((s) => s.runId) });
    const t = now();
    return subjects.map(request).map((run): CounterVerdict => {
      const specs = Object.entries(run.gates) as Array<[CounterReason, Spec]>;
      if (mode === 'release') {
        for (const [name, spec] of specs) lua[name].release(spec, run.id);
        redis.del(run.held);
        return { ok: true, took: false };
      }
      if (redis.exists(run.held)) return { ok: true, took: false };
      for (const name of order) {
        const spec = run.gates[name];
        if (!spec) continue;
        const ms = lua[name].check(spec, t);
        if (ms !== null) return { ok: false, reason: name, retryInMs: ms };
      }
      if (mode === 'peek') return { ok: true, took: false };
      let hold = 86_400_000;
      for (const [name, spec] of specs) {
        lua[name].take(spec, t, run.id);
        hold = Math.max(hold, lua[name].hold(spec));
      }
      redis.set(run.held, '1', hold);
      return { ok: true, took: true };
    });
  }

  // The real failure streak, over the fake keys: only INCR and DEL are used.
  const streak = createFailureStreak(
    {
      incr: async (key: string) => redis.incr(key),
      del: async (key: string) => {
        const had = redis.exists(key);
        redis.del(key);
        return had ? 1 : 0;
      },
    } as unknown as Redis,
    ctx.key,
  );

  return {
    peek: async (subjects) => call('peek', subjects),
    take: async (subject) => call('take', [subject])[0]!,
    async release(subject) {
      call('release', [subject]);
    },
    key: ctx.key,
    recordFailure: streak.recordFailure,
    recordSuccess: streak.recordSuccess,
    calls,
    keys: () => redis.keys(),
  };
}
