--[[
  A sliding window of `max` executions per `per` ms, shared by the rate limit and the global budget.
  spec: { key = sorted set of run ids scored by time, max = n, per = ms }
]]
local window = {
  check = function(spec, now)
    redis.call('ZREMRANGEBYSCORE', spec.key, '-inf', now - spec.per)
    if redis.call('ZCARD', spec.key) < spec.max then return nil end
    local oldest = redis.call('ZRANGE', spec.key, 0, 0, 'WITHSCORES')
    return tonumber(oldest[2]) + spec.per - now
  end,
  take = function(spec, now, member)
    redis.call('ZADD', spec.key, now, member)
    redis.call('PEXPIRE', spec.key, spec.per)
  end,
  release = function(spec, member)
    redis.call('ZREM', spec.key, member)
  end,
  hold = function(spec) return spec.per end,
}
