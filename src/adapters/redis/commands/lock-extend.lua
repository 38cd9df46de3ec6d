--[[
  Extends a lease, only for its holder (compare-and-set on the stored value).

  Input:
    KEYS[1] lock key
    ARGV[1] stored value of the lease: "<token>:<fencing token>"
    ARGV[2] new time to live, milliseconds (positive integer), counted from now

  Output:
    1 when extended, 0 when the lease was lost (expired, released or held by another).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
