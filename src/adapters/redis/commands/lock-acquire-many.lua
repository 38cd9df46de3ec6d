--[[
  Takes many leases at once (the scheduler's batch dispatch), each with its own token and
  its own fencing token: lock-acquire.lua for n resources in one round trip.

  Input:
    KEYS[1]     global fencing counter (string integer, shared by every resource, no expiry)
    KEYS[1 + i] lock key of resource i (string "<token>:<fencing token>", with a PX expiry),
                i = 1 .. n, all distinct

    ARGV[1]     lease time to live, milliseconds (positive integer), the same for every lease
    ARGV[1 + i] random token of the caller for resource i (hex, never contains ':')

  Output:
    an array of n entries, at the index of its resource: the fencing token (integer >= 1)
    when the lease was taken, nil when another token holds it.

  The counter is raised once, by INCRBY of the number of leases actually taken, and the
  reserved range is handed out in KEYS order: fencing tokens grow with the index within
  the batch and are greater than every token handed out before (by this command or by
  lock-acquire.lua, which shares the counter). All reads happen before the first write,
  so a counter that is not an integer (INCRBY fails) leaves no lease behind.

  Resend: when a lock key already holds ARGV[1 + i] (the client reconnected after sending
  the command and ioredis replayed it), entry i is the fencing token stored the first
  time, the expiry is left alone and the counter is not raised for it, exactly as
  lock-acquire.lua does. A resource refused the first time and freed in between is taken
  by the resend with a new, greater token (a correct acquisition, merely later); only in
  that case are the tokens of one reply not increasing in index order.

  A key given twice is an error (before any write): both entries would see the key free
  and the second SET would silently take the first lease. RedisLockManager refuses
  duplicates before sending.

  Redis Cluster: every key of one call (the counter and all the lock keys) must hash to
  one slot, or the script is refused with CROSSSLOT: give the prefix a hash tag (e.g.
  "{orchestrator}:lock:<resource>" and "{orchestrator}:fence"). Fencing tokens are
  formatted with %.0f because Lua's tostring would round them above 1e14.
]]
local n = #KEYS - 1
if #ARGV ~= n + 1 then
  return redis.error_reply('ERR lock-acquire-many needs one token per lock key')
end

local free = {}
local result = {}
local seen = {}
local count = 0
for i = 1, n do
  local key = KEYS[i + 1]
  if seen[key] then
    return redis.error_reply('ERR lock-acquire-many: key given twice: ' .. key)
  end
  seen[key] = true
  local current = redis.call('GET', key)
  result[i] = false -- nil in the reply (a Lua nil would end the array)
  if current then
    local sep = string.find(current, ':', 1, true)
    if sep and string.sub(current, 1, sep - 1) == ARGV[i + 1] then
      result[i] = tonumber(string.sub(current, sep + 1))
    end
  else
    count = count + 1
    free[count] = i
  end
end

if count > 0 then
  local fence = redis.call('INCRBY', KEYS[1], count) - count
  for k = 1, count do
    local i = free[k]
    fence = fence + 1
    redis.call('SET', KEYS[i + 1], ARGV[i + 1] .. ':' .. string.format('%.0f', fence), 'PX', ARGV[1])
    result[i] = fence
  end
end
return result
