import type { Redis } from 'ioredis';
import type { Limit } from '../matrix/types.js';

/**
 * Cooldowns, per-action rate limits, the global budget and the failure streak, in Redis so they hold
 * across replicas. One Lua script checks every gate and, when asked to, takes from all of them or from
 * none: a run stopped by one gate consumes nothing of the others. Time is Redis's own clock, so
 * replicas with skewed clocks still agree.
 */
const CHECK = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A sliding window of \`max\` per \`per\` ms: how long until it has room, or nil when it has room now.
local function full(key, max, per, now)
  if max <= 0 then return nil end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - per)
  if redis.call('ZCARD', key) < max then return nil end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + per - now
end
-- The first gate that stops a run, with how long until it would pass; nil when every gate passes.
local function check(cooldownKey, limitKey, globalKey, heldKey, streakKey, cooldownMs, limitMax, limitPer, globalMax, globalPer, escalateAfter, now)
  -- A retry of a run that already passed keeps its place: it must not be stopped by its own cooldown.
  if redis.call('EXISTS', heldKey) == 1 then return nil end
  if escalateAfter > 0 then
    local streak = tonumber(redis.call('GET', streakKey) or '0')
    if streak >= escalateAfter then return 'escalated', streak end
  end
  if cooldownMs > 0 then
    local ttl = redis.call('PTTL', cooldownKey)
    if ttl > 0 then return 'cooldown', ttl end
  end
  local wait = full(limitKey, limitMax, limitPer, now)
  if wait then return 'rate_limit', wait end
  wait = full(globalKey, globalMax, globalPer, now)
  if wait then return 'global_budget', wait end
  return nil
end
`;

/** One run: peek, or take from every gate at once. */
const SCRIPT = `${CHECK}
local cooldownKey, limitKey, globalKey, heldKey, streakKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cooldownMs = tonumber(ARGV[1])
local limitMax, limitPer = tonumber(ARGV[2]), tonumber(ARGV[3])
local globalMax, globalPer = tonumber(ARGV[4]), tonumber(ARGV[5])
local member, mode, escalateAfter = ARGV[6], ARGV[7], tonumber(ARGV[8])
if redis.call('EXISTS', heldKey) == 1 then return {'ok', 0} end
local now = now_ms()
local verdict, ms = check(cooldownKey, limitKey, globalKey, heldKey, streakKey, cooldownMs, limitMax, limitPer, globalMax, globalPer, escalateAfter, now)
if verdict then return {verdict, ms} end
if mode == 'take' then
  if cooldownMs > 0 then redis.call('SET', cooldownKey, member, 'PX', cooldownMs) end
  if limitMax > 0 then
    redis.call('ZADD', limitKey, now, member)
    redis.call('PEXPIRE', limitKey, limitPer)
  end
  if globalMax > 0 then
    redis.call('ZADD', globalKey, now, member)
    redis.call('PEXPIRE', globalKey, globalPer)
  end
  redis.call('SET', heldKey, '1', 'PX', math.max(cooldownMs, limitPer, globalPer, 86400000))
  return {'ok', 1}
end
return {'ok', 0}
`;

/** Many runs at once, peek only: one round trip for a whole intake batch. KEYS: 5 per run; ARGV: globals, then 4 per run. */
const PEEK_MANY = `${CHECK}
local globalMax, globalPer = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local out = {}
for i = 0, (#KEYS / 5) - 1 do
  local k, a = i * 5, 2 + i * 4
  local verdict, ms = check(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
    tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), globalMax, globalPer, tonumber(ARGV[a + 4]), now)
  out[#out + 1] = verdict or 'ok'
  out[#out + 1] = ms or 0
end
return out
`;

/** Gives back what `take` took for a run that did not execute after all. */
const RELEASE = `
local cooldownKey, limitKey, globalKey, heldKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member = ARGV[1]
if redis.call('GET', cooldownKey) == member then redis.call('DEL', cooldownKey) end
redis.call('ZREM', limitKey, member)
redis.call('ZREM', globalKey, member)
redis.call('DEL', heldKey)
return 1
`;

