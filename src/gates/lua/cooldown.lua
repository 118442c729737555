--[[
  Cooldown: one execution per (remediation, target) within `ms`.
  spec: { key = the cooldown key, holding the run id that took it, ms = cooldown }
  check returns the time left.
]]
gates['cooldown'] = {
  check = function(spec, now)
    local ttl = redis.call('PTTL', spec.key)
    if ttl > 0 then return ttl end
    return nil
  end,
  take = function(spec, now, member)
    redis.call('SET', spec.key, member, 'PX', spec.ms)
  end,
  release = function(spec, member)
    if redis.call('GET', spec.key) == member then redis.call('DEL', spec.key) end
  end,
  hold = function(spec) return spec.ms end,
}
