--[[
  Takes a lease when the resource is free, with a new fencing token.

  Input:
    KEYS[1] lock key (string "<token>:<fencing token>", with a PX expiry)
    KEYS[2] global fencing counter (string integer, shared by every resource, no expiry)

    ARGV[1] random token of the caller (hex, never contains ':')
    ARGV[2] lease time to live, milliseconds (positive integer)

  Output:
    the fencing token (integer >= 1) when the lease was taken, nil when another token
    holds it.

  When the key already holds ARGV[1], the command is a resend (the client reconnected
  after sending it and ioredis replays unanswered commands): it returns the fencing
  token it was given the first time instead of reporting contention, without changing
  the expiry. The counter is increased only when the lease is actually taken, and
  %.0f keeps tokens above 1e14 exact (tostring would round them).
]]
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, ':', 1, true)
  if sep and string.sub(current, 1, sep - 1) == ARGV[1] then
    return tonumber(string.sub(current, sep + 1))
  end
  return nil
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. string.format('%.0f', fence), 'PX', ARGV[2])
return fence
