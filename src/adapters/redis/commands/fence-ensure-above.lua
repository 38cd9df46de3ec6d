--[[
  Raises the global fencing counter to at least ARGV[1], so that the next token handed
  out (INCR) is greater than it. Never lowers the counter.

  Input:
    KEYS[1] global fencing counter (string integer; missing counts as 0)
    ARGV[1] value, a non-negative integer below 2^53

  Output:
    the counter after the call.
]]
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if current < wanted then
  redis.call('SET', KEYS[1], ARGV[1])
  return wanted
end
return current