export type GateVerdict =
  /** `took`: this call took from the budget (false for a peek, or for a run that already held its place). */
  | { ok: true; took?: boolean }
  | { ok: false; reason: 'cooldown' | 'rate_limit' | 'global_budget' | 'escalated'; retryInMs: number };

export interface BudgetRequest {
  runId: string;
  rule: string;
  actionKey: string;
  remediation: string;
  target: string;
  cooldownMs: number;
  limit: Limit | undefined;
  /** Consecutive failures after which runs need approval; 0 skips the check (an approved run). */
  escalateAfter: number;
}

export const ESCALATE_AFTER = 3;

export function createBudget(redis: Redis, prefix: string, globalLimit: Limit | undefined) {
  const r = redis as Redis & Record<string, unknown>;
  if (typeof r['remediatorGates'] !== 'function') {
    r.defineCommand('remediatorGates', { numberOfKeys: 5, lua: SCRIPT });
    r.defineCommand('remediatorRelease', { numberOfKeys: 4, lua: RELEASE });
    r.defineCommand('remediatorPeekMany', { lua: PEEK_MANY });
  }
  const key = (...parts: string[]) => `${prefix}:gates:${parts.join(':')}`;
  const streakKey = (remediation: string, target: string) => key('streak', remediation, target);

  async function evaluate(req: BudgetRequest, mode: 'peek' | 'take'): Promise<GateVerdict> {
    const [verdict, ms] = await (r['remediatorGates'] as (...a: Array<string | number>) => Promise<[string, number]>).call(r,
      key('cooldown', req.remediation, req.target),
      key('limit', req.rule, req.actionKey),
      key('global'),
      key('held', req.runId),
      streakKey(req.remediation, req.target),
      req.cooldownMs,
      req.limit?.max ?? 0,
      req.limit?.perMs ?? 0,
      globalLimit?.max ?? 0,
      globalLimit?.perMs ?? 0,
      req.runId,
      mode,
      req.escalateAfter,
    );
    if (verdict === 'ok') return { ok: true, took: Number(ms) === 1 };
    return { ok: false, reason: verdict as 'cooldown', retryInMs: Number(ms) };
  }

  return {
    /** What the gates would say now, taking nothing. */
    peek: (req: BudgetRequest) => evaluate(req, 'peek'),
    /** `peek` for many runs in one round trip. */
    async peekMany(reqs: readonly BudgetRequest[]): Promise<GateVerdict[]> {
      if (reqs.length === 0) return [];
      const keys = reqs.flatMap((req) => [
        key('cooldown', req.remediation, req.target), key('limit', req.rule, req.actionKey), key('global'), key('held', req.runId),
        streakKey(req.remediation, req.target),
      ]);
      const args = reqs.flatMap((req) => [req.cooldownMs, req.limit?.max ?? 0, req.limit?.perMs ?? 0, req.escalateAfter]);
      const flat = await (r['remediatorPeekMany'] as (...a: Array<string | number>) => Promise<Array<string | number>>).call(
        r, keys.length, ...keys, globalLimit?.max ?? 0, globalLimit?.perMs ?? 0, ...args,
      );
      return reqs.map((_, i): GateVerdict => {
        const verdict = String(flat[i * 2]);
        return verdict === 'ok' ? { ok: true } : { ok: false, reason: verdict as 'cooldown', retryInMs: Number(flat[i * 2 + 1]) };
      });
    },
    /** Passes and takes from every gate at once, or takes nothing. Idempotent per run. */
    take: (req: BudgetRequest) => evaluate(req, 'take'),
    async release(req: BudgetRequest): Promise<void> {
      await (r['remediatorRelease'] as (...a: string[]) => Promise<number>).call(r,
        key('cooldown', req.remediation, req.target),
        key('limit', req.rule, req.actionKey),
        key('global'),
        key('held', req.runId),
        req.runId,
      );
    },
    async recordFailure(remediation: string, target: string): Promise<number> {
      return redis.incr(streakKey(remediation, target));
    },
    async recordSuccess(remediation: string, target: string): Promise<void> {
      await redis.del(streakKey(remediation, target));
    },
  };
}

export type Budget = ReturnType<typeof createBudget>;
