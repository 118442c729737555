--[[
  Rate limit per action (rule and action, over all targets): a sliding window (window.lua).
  spec: { key, max, per }
]]
gates['rate_limit'] = window
