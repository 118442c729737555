--[[
  Escalation: after `after` consecutive failures of a remediation on one target, its runs need a
  human. Nothing is taken; the streak is counted by the executor (INCR on failure, DEL on success).
  spec: { key = the streak counter, after = n }
  check returns the streak when it has reached `after`.
]]
gates['escalated'] = {
  check = function(spec, now)
    local streak = tonumber(redis.call('GET', spec.key) or '0')
    if streak >= spec.after then return streak end
    return nil
  end,
  take = function(spec, now, member) end,
  release = function(spec, member) end,
  hold = function(spec) return 0 end,
}
