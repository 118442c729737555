--[[
  Global budget over every executed run: a sliding window shared by all runs, in which each run may
  fill only its own share (`max`: the budget less what `reserve` keeps for severities above the run's).
  spec: { key = sorted set of run ids scored by time, max = this run's share, per = ms }
  check returns how long until the window holds fewer than `max`: the time the (count - max + 1)th
  oldest leaves it (the oldest, when the window is exactly full). A share of 0 never passes.
]]
gates['global_budget'] = {
  check = function(spec, now)
    redis.call('ZREMRANGEBYSCORE', spec.key, '-inf', now - spec.per)
    local count = redis.call('ZCARD', spec.key)
    if count < spec.max then return nil end
    if spec.max <= 0 then return spec.per end
    local last = redis.call('ZRANGE', spec.key, count - spec.max, count - spec.max, 'WITHSCORES')
    return tonumber(last[2]) + spec.per - now
  end,
  take = window.take,
  release = window.release,
  hold = window.hold,
}
