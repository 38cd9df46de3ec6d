--[[
  Releases a lease, only for its holder (compare-and-delete on the stored value).

  Input:
    KEYS[1] lock key
    ARGV[1] stored value of the lease: "<token>:<fencing token>"

  Output:
    1 when released, 0 when the lease was no longer held by this value.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
