--[[
  The counter gates of many runs in one call: escalation, cooldown, rate limit, global budget
  (each defined in its own file, prepended to this one in the order `gates/counters.ts` lists
  them). With mode "take", a run passes every gate and takes from all of them, or takes nothing.
  Time is Redis's own clock, so replicas with skewed clocks agree.

  KEYS: none; every key is named in the request (the service uses one Redis, never a cluster).
  ARGV[1]: JSON {
    mode  = "peek" | "take" | "release",
    order = [gate name, ...]                    -- the order gates are checked in
    runs  = [{ id = run id, held = key,         -- held: set once the run took, so its retry keeps its place
               gates = { <gate name> = spec } }]  -- only the gates that apply to the run
  }
  Returns: JSON array, one entry per run:
    { ok = true, took = bool } | { ok = false, gate = name, ms = how long until it would pass }
]]
local request = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function first_stop(run)
  for _, name in ipairs(request.order) do
    local spec = run.gates[name]
    if spec then
      local ms = gates[name].check(spec, now)
      if ms then return name, ms end
    end
  end
  return nil
end

local out = {}
for i, run in ipairs(request.runs) do
  if request.mode == 'release' then
    for name, spec in pairs(run.gates) do gates[name].release(spec, run.id) end
    redis.call('DEL', run.held)
    out[i] = { ok = true, took = false }
  elseif redis.call('EXISTS', run.held) == 1 then
    out[i] = { ok = true, took = false }
  else
    local stop, ms = first_stop(run)
    if stop then
      out[i] = { ok = false, gate = stop, ms = ms }
    elseif request.mode == 'take' then
      local hold = 86400000
      for name, spec in pairs(run.gates) do
        gates[name].take(spec, now, run.id)
        hold = math.max(hold, gates[name].hold(spec))
      end
      redis.call('SET', run.held, '1', 'PX', hold)
      out[i] = { ok = true, took = true }
    else
      out[i] = { ok = true, took = false }
    end
  end
end
return cjson.encode(out)
