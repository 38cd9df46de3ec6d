--[[
  Releases many leases at once, each only for its holder: lock-release.lua (compare-and-
  delete on the stored value) for n leases in one round trip.

  Input:
    KEYS[i] lock key of lease i (i = 1 .. n)
    ARGV[i] stored value of lease i: "<token>:<fencing token>"

  Output:
    an array of n integers, at the index of its lease: 1 when released, 0 when the lease
    was no longer held by this value (expired, released, or taken by another holder).

  Leases are handled in order; a key given twice is compared again after the first
  entry's DEL (so the same lease twice gives 1 then 0). A resent command finds the keys
  it deleted gone (or held by another token) and answers 0 for them: the lease is
  released either way.

  Redis Cluster: all the keys of one call must hash to one slot (CROSSSLOT otherwise):
  give the prefix a hash tag, e.g. "{orchestrator}:lock:<resource>".
]]
if #ARGV ~= #KEYS then
  return redis.error_reply('ERR lock-release-many needs one value per lock key')
end
local result = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    result[i] = redis.call('DEL', KEYS[i])
  else
    result[i] = 0
  end
end
return result
