--[[
  Extends many leases at once, each only for its holder (lock-extend.lua for n leases in
  one round trip): the dispatcher lengthens the short claim leases of the tasks it has
  just written RUNNING to their attempts' deadlines.

  Input:
    KEYS[i]     lock key of lease i, i = 1 .. n
    ARGV[i]     stored value of lease i: "<token>:<fencing token>"
    ARGV[n + i] new time to live of lease i, milliseconds (positive integer), from now

  Output:
    an array of n entries: 1 where the lease was extended, 0 where it was lost (expired,
    released or held by another).
]]
local n = #KEYS
if #ARGV ~= 2 * n then
  return redis.error_reply('ERR lock-extend-many needs a value and a ttl per lock key')
end
local result = {}
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    result[i] = redis.call('PEXPIRE', KEYS[i], ARGV[n + i])
  else
    result[i] = 0
  end
end
return result
