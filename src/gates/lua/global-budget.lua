--[[
  Global budget over every executed run: a sliding window (window.lua).
  spec: { key, max, per }
]]
gates['global_budget'] = window
